"""HTTP failures of a provider API, turned into one ``ProviderError`` vocabulary.

Both SDKs raise their own exception trees; the agent loop only needs to know what kind of
failure it was, whether retrying can help and how long the provider asked us to wait, so
that every provider is retried alike.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TypeVar

from integrations.llm.base import ProviderError

# The longest wait we pass on: a provider asking for more is still retryable, but the loop
# should not sleep longer than this on one answer (it also bounds the run's deadline).
MAX_RETRY_AFTER_SECONDS = 600.0

T = TypeVar("T")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a 429/529/503 asked for: ``retry-after-ms`` (both vendors send it, more
    precise), else ``retry-after`` in seconds or as an HTTP date. None if absent or
    unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return _bounded(float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _bounded(moment.timestamp() - time.time())


def _bounded(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def api_message(body: object) -> str:
    """The human message of an error body: Anthropic's ``{"error": {"message"}}``, OpenAI's
    ``{"error": {"message"}}`` (the SDK may already have unwrapped ``error``), or text."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(message := inner.get("message"), str):
            return message
        if isinstance(inner, str):
            return inner
        return ""
    if isinstance(body, str):
        return body[:500]
    return ""


def status_error(
    *, vendor: str, status: int, body: object, headers: Mapping[str, str]
) -> ProviderError:
    """The ProviderError for an HTTP error answer. 408/429/5xx (529 overloaded included) can
    succeed later; a bad key or a bad request will not."""
    detail = api_message(body)
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return ProviderError(
            f"{vendor} rate limit reached (HTTP 429){suffix}",
            retryable=True,
            error_type="rate_limited",
            status=status,
            retry_after=retry_after_seconds(headers),
        )
    if status == 529:
        return ProviderError(
            f"{vendor} is overloaded (HTTP 529){suffix}",
            retryable=True,
            error_type="overloaded",
            status=status,
            retry_after=retry_after_seconds(headers),
        )
    if status >= 500:
        return ProviderError(
            f"{vendor} server error (HTTP {status}){suffix}",
            retryable=True,
            error_type="server_error",
            status=status,
            retry_after=retry_after_seconds(headers),
        )
    if status == 408:
        return ProviderError(
            f"{vendor} timed out the request (HTTP 408){suffix}",
            retryable=True,
            error_type="timeout",
            status=status,
        )
    if status in (401, 403):
        return ProviderError(
            f"{vendor} refused the API key (HTTP {status}){suffix}",
            retryable=False,
            error_type="auth",
            status=status,
        )
    return ProviderError(
        f"{vendor} rejected the request (HTTP {status}){suffix}",
        retryable=False,
        error_type="bad_request",
        status=status,
    )


def timeout_error(vendor: str, timeout: float) -> ProviderError:
    return ProviderError(
        f"{vendor} did not answer within {timeout:g} s.", retryable=True, error_type="timeout"
    )


def connection_error(vendor: str, cause: BaseException) -> ProviderError:
    reason = str(cause.__cause__ or cause)
    return ProviderError(
        f"Could not reach {vendor}: {reason}", retryable=True, error_type="connection"
    )


def bad_response(vendor: str, reason: str) -> ProviderError:
    return ProviderError(
        f"{vendor} answered with something we cannot read: {reason}",
        retryable=False,
        error_type="bad_response",
    )


def calling(sdk: ModuleType, vendor: str, timeout: float, call: Callable[[], T]) -> T:
    """``call()`` with the SDK's exceptions turned into ``ProviderError``. Both official SDKs
    share one exception tree (APITimeoutError, APIConnectionError, APIStatusError, ...)."""
    try:
        return call()
    except sdk.APITimeoutError as exc:
        raise timeout_error(vendor, timeout) from exc
    except sdk.APIConnectionError as exc:
        raise connection_error(vendor, exc) from exc
    except sdk.APIStatusError as exc:
        raise status_error(
            vendor=vendor, status=exc.status_code, body=exc.body, headers=exc.response.headers
        ) from exc
    except sdk.APIResponseValidationError as exc:
        raise bad_response(vendor, str(exc)) from exc
    except sdk.APIError as exc:  # the SDK's other failures
        raise ProviderError(
            f"{vendor} call failed: {exc}", retryable=False, error_type="provider_error"
        ) from exc
