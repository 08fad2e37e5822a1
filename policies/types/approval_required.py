"""Approval required: runs (``execute``) or calls of the listed tool actions wait for a
person's approval; the rules say who approves, how many must, and what expiry and a
rejection do (``approvals`` opens and decides the requests)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
)
from policies.types.base import (
    APPROVABLE_ACTIONS,
    RISK_LEVELS,
    Compiled,
    Evaluation,
    PolicyType,
    Verdict,
    rules_list,
)
from policies.types.fields import LinesField, RulesForm, checkboxes, pairs, rule_choice

_APPROVER = re.compile(r"^(group:[\w.@+-]{1,150}|[^@\s]+@[^@\s]+\.[^@\s]+)$")


class ApprovalRules(StrictSerializer):
    require_approval_for = rules_list(
        serializers.ChoiceField(choices=APPROVABLE_ACTIONS), min_length=1
    )
    approvers = rules_list(StrictCharField(max_length=254), default=list)
    required_approvals = StrictIntegerField(min_value=1, max_value=20, default=1)
    auto_expire_hours = StrictFloatField(min_value=0.01, max_value=720, default=24)
    risk_threshold = serializers.ChoiceField(choices=RISK_LEVELS, default="medium")
    on_expire = serializers.ChoiceField(choices=["reject", "approve"], default="reject")
    on_reject = serializers.ChoiceField(choices=["tool_error", "cancel"], default="tool_error")
    allow_self_approval = StrictBooleanField(default=False)
    warn_before_minutes = StrictIntegerField(
        min_value=1, max_value=43_200, required=False, allow_null=True, default=None
    )

    def validate_approvers(self, value: list[str]) -> list[str]:
        for approver in value:
            if not _APPROVER.match(approver):
                raise ValidationError(f"{approver!r} is neither an e-mail address nor group:NAME.")
        return list(dict.fromkeys(value))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        people = [a for a in attrs.get("approvers", []) if not a.startswith("group:")]
        groups = [a for a in attrs.get("approvers", []) if a.startswith("group:")]
        if not groups and people and attrs.get("required_approvals", 1) > len(people):
            raise ValidationError(
                {"required_approvals": [f"Only {len(people)} approvers are listed."]}
            )
        return attrs


class ApprovalForm(RulesForm):
    policy_type = "approval_required"
    rules_class = ApprovalRules
    require_approval_for = checkboxes(
        pairs(APPROVABLE_ACTIONS),
        label="Require approval for",
        help_text="execute: every run; a tool action: every call of that tool.",
    )
    approvers = LinesField(help_text="E-mail addresses, or group:NAME, one per line.")
    required_approvals = forms.IntegerField(required=False, initial=1, label="Approvals needed")
    auto_expire_hours = forms.FloatField(required=False, initial=24, label="Expires after (hours)")
    risk_threshold = rule_choice(ApprovalRules, "risk_threshold", label="Risk")
    on_expire = rule_choice(ApprovalRules, "on_expire")
    on_reject = rule_choice(ApprovalRules, "on_reject")
    allow_self_approval = forms.BooleanField(required=False, label="Allow self-approval")
    warn_before_minutes = forms.IntegerField(
        required=False, label="Warn before expiry (minutes)", help_text="Optional."
    )

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        rules = super().to_rules(cleaned)
        rules["require_approval_for"] = cleaned.get("require_approval_for", [])
        return rules


def evaluate(evaluation: Evaluation, policy: Compiled[None]) -> Verdict:
    """Ask for approval of a listed action, unless a person approved it already."""
    context = evaluation.context
    if context.action in policy.rules["require_approval_for"]:
        if context.approved:
            return Verdict("pass", f"{context.action} was approved")
        return Verdict("require_approval", f"{context.action} needs approval")
    return Verdict("not_applicable", f"{context.action} needs no approval here")


POLICY_TYPE = PolicyType(
    name="approval_required",
    rules=ApprovalRules,
    form=ApprovalForm,
    evaluate=evaluate,
    names_approvers=True,
)
