"""What an LLM call cost, from a price table in USD per million input and output tokens.

The shipped table holds current Anthropic and OpenAI models; ``settings.LLM_PRICES``
(``LLM_PRICES_JSON``) adds models or overrides prices, for a negotiated rate or a local
model that costs nothing. A model we have no price for has an unknown cost (None), never 0:
a zero would make budgets and the cost dashboard quietly wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MILLION = Decimal(1_000_000)
MICRO_USD = Decimal("0.000001")


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal


def _price(input_usd: str, output_usd: str) -> ModelPrice:
    return ModelPrice(Decimal(input_usd), Decimal(output_usd))


PRICES: dict[str, ModelPrice] = {
    # Anthropic
    "claude-opus-4-5": _price("5", "25"),
    "claude-opus-4-1": _price("15", "75"),
    "claude-sonnet-4-5": _price("3", "15"),
    "claude-sonnet-4": _price("3", "15"),
    "claude-haiku-4-5": _price("1", "5"),
    "claude-3-5-haiku": _price("0.8", "4"),
    # OpenAI
    "gpt-5": _price("1.25", "10"),
    "gpt-5-mini": _price("0.25", "2"),
    "gpt-5-nano": _price("0.05", "0.40"),
    "gpt-4.1": _price("2", "8"),
    "gpt-4.1-mini": _price("0.4", "1.6"),
    "gpt-4.1-nano": _price("0.1", "0.4"),
    "gpt-4o": _price("2.5", "10"),
    "gpt-4o-mini": _price("0.15", "0.6"),
    # Ours
    "simulated-1": _price("0", "0"),
}

# What may follow a known id and still name the same model: a snapshot date
# ("-20250929", "-2024-08-06"), a numbered snapshot ("-0613", "-001") or "-latest".
# Not one or two digits: "claude-opus-4-1" is not "claude-opus-4" at another date.
SNAPSHOT_SUFFIX_RE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{3,4}|latest)")


def _decimal(value: object, model: str, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite() or number < 0:
        raise ImproperlyConfigured(
            f"LLM_PRICES[{model!r}][{field!r}] must be a number of USD per million tokens, "
            f"not {value!r}."
        )
    return number


def price_table() -> dict[str, ModelPrice]:
    """The shipped prices with ``settings.LLM_PRICES`` on top (overrides win)."""
    table = dict(PRICES)
    overrides = getattr(settings, "LLM_PRICES", None) or {}
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured(
            'LLM_PRICES must be {"model": {"input": x, "output": y}, ...} (USD per million).'
        )
    for model, entry in overrides.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry):
            raise ImproperlyConfigured(
                f'LLM_PRICES[{model!r}] must be {{"input": x, "output": y}} (USD per million).'
            )
        table[str(model).strip().lower()] = ModelPrice(
            _decimal(entry["input"], model, "input"),
            _decimal(entry["output"], model, "output"),
        )
    return table


def model_price(model: str) -> ModelPrice | None:
    """The price of ``model``: its own entry, else the longest entry it extends with a
    snapshot suffix ("claude-sonnet-4-5-20250929" → "claude-sonnet-4-5"); else None."""
    wanted = (model or "").strip().lower()
    table = price_table()
    if wanted in table:
        return table[wanted]
    best: str | None = None
    for known in table:
        if (
            wanted.startswith(known)
            and SNAPSHOT_SUFFIX_RE.fullmatch(wanted[len(known) :])
            and (best is None or len(known) > len(best))
        ):
            best = known
    return table[best] if best is not None else None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    """USD for one call, to the millionth of a dollar; None when the model has no price."""
    price = model_price(model)
    if price is None:
        return None
    cost = (Decimal(prompt_tokens) * price.input + Decimal(completion_tokens) * price.output) / (
        MILLION
    )
    return cost.quantize(MICRO_USD, rounding=ROUND_HALF_UP)
