"""Cost of an LLM call: the shipped price table, snapshot suffixes, settings overrides, and
an unknown model costing "unknown", never 0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from integrations.llm.pricing import cost_usd, model_price

MILLION = 1_000_000


@pytest.mark.parametrize(
    ("model", "input_usd", "output_usd"),
    [
        ("claude-opus-4-5", "5", "25"),
        ("claude-opus-4-1", "15", "75"),
        ("claude-sonnet-4-5", "3", "15"),
        ("claude-sonnet-4", "3", "15"),
        ("claude-haiku-4-5", "1", "5"),
        ("claude-3-5-haiku", "0.8", "4"),
        ("gpt-5", "1.25", "10"),
        ("gpt-5-mini", "0.25", "2"),
        ("gpt-5-nano", "0.05", "0.40"),
        ("gpt-4.1", "2", "8"),
        ("gpt-4.1-mini", "0.4", "1.6"),
        ("gpt-4.1-nano", "0.1", "0.4"),
        ("gpt-4o", "2.5", "10"),
        ("gpt-4o-mini", "0.15", "0.6"),
        ("simulated-1", "0", "0"),
    ],
)
def test_shipped_prices_are_usd_per_million_tokens(
    model: str, input_usd: str, output_usd: str
) -> None:
    assert cost_usd(model, MILLION, 0) == Decimal(input_usd)
    assert cost_usd(model, 0, MILLION) == Decimal(output_usd)


def test_cost_adds_input_and_output_to_the_millionth_of_a_dollar() -> None:
    cost = cost_usd("claude-sonnet-4-5", 1234, 567)

    # 1234 * 3 / 1e6 + 567 * 15 / 1e6 = 0.003702 + 0.008505
    assert cost == Decimal("0.012207")
    assert cost.as_tuple().exponent == -6


def test_fractions_of_a_millionth_round_half_up() -> None:
    assert cost_usd("gpt-5-nano", 10, 0) == Decimal("0.000001")  # 0.0000005
    assert cost_usd("gpt-5-nano", 9, 0) == Decimal("0.000000")  # 0.00000045


def test_simulated_calls_cost_zero_not_unknown() -> None:
    assert cost_usd("simulated-1", 5000, 5000) == Decimal("0")


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("GPT-4o", "gpt-4o"),
    ],
)
def test_snapshot_ids_are_priced_as_their_model(model: str, base: str) -> None:
    assert model_price(model) == model_price(base)
    assert cost_usd(model, 1000, 1000) == cost_usd(base, 1000, 1000)


@pytest.mark.parametrize(
    "model",
    [
        "mystery-model",
        "claude-sonnet-4-6",  # a newer version, not a snapshot of claude-sonnet-4
        "claude-opus-4",  # not claude-opus-4-1
        "gpt-4o-audio-preview",
        "gpt-4ox",
        "llama3.1:8b",
        "",
    ],
)
def test_unknown_models_have_unknown_cost_never_zero(model: str) -> None:
    assert model_price(model) is None
    assert cost_usd(model, 1000, 1000) is None


def test_settings_override_shipped_prices_and_add_models(settings: Any) -> None:
    settings.LLM_PRICES = {
        "claude-sonnet-4-5": {"input": 2, "output": 10},
        "llama3.1:8b": {"input": 0, "output": 0},
        "acme-large": {"input": "1.5", "output": 3.25},
    }

    assert cost_usd("claude-sonnet-4-5", MILLION, MILLION) == Decimal("12")
    assert cost_usd("claude-sonnet-4-5-20250929", MILLION, 0) == Decimal("2")
    assert cost_usd("llama3.1:8b", 5000, 5000) == Decimal("0")
    assert cost_usd("acme-large", MILLION, MILLION) == Decimal("4.75")
    assert cost_usd("gpt-4o", MILLION, 0) == Decimal("2.5")  # the rest of the table stays


@pytest.mark.parametrize(
    "prices",
    [
        {"acme": {"input": 1}},
        {"acme": {"input": "cheap", "output": 1}},
        {"acme": {"input": -1, "output": 1}},
        {"acme": {"input": True, "output": 1}},
        {"acme": 3},
        ["acme"],
    ],
)
def test_a_malformed_price_override_fails_loudly(settings: Any, prices: Any) -> None:
    settings.LLM_PRICES = prices

    with pytest.raises(ImproperlyConfigured, match="LLM_PRICES"):
        cost_usd("acme", 1, 1)
