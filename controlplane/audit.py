"""The audit log: record a change, chain it, verify the chain.

``audit_record`` is called by the services inside the transaction of the change it
describes, so an event exists exactly when its change was committed. What an event is about
is an ``AuditTarget``: the models that are audited say so themselves (``audit_target()``), so
that a call names only who, what happened, the object and the change. ``audit_seal`` (beat,
every ``AUDIT_SEAL_INTERVAL_SECONDS``) then gives the committed events their place in the
hash chain: writers never queue behind one global lock, and the chain covers every event
within seconds of its commit. ``audit_verify`` seals what is pending, then checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.access import Actor
from controlplane.models import AuditChainHead, AuditEvent, AuditTarget

GENESIS_HASH = "0" * 64


class Audited(Protocol):
    """A model that says what its events are about."""

    def audit_target(self) -> AuditTarget: ...


REDACTED = "[redacted]"

# Keys whose values never reach the log: "webhook_secret", "api_key", "access_token",
# "Authorization"... but not "max_tokens" or "prompt_tokens".
_SECRET_KEY = re.compile(
    r"(^|[_-])(secret|password|passwd|token|api[_-]?key|private[_-]?key|credentials?|"
    r"authorization|cookie|signature)($|[_-])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str = ""


NO_REQUEST = RequestContext()
request_context: ContextVar[RequestContext] = ContextVar(
    "audit_request_context", default=NO_REQUEST
)


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if _SECRET_KEY.search(str(key)) and item not in (None, "")
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def _as_json(value: Any) -> Any:
    """Plain JSON types, exactly as they will read back from the database."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _event_digest(event: AuditEvent) -> str:
    payload = {
        "seq": event.seq,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "actor_type": event.actor_type,
        "actor_user_id": event.actor_user_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "agent_id": str(event.agent_id) if event.agent_id else None,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "ip": event.ip,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _locked_head() -> AuditChainHead:
    head = next(iter(AuditChainHead.objects.select_for_update().filter(pk=1)), None)
    if head is None:
        try:
            with transaction.atomic():
                AuditChainHead.objects.create(pk=1, seq=0, hash=GENESIS_HASH)
        except IntegrityError:
            pass  # created by a concurrent writer
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: AuditTarget | Audited,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one event, in the caller's transaction: the change and its event stand or fall
    together. It joins the hash chain when ``audit_seal`` runs (within seconds, on beat), so
    that writers never wait for one another."""
    about = target if isinstance(target, AuditTarget) else target.audit_target()
    context = request_context.get()
    return AuditEvent.objects.create(
        created_at=timezone.now(),
        actor_type=actor.kind,
        actor_user_id=actor.user.pk if actor.user is not None else None,
        actor_label=actor.label[:200],
        action=action,
        target_type=about.type,
        target_id=str(about.id)[:64],
        target_repr=str(about.repr)[:200],
        agent_id=about.agent_id,
        before=_as_json(redact(before)),
        after=_as_json(redact(after)),
        request_id=context.request_id,
        ip=context.ip,
    )


def audit_seal(*, limit: int = 5000) -> int:
    """Chain the committed events not yet in the chain, in the order they are found; returns
    how many. One sealer at a time (the head row is locked); a repeat finds nothing."""
    with transaction.atomic():
        head = _locked_head()
        pending = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:limit])
        for event in pending:
            event.seq, event.prev_hash = head.seq + 1, head.hash
            event.hash = _event_digest(event)
            head.seq, head.hash = event.seq, event.hash
        if pending:
            AuditEvent.objects.bulk_update(pending, ["seq", "prev_hash", "hash"], batch_size=500)
            head.save(update_fields=["seq", "hash"])
    return len(pending)


def audit_seal_all() -> int:
    sealed = total = audit_seal()
    while sealed:
        sealed = audit_seal()
        total += sealed
    return total


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    message: str
    seq: int | None = None


def audit_verify(*, chunk_size: int = 2000, seal: bool = True) -> ChainReport:
    """Walk the chain from the first event; report the first changed, inserted or removed one.
    Events not yet chained are chained first (``seal``), so every committed event is checked."""
    if seal:
        audit_seal_all()
    head = AuditChainHead.objects.filter(pk=1).first()
    expected_seq, expected_prev = 1, GENESIS_HASH
    checked = 0
    for event in _events_in_order(chunk_size):
        seq = cast(int, event.seq)  # chained: _events_in_order reads no other
        if seq > expected_seq:
            return ChainReport(
                False,
                checked,
                f"event #{expected_seq} was removed: the chain jumps from "
                f"#{expected_seq - 1} to #{seq}",
                expected_seq,
            )
        if seq < expected_seq:
            return ChainReport(False, checked, f"event #{seq} was inserted twice", seq)
        if _event_digest(event) != event.hash:
            return _explain_mismatch(event, checked)
        if event.prev_hash != expected_prev:
            return ChainReport(
                False,
                checked,
                f"event #{seq} was inserted or replaced: it does not follow event #{seq - 1}",
                seq,
            )
        checked += 1
        expected_seq, expected_prev = seq + 1, event.hash
    last_seq = expected_seq - 1
    head_seq = head.seq if head else 0
    if head_seq > last_seq:
        return ChainReport(
            False,
            checked,
            f"event #{last_seq + 1} was removed: the chain head is #{head_seq} but the log "
            f"ends at #{last_seq}",
            last_seq + 1,
        )
    if head_seq < last_seq or (head is not None and head.hash != expected_prev):
        return ChainReport(
            False,
            checked,
            f"event #{head_seq + 1} was inserted after the chain head #{head_seq}",
            head_seq + 1,
        )
    return ChainReport(True, checked, f"audit chain intact: {checked} events, head #{last_seq}")


def _explain_mismatch(event: AuditEvent, checked: int) -> ChainReport:
    """An event whose hash fits its content under a neighbouring number was renumbered:
    one was inserted before it, or removed before it, and the rest shifted to hide it."""
    original_seq = cast(int, event.seq)  # a chained event (audit_verify's)
    for shift, what in ((-1, "inserted"), (1, "removed")):
        event.seq = original_seq + shift
        fits = _event_digest(event) == event.hash
        event.seq = original_seq
        if fits:
            culprit = original_seq - 1 if what == "inserted" else original_seq
            return ChainReport(
                False,
                checked,
                f"event #{culprit} was {what}: the events after it were renumbered "
                f"(#{original_seq} was #{original_seq + shift})",
                culprit,
            )
    return ChainReport(
        False,
        checked,
        f"event #{original_seq} was changed: its content no longer matches its hash",
        original_seq,
    )


def _events_in_order(chunk_size: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        chunk = list(
            AuditEvent.objects.filter(seq__isnull=False, seq__gt=last).order_by("seq")[:chunk_size]
        )
        if not chunk:
            return
        yield from chunk
        last = cast(int, chunk[-1].seq)  # seq__isnull=False
