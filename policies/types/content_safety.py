"""Content safety: PII, prompt injection and the policy's own patterns (``policies.safety``)
in what the rules ``check``: a run's input, a tool call's arguments, a tool's result before
the model reads it (indirect prompt injection arrives that way), and the model's answer.
Blocked, redacted (the payload goes on redacted, and later content-safety policies read it
so) or only flagged."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.patterns import Pattern, UnsafePattern, check_pattern, compile_pattern
from controlplane.serializers import StrictCharField, StrictSerializer
from policies import safety
from policies.types.base import Compiled, Evaluation, PolicyType, Verdict, rules_list
from policies.types.fields import PatternsField, RulesForm, checkboxes, rule_choice, rule_choices

# (name, compiled regex, action) per custom pattern, compiled once per index build.
Patterns = tuple[tuple[str, Pattern, str], ...]


# What a policy may check, by the decision's context kind.
CHECKED = {
    "input": "trigger",
    "tool_payload": "tool_call",
    "tool_result": "tool_result",
    "output": "output",
}
WHERE = {kind: where for where, kind in CHECKED.items()}


class PatternSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    pattern = StrictCharField(max_length=500)
    action = serializers.ChoiceField(choices=["block", "redact", "flag"], default="block")

    def validate_pattern(self, value: str) -> str:
        try:
            return check_pattern(value)
        except UnsafePattern as exc:
            raise ValidationError(str(exc)) from None


class ContentSafetyRules(StrictSerializer):
    pii = serializers.ChoiceField(choices=["block", "redact", "off"], default="block")
    prompt_injection = serializers.ChoiceField(choices=["block", "flag", "off"], default="block")
    custom_patterns = PatternSerializer(many=True, required=False, default=list)
    check = rules_list(
        serializers.ChoiceField(choices=list(CHECKED)),
        default=lambda: list(CHECKED),
        min_length=1,
    )


class ContentSafetyForm(RulesForm):
    policy_type = "content_safety"
    rules_class = ContentSafetyRules
    pii = rule_choice(
        ContentSafetyRules,
        "pii",
        label="Personal data (PII)",
        help_text="e-mail addresses, phone numbers, card numbers, …",
    )
    prompt_injection = rule_choice(ContentSafetyRules, "prompt_injection", label="Prompt injection")
    custom_patterns = PatternsField(
        label="Custom patterns",
        help_text="One per line: name: regex, or name: regex: action (block, redact, flag).",
    )
    check = checkboxes(
        rule_choices(ContentSafetyRules, "check"),
        label="Check",
        initial=list(CHECKED),
        help_text=(
            "input: a run's input; tool_payload: the arguments of every tool call; "
            "tool_result: what a tool answered, before the model reads it; output: the "
            "model's answer."
        ),
    )

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        rules = super().to_rules(cleaned)
        rules["check"] = cleaned.get("check", [])
        rules["custom_patterns"] = cleaned.get("custom_patterns", [])
        return rules


def prepare(rules: dict[str, Any]) -> Patterns:
    """The custom patterns compiled (by RE2, see ``controlplane.patterns``), once per index
    build rather than per decision."""
    return tuple(
        (item["name"], compile_pattern(item["pattern"]), item["action"])
        for item in rules.get("custom_patterns", [])
    )


def evaluate(evaluation: Evaluation, policy: Compiled[Patterns]) -> Verdict:
    """Deny what is to be blocked; else redact or flag what was found."""
    where = WHERE[evaluation.context.kind]
    rules = policy.rules
    if where not in rules["check"]:
        return Verdict("not_applicable", f"this policy does not check the {where}")
    findings = safety.scan(evaluation.payload_text(), rules, list(policy.ahead))
    if not findings:
        return Verdict("pass", f"nothing found in the {where}")
    found = ", ".join(sorted({finding.kind for finding in findings}))
    blocking = [f for f in findings if f.action == "block"]
    if blocking:
        return Verdict(
            "deny", f"the {where} contains {', '.join(sorted({f.kind for f in blocking}))}"
        )
    if any(f.action == "redact" for f in findings):
        redacted = safety.redact(evaluation.context.payload, rules, list(policy.ahead))
        return Verdict("redact", f"redacted from the {where}: {found}", payload=redacted)
    return Verdict("flag", f"flagged in the {where}: {found}")


POLICY_TYPE = PolicyType(
    name="content_safety",
    rules=ContentSafetyRules,
    form=ContentSafetyForm,
    evaluate=evaluate,
    prepare=prepare,
    reads_redacted=True,
    screens_content=True,
)
