"""Destination: where a tool call may send to — allow and deny lists of kinds of place
(email, slack, external_api, webhook), of domains, Slack channels and e-mail recipients.
Checked at tool calls."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from rest_framework import serializers

from controlplane.serializers import StrictCharField, StrictSerializer
from integrations.catalog import DESTINATIONS
from policies.types.base import Compiled, Evaluation, PolicyType, Verdict, rules_list
from policies.types.fields import LinesField, RulesForm, checkboxes, pairs


class DestinationRules(StrictSerializer):
    """Allow and deny lists; an empty allow list allows all but what is denied."""

    allowed_destinations = rules_list(serializers.ChoiceField(choices=DESTINATIONS), default=list)
    denied_destinations = rules_list(serializers.ChoiceField(choices=DESTINATIONS), default=list)
    allowed_domains = rules_list(StrictCharField(max_length=253), default=list)
    denied_domains = rules_list(StrictCharField(max_length=253), default=list)
    allowed_channels = rules_list(StrictCharField(max_length=100), default=list)
    denied_channels = rules_list(StrictCharField(max_length=100), default=list)
    # full addresses, or "@domain" for a whole domain
    allowed_recipients = rules_list(StrictCharField(max_length=254), default=list)
    denied_recipients = rules_list(StrictCharField(max_length=254), default=list)

    def validate_allowed_destinations(self, value: list[str]) -> list[str]:
        return [kind for kind in DESTINATIONS if kind in value]

    validate_denied_destinations = validate_allowed_destinations


class DestinationForm(RulesForm):
    policy_type = "destination"
    rules_class = DestinationRules
    allowed_destinations = checkboxes(
        pairs(DESTINATIONS),
        label="Allowed destinations",
        help_text="None ticked: every kind not denied.",
    )
    denied_destinations = checkboxes(pairs(DESTINATIONS), label="Denied destinations")
    allowed_domains = LinesField(help_text="One per line; empty: any domain not denied.")
    denied_domains = LinesField()
    allowed_channels = LinesField(help_text="Slack channels, one per line.")
    denied_channels = LinesField()
    allowed_recipients = LinesField(help_text="Addresses, or @domain for a whole domain.")
    denied_recipients = LinesField()


def evaluate(evaluation: Evaluation, policy: Compiled[None]) -> Verdict:
    """Deny a call to a denied (or not allowed) kind of place or target."""
    context = evaluation.context
    if context.kind != "tool_call":
        return Verdict("not_applicable", "destinations are checked at tool calls")
    rules = policy.rules
    kind = context.destination
    if kind in rules["denied_destinations"]:
        return Verdict("deny", f"{kind} is a denied destination")
    allowed = rules.get("allowed_destinations") or []
    if allowed and kind not in allowed:
        return Verdict("deny", f"{kind} is not an allowed destination")
    targets = context.target if isinstance(context.target, list) else [context.target]
    for target in (t for t in targets if t):
        problem = _destination_problem(kind, target, rules)
        if problem:
            return Verdict("deny", problem)
    return Verdict("pass", f"{kind} allowed")


def _domain_in(host: str, domains: Iterable[str]) -> bool:
    """The host is one of the domains or under one of them."""
    host = host.lower().rstrip(".")
    return any(
        host == d.lower().lstrip(".") or host.endswith("." + d.lower().lstrip(".")) for d in domains
    )


def _destination_problem(kind: str | None, target: str, rules: dict[str, Any]) -> str | None:
    """Why this one target is not allowed (None: it is)."""
    if kind == "slack":
        channel = target.lstrip("#").lower()
        denied = {c.lstrip("#").lower() for c in rules["denied_channels"]}
        allowed = {c.lstrip("#").lower() for c in rules["allowed_channels"]}
        if channel in denied or (allowed and channel not in allowed):
            return f"channel {target} is not allowed"
    elif kind == "email":
        address = target.lower()
        domain = "@" + address.rpartition("@")[2]
        denied = {r.lower() for r in rules["denied_recipients"]}
        allowed = {r.lower() for r in rules["allowed_recipients"]}
        if address in denied or domain in denied or (allowed and not ({address, domain} & allowed)):
            return f"recipient {target} is not allowed"
    else:
        host = urlsplit(target).hostname or target
        if _domain_in(host, rules["denied_domains"]) or (
            rules["allowed_domains"] and not _domain_in(host, rules["allowed_domains"])
        ):
            return f"domain {host} is not allowed"
    return None


POLICY_TYPE = PolicyType(
    name="destination",
    rules=DestinationRules,
    form=DestinationForm,
    evaluate=evaluate,
)
