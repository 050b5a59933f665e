"""Close intent records left open by a crash between a cluster write and its outcome record.

An open intent means: the server promised to write, may have written, and died before saying. The live
object is the only witness. At start-up each open intent is settled under the same pool lock the writer
held (so an intent that a live process is still working on is waited for, not judged), with a
``reconciled`` record saying what the live object shows. Its ``changes`` are empty only when the live
object proves the change was not made; otherwise (made, or cannot tell) it keeps counting for cooldowns
and budgets: fail closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_autoscale.errors import AutoscaleError, Conflict
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import ActionKind, ActionStatus, AuditRecord, Change, PoolRef

if TYPE_CHECKING:
    from mcp_autoscale.actions.gate import Gate

log = get_logger(__name__)

RECONCILER = "mcp-autoscale:reconcile"
_ADDRESS = ("namespace", "deployment", "name")


def _intended(intent: AuditRecord) -> dict[str, Any]:
    return {k: v for k, v in intent.arguments.items() if k not in _ADDRESS and v is not None}


def live_outcome(gate: Gate, intent: AuditRecord) -> tuple[bool | None, str, dict[str, Any]]:
    """(applied?, what the live object shows, live values). ``None``: the live object cannot tell."""
    wanted = _intended(intent)
    try:
        if intent.tool == ActionKind.REQUEST_GPU_NODES.value:
            return None, "GPU node requests leave no field to compare with the request", {}
        namespace, _, name = intent.target.partition("/")
        pool = gate.backend.get_pool(PoolRef(namespace=namespace, name=name))
    except AutoscaleError as err:
        return None, f"the live object could not be read ({err})", {}
    if intent.tool == ActionKind.SCALE_DEPLOYMENT.value:
        live: dict[str, Any] = {"replicas": pool.desired_replicas}
    elif pool.autoscaler is not None:
        live = {k: getattr(pool.autoscaler, k, None) for k in wanted}
    else:
        return False, "the live pool has no autoscaler to carry the patch", {}
    shown = ", ".join(f"{k}={live.get(k)}" for k in wanted) or "nothing comparable"
    if any(live.get(k) is None for k in wanted):
        return None, f"the live object shows {shown}", live
    applied = all(live.get(k) == v for k, v in wanted.items())
    return applied, f"the live object shows {shown}", live


def reconcile_one(gate: Gate, intent: AuditRecord) -> AuditRecord:
    applied, shown, live = live_outcome(gate, intent)
    wanted = _intended(intent)
    if applied is False:
        verdict_text = "the change was not applied"
        changes: list[Change] = []
    else:
        verdict_text = (
            "the change was applied" if applied else "cannot tell: counted as applied (fail closed)"
        )
        changes = [Change(field=k, before=None, after=live.get(k, v)) for k, v in wanted.items()] or [
            Change(field="request", after=wanted or intent.arguments)
        ]
    message = (
        f"Reconciled at start-up: the process that wrote intent {intent.id} stopped before recording its "
        f"outcome; {shown} (intended {', '.join(f'{k}={v}' for k, v in wanted.items()) or '-'}): "
        f"{verdict_text}."
    )
    record = gate.audit.append(
        ts=gate.clock(),
        action_id=intent.action_id,
        tool=intent.tool,
        target=intent.target,
        arguments=intent.arguments,
        rationale=f"start-up reconciliation of intent {intent.id}",
        caller=RECONCILER,
        dry_run=False,
        verdict=intent.verdict,
        status=ActionStatus.RECONCILED,
        changes=changes,
        message=message,
        inverse=intent.inverse if changes else None,
        cost_delta_per_hour=intent.cost_delta_per_hour if changes else None,
        idempotency_key=intent.idempotency_key,
        proposal_id=intent.proposal_id,
        approver=intent.approver,
        intent_id=intent.id,
    )
    log.warning("gate.intent_reconciled", intent=intent.id, target=intent.target, outcome=verdict_text)
    return record


def reconcile_intents(gate: Gate) -> list[AuditRecord]:
    """Settle every open intent whose writer is gone; one held by a live writer is left to it."""
    out = []
    for intent in gate.audit.open_intents():
        try:
            with gate.lock.acquire(intent.target, gate.lock_timeout_s):
                if intent.id not in {i.id for i in gate.audit.open_intents()}:
                    continue  # its writer finished while we waited for the lock
                out.append(reconcile_one(gate, intent))
        except Conflict as err:
            log.warning("gate.intent_left_open", intent=intent.id, target=intent.target, error=str(err))
    return out
