"""The outbound HTTP guard every HTTP-based tool goes through.

A tool's URL comes from a model or from a config an agent author wrote, so it must never
become a way into our own network (SSRF): ``safe_request`` refuses anything but http/https,
and any host that resolves to a private, loopback, link-local, multicast, reserved,
unspecified or cloud-metadata address, unless an operator allowed it in
``settings.TOOL_ALLOWED_PRIVATE_NETWORKS`` (CIDRs or host names): the check is
``integrations.addresses``.

DNS rebinding: the check is not a separate lookup before the request. The connection pool
uses ``_PinnedBackend``, which resolves the name, checks every address it got and connects
to one of exactly those addresses, in the same call; a name that answers "public" to the
check and "private" to the connect has no second lookup to exploit. TLS still verifies the
certificate against the host name (httpcore passes the origin's name as SNI). Redirects are
followed here, hop by hop, so every hop goes through the same check.

Caps: ``timeout`` is one deadline for the whole call (every connect, write and read of
every hop gets at most what is left of it), and the body is streamed and abandoned as soon
as it passes ``max_response_bytes`` (counted after decompression).
"""

from __future__ import annotations

import codecs
import json as jsonlib
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpcore2
import httpx2

from integrations.addresses import Resolver, check_host, checked_url, normalize_host, resolve
from integrations.tools.base import ToolError, ToolRefused

USER_AGENT = "agent-control-plane/0.1 (tool proxy)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry a credential: never carried to another origin by a redirect.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
ERROR_EXCERPT_CHARS = 300
ERROR_BODY_BYTES = 16 * 1024  # read of an error answer, for its excerpt


@dataclass(frozen=True)
class SafeResponse:
    status: int
    headers: httpx2.Headers
    body: bytes
    url: str  # after redirects

    @property
    def text(self) -> str:
        return self.body.decode(self._charset(), errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return jsonlib.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def _charset(self) -> str:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                try:
                    return codecs.lookup(value.strip("\"'")).name
                except LookupError:
                    break  # an unknown charset: read it as UTF-8, replacing what fails
        return "utf-8"


# httpx2 logs every request's full URL at INFO; a tool's URL may itself be a secret (an
# incoming-webhook URL, a token in a query string), so its lines are dropped for guarded calls.
_guarded_call: ContextVar[bool] = ContextVar("net_guarded_call", default=False)
logger = logging.getLogger(__name__)


class _DropGuardedRequestLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _guarded_call.get()


logging.getLogger("httpx2").addFilter(_DropGuardedRequestLines())


# --- the pinned transport -----------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self, timeout: float | None = None) -> float:
        remaining = self.at - time.monotonic()
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore2.NetworkStream):
    """A socket whose every read and write waits at most until the call's deadline, so a
    server dripping one byte at a time cannot stretch the call past ``timeout``."""

    def __init__(self, stream: httpcore2.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = self._deadline.left(timeout)
        if left <= 0:
            raise httpcore2.ReadTimeout("deadline reached")
        return self._stream.read(max_bytes, left)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        left = self._deadline.left(timeout)
        if left <= 0:
            raise httpcore2.WriteTimeout("deadline reached")
        self._stream.write(buffer, left)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        left = self._deadline.left(timeout)
        if left <= 0:
            raise httpcore2.ConnectTimeout("deadline reached")
        tls = self._stream.start_tls(ssl_context, server_hostname, left)
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore2.SyncBackend):
    """Resolve, check and connect in one step, to an address that passed the check."""

    def __init__(self, deadline: _Deadline, resolver: Resolver, allow_private: bool) -> None:
        self._deadline = deadline
        self._resolver = resolver
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        addresses = check_host(
            host, port, resolver=self._resolver, allow_private=self._allow_private
        )
        failure: Exception | None = None
        for address in addresses:
            left = self._deadline.left(timeout)
            if left <= 0:
                raise httpcore2.ConnectTimeout("deadline reached")
            try:
                stream = super().connect_tcp(
                    address, port, left, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc  # try the next checked address, like create_connection does
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None
        raise failure

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore2.NetworkStream:
        raise ToolRefused("Tools may not use unix sockets.")


@cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every call and thread.
    return httpx2.create_ssl_context(trust_env=False)


def _client(deadline: _Deadline, resolver: Resolver, allow_private: bool = False) -> httpx2.Client:
    # httpx2's HTTPTransport has no network_backend argument: swap in a pool that has ours.
    # trust_env=False: an HTTP(S)_PROXY from the environment would resolve names itself,
    # beyond the guard.
    transport = httpx2.HTTPTransport(verify=_ssl_context(), trust_env=False)
    transport._pool = httpcore2.ConnectionPool(
        ssl_context=_ssl_context(),
        network_backend=_PinnedBackend(deadline, resolver, allow_private),
    )
    return httpx2.Client(transport=transport, trust_env=False, follow_redirects=False)


# --- the request --------------------------------------------------------------------------


def _origin(url: httpx2.URL) -> tuple[str, str, int | None]:
    return (url.scheme, normalize_host(url.host), url.port)


def _read_capped(
    response: httpx2.Response, limit: int, deadline: _Deadline, *, truncate: bool = False
) -> bytes:
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise ToolError(
            f"The response is {declared} bytes, over the {limit}-byte limit.",
            retryable=False,
            status=response.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: limit - (size - len(chunk))])
                break
            raise ToolError(
                f"The response is over the {limit}-byte limit.",
                retryable=False,
                status=response.status_code,
            )
        chunks.append(chunk)
        if deadline.left() <= 0:
            raise httpx2.ReadTimeout("deadline reached")
    return b"".join(chunks)


