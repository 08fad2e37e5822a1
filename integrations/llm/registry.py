"""Which provider answers a run, with which key.

Keys come from the credential store (a credential named after the provider, decrypted for
this run and audited) or from the environment (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``),
never from the agent's config: whoever may edit an agent must not thereby hold, or need, the
company's key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings

from controlplane.errors import NotFound
from integrations.llm.anthropic_provider import AnthropicProvider
from integrations.llm.base import LLMProvider, ProviderError
from integrations.llm.openai_provider import OpenAIProvider
from integrations.llm.simulated import SimulatedProvider
from integrations.vault import VaultError, credential_exists, credential_use

# The fields of a credential's secret that may hold the key, in order.
SECRET_FIELDS = ("api_key", "token")


@dataclass(frozen=True)
class _Keyed:
    credential: str  # the credential's name, which is also the provider's name
    key_env: str
    base_url_env: str | None
    provider: type[AnthropicProvider] | type[OpenAIProvider]


KEYED: dict[str, _Keyed] = {
    "anthropic": _Keyed("anthropic", "ANTHROPIC_API_KEY", None, AnthropicProvider),
    "openai": _Keyed("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", OpenAIProvider),
}

_simulated = SimulatedProvider()


def _missing(why: str) -> ProviderError:
    return ProviderError(why, retryable=False, error_type="missing_credentials")


def _from_credential(
    spec: _Keyed, *, agent_id: UUID | str | None, execution_id: UUID | str | None
) -> tuple[str, str | None] | None:
    """(key, base_url) from the credential store, the use audited; None if there is none."""
    if not credential_exists(spec.credential):
        return None
    try:
        secret = credential_use(
            name=spec.credential,
            purpose=f"llm:{spec.credential}",
            agent_id=agent_id,
            execution_id=execution_id,
        )
    except NotFound:
        return None  # deleted between the two queries: as if it never was
    except VaultError as exc:
        raise _missing(f"The {spec.credential!r} credential cannot be read: {exc}") from exc
    key = next((secret.values[f] for f in SECRET_FIELDS if secret.values.get(f)), None)
    if not isinstance(key, str) or not key:
        raise _missing(
            f"The {spec.credential!r} credential has no api_key in its secret: save it again "
            f'with the secret {{"api_key": "..."}}.',
        )
    base_url = secret.config.get("base_url") or None
    return key, base_url


def provider_for(
    *,
    provider: str,
    config: dict[str, Any],
    agent_id: UUID | str | None = None,
    execution_id: UUID | str | None = None,
) -> LLMProvider:
    """The provider a version's ``llm`` config names, ready to call; once per run.

    ``anthropic`` and ``openai`` take their key from the credential of the same name (its
    use audited against the agent and the run), else from the environment; none is a
    ``ProviderError`` (``missing_credentials``, not retryable). The default endpoint comes
    from the credential's config ``base_url`` or ``OPENAI_BASE_URL``; a ``base_url`` in the
    version's config wins over both, but only if it is that same endpoint or is listed in
    ``LLM_ALLOWED_BASE_URLS``: the key never goes to an endpoint an agent editor chose.
    """
    if provider == "simulated":
        return _simulated
    spec = KEYED.get(provider)
    if spec is None:
        raise ProviderError(
            f"Unknown LLM provider {provider!r}: use one of simulated, {', '.join(KEYED)}.",
            retryable=False,
            error_type="bad_request",
        )
    found = _from_credential(spec, agent_id=agent_id, execution_id=execution_id)
    if found is not None:
        key, base_url = found
    else:
        key = os.environ.get(spec.key_env, "").strip()
        base_url = None
        if not key:
            raise _missing(
                f"No API key for the {provider} provider: save a credential named "
                f"{spec.credential!r} (kind {spec.credential}, secret "
                f'{{"api_key": "..."}}) or set {spec.key_env}.',
            )
    if base_url is None and spec.base_url_env:
        base_url = os.environ.get(spec.base_url_env, "").strip() or None
    wanted = config.get("base_url")
    if wanted and wanted != base_url and not base_url_allowed(wanted):
        # Whoever may edit an agent must not be able to send the company's key elsewhere.
        raise ProviderError(
            f"The version's llm.base_url {wanted!r} is not an endpoint the provider key may "
            "be sent to: an operator lists it in LLM_ALLOWED_BASE_URLS (or sets it as the "
            "credential's base_url).",
            retryable=False,
            error_type="bad_request",
        )
    return spec.provider(api_key=key, base_url=wanted or base_url)


def base_url_allowed(url: str) -> bool:
    """``url`` starts with one of ``settings.LLM_ALLOWED_BASE_URLS`` (compared without a
    trailing slash)."""
    target = url.rstrip("/")
    return any(
        target == allowed.rstrip("/") or target.startswith(allowed.rstrip("/") + "/")
        for allowed in settings.LLM_ALLOWED_BASE_URLS
    )
