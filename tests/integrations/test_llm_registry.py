"""Which provider a run gets and with which key: the credential store first (its use
audited), then the environment, never the agent's config; none is a clear error."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from controlplane.access import Actor
from controlplane.models import AuditEvent
from integrations.llm.anthropic_provider import AnthropicProvider
from integrations.llm.base import LLMRequest, ProviderError
from integrations.llm.openai_provider import OpenAIProvider
from integrations.llm.registry import provider_for
from integrations.llm.simulated import SimulatedProvider
from integrations.vault import credential_save
from tests import factories

ANTHROPIC_ANSWER = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "text", "text": "hello from anthropic"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 4},
}
OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello from openai", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


@pytest.fixture(autouse=True)
def no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def api(server: HTTPServer) -> Iterator[HTTPServer]:
    server.clear()
    server.expect_request("/v1/messages").respond_with_json(ANTHROPIC_ANSWER)
    server.expect_request("/v1/chat/completions").respond_with_json(OPENAI_ANSWER)
    yield server
    server.clear()


@pytest.fixture
def admin(db: Any) -> Actor:
    return Actor(user=factories.user("root", role="admin"))


def ask(provider: Any, *, model: str, base_url: str | None = None) -> str:
    """One real call; the text of the answer."""
    return provider.complete(
        LLMRequest(
            model=model,
            system="",
            messages=[{"role": "user", "content": "hi"}],
            timeout=5.0,
            config={"base_url": base_url},
        )
    ).text


def key_sent(api: HTTPServer) -> str:
    headers = api.log[-1][0].headers
    return headers.get("X-Api-Key") or headers.get("Authorization", "").removeprefix("Bearer ")


def test_simulated_needs_no_key() -> None:
    provider = provider_for(provider="simulated", config={"provider": "simulated"})

    assert isinstance(provider, SimulatedProvider)
    assert ask(provider, model="simulated-1").startswith("[simulated]")


def test_anthropic_key_comes_from_the_credential_store_and_its_use_is_audited(
    api: HTTPServer, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential_save(
        actor=admin, name="anthropic", kind="anthropic", secret={"api_key": "sk-ant-vault"}
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-environment")  # the store wins
    agent_id, execution_id = uuid.uuid4(), uuid.uuid4()

    provider = provider_for(
        provider="anthropic", config={}, agent_id=agent_id, execution_id=execution_id
    )

    assert isinstance(provider, AnthropicProvider)
    assert "sk-ant-vault" not in repr(provider)
    assert ask(provider, model="claude-haiku-4-5", base_url=api.url_for("")) == (
        "hello from anthropic"
    )
    assert key_sent(api) == "sk-ant-vault"
    use = AuditEvent.objects.get(action="credential.used", target_repr="anthropic")
    assert use.agent_id == agent_id
    assert use.after == {"purpose": "llm:anthropic", "execution_id": str(execution_id)}


def test_anthropic_key_falls_back_to_the_environment(
    api: HTTPServer, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-environment")

    provider = provider_for(provider="anthropic", config={})

    assert ask(provider, model="claude-haiku-4-5", base_url=api.url_for("")) == (
        "hello from anthropic"
    )
    assert key_sent(api) == "sk-ant-environment"
    assert not AuditEvent.objects.filter(action="credential.used").exists()


@pytest.mark.parametrize(
    ("provider", "variable"), [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")]
)
def test_no_key_anywhere_is_a_permanent_missing_credentials_error(
    db: Any, provider: str, variable: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        provider_for(provider=provider, config={"provider": provider})

    assert (caught.value.error_type, caught.value.retryable) == ("missing_credentials", False)
    assert variable in caught.value.message
    assert repr(provider) in caught.value.message  # names the credential to create


def test_a_key_in_the_agent_config_is_never_used(db: Any) -> None:
    with pytest.raises(ProviderError) as caught:
        provider_for(provider="openai", config={"provider": "openai", "api_key": "sk-config"})

    assert caught.value.error_type == "missing_credentials"


def test_a_credential_without_an_api_key_is_a_clear_error(admin: Actor) -> None:
    credential_save(actor=admin, name="openai", kind="openai", secret={"password": "x"})

    with pytest.raises(ProviderError) as caught:
        provider_for(provider="openai", config={})

    assert caught.value.error_type == "missing_credentials"
    assert "api_key" in caught.value.message


def test_openai_key_and_endpoint_come_from_the_credential(api: HTTPServer, admin: Actor) -> None:
    credential_save(
        actor=admin,
        name="openai",
        kind="openai",
        secret={"api_key": "sk-openai-vault"},
        config={"base_url": api.url_for("/v1")},
    )

    provider = provider_for(provider="openai", config={"provider": "openai", "base_url": None})

    assert isinstance(provider, OpenAIProvider)
    assert ask(provider, model="gpt-4o-mini") == "hello from openai"
    assert key_sent(api) == "sk-openai-vault"
    assert AuditEvent.objects.filter(
        action="credential.used", target_repr="openai", after__purpose="llm:openai"
    ).exists()


def test_openai_key_and_endpoint_fall_back_to_the_environment(
    api: HTTPServer, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-environment")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url_for("/v1"))

    provider = provider_for(provider="openai", config={})

    assert ask(provider, model="gpt-4o-mini") == "hello from openai"
    assert key_sent(api) == "sk-openai-environment"


def test_a_listed_versions_base_url_wins_over_the_credentials(
    api: HTTPServer, admin: Actor, settings: Any
) -> None:
    credential_save(
        actor=admin,
        name="openai",
        kind="openai",
        secret={"api_key": "sk-openai-vault"},
        config={"base_url": "http://127.0.0.1:9/v1"},  # nothing listens there
    )
    settings.LLM_ALLOWED_BASE_URLS = [api.url_for("/v1")]

    provider = provider_for(provider="openai", config={"base_url": api.url_for("/v1")})

    assert ask(provider, model="gpt-4o-mini", base_url=api.url_for("/v1")) == "hello from openai"


def test_the_key_is_never_sent_to_an_unlisted_versions_base_url(
    api: HTTPServer, admin: Actor, settings: Any
) -> None:
    credential_save(
        actor=admin, name="openai", kind="openai", secret={"api_key": "sk-openai-vault"}
    )
    settings.LLM_ALLOWED_BASE_URLS = ["http://10.0.0.7:8000/v1"]

    with pytest.raises(ProviderError) as caught:
        provider_for(provider="openai", config={"base_url": api.url_for("/v1")})

    assert (caught.value.error_type, caught.value.retryable) == ("bad_request", False)
    assert "LLM_ALLOWED_BASE_URLS" in caught.value.message
    assert api.log == []


def test_unknown_provider_is_a_permanent_error() -> None:
    with pytest.raises(ProviderError) as caught:
        provider_for(provider="gemini", config={})

    assert (caught.value.error_type, caught.value.retryable) == ("bad_request", False)


def test_runs_with_the_same_key_and_endpoint_share_one_sdk_client(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared")
    request = LLMRequest(model="gpt-4o-mini", system="", messages=[], timeout=5.0)
    slower = LLMRequest(model="gpt-4o-mini", system="", messages=[], timeout=30.0)
    first = provider_for(provider="openai", config={})
    second = provider_for(provider="openai", config={})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated")
    rotated = provider_for(provider="openai", config={})

    assert first.client(request) is second.client(request)
    assert first.client(request) is second.client(slower)  # timeouts are per call
    assert rotated.client(request) is not first.client(request)
    elsewhere = LLMRequest(
        model="m", system="", messages=[], config={"base_url": "http://127.0.0.1:9/v1"}
    )
    assert first.client(elsewhere) is not first.client(request)