def _status_error(response: httpx2.Response, body: bytes, url: httpx2.URL) -> ToolError:
    status = response.status_code
    excerpt = " ".join(body.decode("utf-8", errors="replace").split())[:ERROR_EXCERPT_CHARS]
    reason = response.reason_phrase or ""
    message = f"{url.host} answered {status} {reason}".rstrip()
    if excerpt:
        message += f": {excerpt}"
    # 408 and 425 say "too early / too slow, try again"; 429 and 5xx are load or outages.
    retryable = status in (408, 425, 429) or status >= 500
    return ToolError(message, retryable=retryable, status=status)


def safe_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth_headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    timeout: float,
    max_response_bytes: int,
    idempotency_key: str | None = None,
    max_redirects: int = 5,
    allowed_domains: Sequence[str] | None = None,
    resolver: Resolver = resolve,
    allow_private: bool = False,
) -> SafeResponse:
    """One guarded HTTP call; redirects followed and re-checked hop by hop.

    ``headers`` go to every hop; ``auth_headers`` (a credential) only to the first URL's
    origin. ``allowed_domains``, when given, is enforced on every hop too. ``allow_private``
    is for targets the operator configured (external runtimes), never for a model's URL. Raises
    ``ToolRefused`` (nothing sent to a forbidden target) or ``ToolError`` (timeout,
    connection failure, over the size cap, or a 4xx/5xx answer: ``retryable`` for 429/5xx).
    """
    body = content
    base_headers: dict[str, str] = {"User-Agent": USER_AGENT, **(headers or {})}
    if json is not None:
        body = jsonlib.dumps(json, ensure_ascii=False).encode()
        base_headers.setdefault("Content-Type", "application/json")
    if idempotency_key:
        base_headers["Idempotency-Key"] = idempotency_key
    call = _Call(
        deadline=_Deadline(timeout),
        max_response_bytes=max_response_bytes,
        auth_headers=dict(auth_headers or {}),
        allowed_domains=allowed_domains,
    )
    quiet = _guarded_call.set(True)
    try:
        with _client(call.deadline, resolver, allow_private) as client:
            response = call.follow(client, method.upper(), url, base_headers, body, max_redirects)
    finally:
        _guarded_call.reset(quiet)
    logger.debug(
        "tool call %s %s answered %s", method, httpx2.URL(response.url).host, response.status
    )
    return response


@dataclass
class _Call:
    deadline: _Deadline
    max_response_bytes: int
    auth_headers: dict[str, str]
    allowed_domains: Sequence[str] | None

    def follow(
        self,
        client: httpx2.Client,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        max_redirects: int,
    ) -> SafeResponse:
        current = checked_url(url, self.allowed_domains)
        first_origin = _origin(current)
        for _hop in range(max_redirects + 1):
            if _origin(current) == first_origin:
                hop_headers = {**headers, **self.auth_headers}
            else:
                hop_headers = {
                    key: value
                    for key, value in headers.items()
                    if key.lower() not in CREDENTIAL_HEADERS
                }
            status, result = self.send(client, method, current, hop_headers, body)
            if isinstance(result, SafeResponse):
                return result
            # RFC 9110: 303 means "GET it"; 301/302 after a POST are GET in every client.
            if status == 303 or (status in (301, 302) and method == "POST"):
                method = "HEAD" if method == "HEAD" else "GET"
                body = None
                headers = {
                    key: value
                    for key, value in headers.items()
                    if key.lower() not in ("content-type", "content-length")
                }
            current = checked_url(result, self.allowed_domains)
        # The host only: a URL's path can itself be a secret (an incoming-webhook URL).
        raise ToolError(
            f"More than {max_redirects} redirects from {first_origin[1]}.", retryable=False
        )

    def send(
        self,
        client: httpx2.Client,
        method: str,
        url: httpx2.URL,
        headers: dict[str, str],
        body: bytes | None,
    ) -> tuple[int, SafeResponse | httpx2.URL]:
        """One hop: the final response, or the URL a redirect points to."""
        try:
            request = client.build_request(
                method,
                url,
                headers=headers,
                content=body,
                timeout=httpx2.Timeout(max(self.deadline.left(), 0.001)),
            )
            response = client.send(request, stream=True)
            try:
                status = response.status_code
                location = response.headers.get("location")
                if status in REDIRECT_STATUSES and location:
                    return status, url.join(location)
                if status >= 400:
                    excerpt = _read_capped(response, ERROR_BODY_BYTES, self.deadline, truncate=True)
                    raise _status_error(response, excerpt, url)
                data = _read_capped(response, self.max_response_bytes, self.deadline)
                return status, SafeResponse(status, response.headers, data, str(url))
            finally:
                response.close()
        except httpx2.TimeoutException:
            raise ToolError(
                f"{url.host} did not answer within {self.deadline.seconds:g} s.", retryable=True
            ) from None
        except httpx2.TransportError as exc:
            raise ToolError(
                f"Could not reach {url.host}: {exc or type(exc).__name__}", retryable=True
            ) from None
