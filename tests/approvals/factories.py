"""Approval requests made the way the product makes them: a policy asks for approval and a
run is triggered (the request opens at trigger time) or pauses at a tool call."""

from __future__ import annotations

from typing import Any

from approvals.models import ApprovalRequest
from controlplane.access import Actor
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories


def approval_policy(by: Any, name: str = "sign-off", *, priority: int = 100, **rules: Any) -> Any:
    """An approval_required policy for every agent; ``rules`` override the defaults
    (approval to execute, boss@company.com approves)."""
    return factories.policy(
        by,
        name,
        "approval_required",
        {"require_approval_for": ["execute"], "approvers": ["boss@company.com"], **rules},
        priority=priority,
    )


def pending_run(agent: Any, by: Any, value: Any = None) -> ApprovalRequest:
    """Trigger ``agent`` as ``by`` under an approval policy; the run waits, and its request
    is returned."""
    result = execution_trigger(
        TriggerRequest(
            actor=Actor(user=by), agent=agent, input=value or {}, source=Execution.Source.API
        )
    )
    assert result.execution.status == Execution.Status.PENDING_APPROVAL
    return ApprovalRequest.objects.get(execution=result.execution)


def approval_request(by: Any, agent: Any = None, *, trigger_by: Any = None, **rules: Any) -> Any:
    """A pending request to run ``agent`` (made if not given), triggered by ``trigger_by``
    (default ``by``), under a fresh approval policy with ``rules``."""
    agent = agent or factories.runnable_agent(by)
    approval_policy(factories.user("policy-admin", role="admin"), **rules)
    return pending_run(agent, trigger_by or by)
