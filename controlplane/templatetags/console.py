from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Protocol

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.template.defaultfilters import floatformat
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


class _Run(Protocol):
    """What ``run_model`` reads of an execution (the kernel does not import that app)."""

    llm_provider: str
    llm_model: str


@register.filter
def as_json(value: Any) -> str:
    """Pretty JSON for <pre> blocks (autoescaped by the template)."""
    return json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)


@register.filter
def as_json_inline(value: Any) -> str:
    return json.dumps(value, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)


@register.filter
def usd(value: Decimal | float | None) -> str:
    """Dollars and cents; four places under a cent (a run's cost often is a fraction of
    one, and $0.00 would say it was free); a dash for unknown."""
    if value is None:
        return "—"
    amount = Decimal(value)
    places = 4 if 0 < abs(amount) < Decimal("0.01") else 2
    return f"${amount:,.{places}f}"


@register.filter
def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


@register.filter
def latency(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "—"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.1f} s"


# A run's model and cost, as filters rather than included templates: the executions list
# shows 50 rows, and an include per cell was most of the page's time.


@register.filter
def run_model(execution: _Run) -> SafeString:
    """The model a run used, with its provider; the offline provider marked as such."""
    provider, model = execution.llm_provider, execution.llm_model
    if provider == "simulated":
        return format_html(
            '<span class="badge provider-simulated" title="The built-in offline provider: no '
            'real LLM was called">simulated</span>{}',
            format_html(' <span class="muted small">{}</span>', model) if model else "",
        )
    if model:
        return format_html(
            "{}{}",
            model,
            format_html(' <span class="muted small">{}</span>', provider) if provider else "",
        )
    return format_html("{}", provider or "—")


@register.filter
def run_cost(cost: Decimal | None) -> SafeString:
    """Dollars to four places; "unknown" when a model without a known price was used."""
    if cost is None:
        return format_html(
            '<span title="{}">unknown</span>', "A model without a known price was used"
        )
    return format_html("${}", floatformat(cost, 4))
