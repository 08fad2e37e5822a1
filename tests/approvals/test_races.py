"""Deciding races, with real concurrency against PostgreSQL (threads, each with its own
connection, released together): a double click, approvers at once, approve racing reject,
approve racing the expiry sweep, and M of N approvers all clicking at the same moment —
exactly one outcome each time, the losers answered 409, the run moved once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection  # noqa: F401 - read by the skipif condition
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import Actor
from controlplane.errors import Conflict
from controlplane.models import AuditEvent
from executions.models import Execution
from tests import factories
from tests.approvals.factories import approval_request
from tests.policies.test_concurrency import at_once

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="row locks and concurrent writers: PostgreSQL",
    ),
]

A = ApprovalRequest.Status


def approvers(count: int) -> list[Any]:
    return [
        factories.user(f"approver{n}", role="operator", email=f"approver{n}@company.com")
        for n in range(count)
    ]


def attempt(user: Any, request_id: Any, verdict: str = "approve") -> str:
    request = ApprovalRequest.objects.get(pk=request_id)
    try:
        return services.approval_decide(
            actor=Actor(user=user), request=request, verdict=verdict
        ).status
    except Conflict as conflict:
        return f"409:{conflict.code}"


def moves_of(execution_id: Any) -> Counter[str]:
    return Counter(
        AuditEvent.objects.filter(target_id=str(execution_id))
        .filter(action__startswith="execution.")
        .values_list("action", flat=True)
    )


def test_a_double_click_decides_once() -> None:
    owner = factories.user("alice", role="operator")
    (boss,) = approvers(1)
    request = approval_request(owner, approvers=[boss.email])

    answers = Counter(at_once(8, lambda _: attempt(boss, request.pk)))

    assert answers["approved"] == 1
    assert sum(answers.values()) == 8
    assert set(answers) <= {"approved", "409:approval_not_pending", "409:approval_already_decided"}
    assert ApprovalDecision.objects.filter(request=request).count() == 1
    assert moves_of(request.execution_id)["execution.queued"] == 1


def test_many_approvers_at_once_one_of_them_settles_it() -> None:
    owner = factories.user("alice", role="operator")
    people = approvers(10)
    request = approval_request(owner, approvers=[p.email for p in people])

    answers = Counter(at_once(10, lambda n: attempt(people[n], request.pk)))

    assert answers == {"approved": 1, "409:approval_not_pending": 9}
    request.refresh_from_db()
    assert request.status == A.APPROVED
    assert moves_of(request.execution_id)["execution.queued"] == 1


def test_approve_racing_reject_ends_in_exactly_one_outcome() -> None:
    owner = factories.user("alice", role="operator")
    people = approvers(10)
    request = approval_request(owner, approvers=[p.email for p in people])

    answers = Counter(
        at_once(10, lambda n: attempt(people[n], request.pk, "approve" if n % 2 else "reject"))
    )

    settled = {k: v for k, v in answers.items() if not k.startswith("409")}
    assert sum(settled.values()) == 1
    assert answers["409:approval_not_pending"] == 9
    request.refresh_from_db()
    execution = Execution.objects.get(pk=request.execution_id)
    expected = {A.APPROVED: "queued", A.REJECTED: "cancelled"}[request.status]
    assert execution.status == expected
    assert ApprovalDecision.objects.filter(request=request).count() == 1


def test_m_approvers_clicking_together_settle_it_exactly_when_the_mth_counts() -> None:
    owner = factories.user("alice", role="operator")
    people = approvers(3)
    request = approval_request(owner, approvers=[p.email for p in people], required_approvals=3)

    answers = Counter(at_once(3, lambda n: attempt(people[n], request.pk)))

    assert answers == {"pending": 2, "approved": 1}  # never stuck at 3 approvals and pending
    request.refresh_from_db()
    assert request.status == A.APPROVED
    assert request.decisions.count() == 3
    assert moves_of(request.execution_id)["execution.queued"] == 1


def test_approvals_racing_the_expiry_sweep_end_in_exactly_one_outcome() -> None:
    owner = factories.user("alice", role="operator")
    people = approvers(8)
    request = approval_request(owner, approvers=[p.email for p in people])
    later = timezone.now() + timedelta(days=2)

    def work(n: int) -> str:
        if n < 2:
            return f"expired:{services.approval_expire_due(later)}"
        return attempt(people[n], request.pk)

    answers = Counter(at_once(8, work))

    request.refresh_from_db()
    execution = Execution.objects.get(pk=request.execution_id)
    if request.status == A.EXPIRED:
        assert answers["expired:1"] == 1
        assert "approved" not in answers
        assert execution.status == "expired"
    else:
        assert request.status == A.APPROVED
        assert answers["approved"] == 1
        assert answers["expired:1"] == 0
        assert execution.status == "queued"
    assert moves_of(request.execution_id)["execution.created"] == 1
    assert sum(moves_of(request.execution_id).values()) == 2  # created, then one move
