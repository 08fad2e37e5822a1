"""Content safety, the basic version: PII (e-mail addresses, phone numbers written the
North American way, US social security numbers, payment card numbers that pass the Luhn
check) and prompt-injection phrases, plus a policy's own patterns. Regexes, not a model: it
catches the obvious and says exactly what it found. The policy's own patterns were compiled by
RE2 (``controlplane.patterns``), so no input makes a scan take exponential time."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from controlplane.patterns import Pattern

PII: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "phone": re.compile(
        r"(?<![\w+(])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]\d{4}(?!\d)"
    ),
    "ssn": re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"),
    "card": re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)"),
}

INJECTION = re.compile(
    r"ignore (all |any )?(the )?(previous|prior|above) (instructions|prompts?|rules)"
    r"|disregard (the |your )?(system prompt|previous instructions|instructions)"
    r"|you are now (in )?(dan|developer mode|jailbroken)"
    r"|reveal (the |your )?(system prompt|hidden instructions)"
    r"|forget (everything|all) (you were told|above)",
    re.IGNORECASE,
)

REDACTED = "[redacted]"


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_pii(kind: str, match: str) -> bool:
    if kind == "card":
        digits = re.sub(r"\D", "", match)
        return 13 <= len(digits) <= 19 and _luhn(digits)
    return True


def _redacted_if_pii(kind: str, match: re.Match[str]) -> str:
    return REDACTED if _is_pii(kind, match.group()) else match.group()


@dataclass(frozen=True)
class Finding:
    kind: str  # "pii:email", "prompt_injection", "pattern:<name>"
    action: str  # what the policy says to do with it: block, redact, flag
    excerpt: str


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def scan(
    value: Any, rules: dict[str, Any], patterns: list[tuple[str, Pattern, str]]
) -> list[Finding]:
    text = as_text(value)
    findings: list[Finding] = []
    if rules.get("pii", "block") != "off":
        for kind, pattern in PII.items():
            for match in pattern.finditer(text):
                if _is_pii(kind, match.group()):
                    findings.append(Finding(f"pii:{kind}", rules["pii"], _excerpt(match.group())))
    if rules.get("prompt_injection", "block") != "off":
        for match in INJECTION.finditer(text):
            findings.append(
                Finding("prompt_injection", rules["prompt_injection"], match.group()[:80])
            )
    for name, custom, action in patterns:
        for found in custom.finditer(text):
            findings.append(Finding(f"pattern:{name}", action, _excerpt(found.group())))
    return findings


def _excerpt(text: str) -> str:
    """Enough to recognise what was found, not enough to leak it."""
    return text[:2] + "…" + text[-2:] if len(text) > 6 else "…"


def redact(value: Any, rules: dict[str, Any], patterns: list[tuple[str, Pattern, str]]) -> Any:
    """``value`` with what is marked "redact" replaced, recursively through JSON."""
    if isinstance(value, dict):
        return {key: redact(item, rules, patterns) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, rules, patterns) for item in value]
    if not isinstance(value, str):
        return value
    if rules.get("pii") == "redact":
        for kind, pattern in PII.items():
            value = pattern.sub(partial(_redacted_if_pii, kind), value)
    for _, custom, action in patterns:
        if action == "redact":
            value = custom.sub(REDACTED, value)
    return value
