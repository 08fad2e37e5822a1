from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder

register = template.Library()


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
