"""`pending`, `approve ID`, `reject ID`, `rollback AUDIT_ID`: humans decide out of band."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mcp_autoscale.actions import Gate
from mcp_autoscale.approvals import delegated
from mcp_autoscale.commands._common import (
    AuditOpt,
    BackendOpt,
    ContextOpt,
    DryRunOpt,
    PolicyOpt,
    build_settings,
    echo_out,
    exit_on_error,
)
from mcp_autoscale.errors import Forbidden, InvalidInput, NotFound
from mcp_autoscale.identity import os_user
from mcp_autoscale.models import ActionResult, ActionStatus
from mcp_autoscale.policy import Policy
from mcp_autoscale.untrusted import lines, neutralise, quoted

StateDirOpt = Annotated[
    Path | None, typer.Option("--state-dir", help="Where proposals and locks live (default: XDG state dir).")
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Act on behalf of NAME (only where the policy sets approvals.allow_delegation; both names "
        "are recorded). Default: you, as the operating system knows you.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
DigestOpt = Annotated[
    str | None,
    typer.Option(
        "--digest",
        help="The digest `pending` (or the webhook) showed: refuse unless the proposal is exactly that action.",
    ),
]


def _gate(
    backend: str | None,
    policy: Path | None,
    audit: Path | None,
    state_dir: Path | None,
    context: str | None,
    dry_run: bool = False,
) -> Gate:
    """The same gate the server builds (same policy, audit log, state dir and backend settings)."""
    from mcp_autoscale.app import build_app

    settings = build_settings(
        backend=backend, policy=policy, audit=audit, context=context, dry_run=dry_run, state_dir=state_dir
    )
    return build_app(settings).gate


def _same_log(gate: Gate, proposal_id: str) -> None:
    """Refuse to decide a proposal whose audit record is in another log: the decision would be recorded
    where nobody who proposed it looks, and the chain of that proposal would be split in two."""
    p = gate.proposals.get(proposal_id)
    if p.audit_id is None:
        return
    try:
        gate.audit.get(p.audit_id)
    except NotFound:
        raise InvalidInput(
            f"proposal {p.id} was recorded in another audit log (its record {p.audit_id} is not in "
            f"{gate.audit.where}): give --audit (or MCP_AUTOSCALE_AUDIT_FILE) the log of the server "
            "that proposed it"
        ) from None


SIM_SERVER_OWNS = (
    "the simulated fleet lives in memory in the server process that proposed or applied this, so this "
    "command cannot reach it (a fresh simulator here would be another fleet)"
)


def _who(name: str | None, policy: Policy | None = None) -> str:
    """The approver: the operating-system user; with ``--as NAME``, NAME delegated by that user."""
    me = f"cli:{os_user()}"
    if not name or name == os_user():
        return me
    if policy is None or not policy.approvals.allow_delegation:
        raise Forbidden(
            f"--as {name}: this policy does not allow delegated approvals (approvals.allow_delegation); "
            f"you approve as {os_user()}, the user the operating system says you are"
        )
    return delegated(f"cli:{name}", me)


def _print(result: ActionResult, as_json: bool) -> None:
    if as_json:
        echo_out(result.model_dump_json(indent=2))
        return
    echo_out(f"{result.status.value}: {neutralise(result.message)}")
    for note in result.notes:  # notes may span lines (a Git diff): each line on its own, neutralised
        echo_out("\n".join(f"note: {line}" for line in lines(note)))
    if result.audit_id:
        echo_out(f"audit id: {result.audit_id}")


def _exit_for(result: ActionResult) -> None:
    ok = (
        ActionStatus.APPLIED,
        ActionStatus.DRY_RUN,
        ActionStatus.REJECTED,
        ActionStatus.PENDING_APPROVAL,
        ActionStatus.PROPOSED_COMMIT,
        ActionStatus.NO_CHANGE,
    )
    if result.status not in ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command()
    def pending(
        backend: BackendOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        state_dir: StateDirOpt = None,
        context: ContextOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List proposals waiting for a human (expired ones are closed and audited)."""
        with exit_on_error():
            props = _gate(backend, policy, audit, state_dir, context).pending()
        if as_json:
            echo_out(json.dumps([p.model_dump(mode="json") for p in props], indent=2))
            return
        if not props:
            echo_out("no pending proposals")
        for p in props:  # the rationale (and anything an argument fed) is shown neutralised, set apart
            echo_out(
                f"{p.id}  {p.status.value:<8} {neutralise(p.summary())}\n"
                f"    policy: {neutralise('; '.join(p.verdict.reasons))}\n"
                f"    by {neutralise(p.action.caller)} at {p.created_at:%Y-%m-%d %H:%M:%S}Z, expires "
                f"{p.expires_at:%Y-%m-%d %H:%M:%S}Z, approve via {' or '.join(p.via)}"
                + (f", approvers {neutralise(', '.join(p.approvers))}" if p.approvers else "")
                + (
                    f"\n    approve exactly this: mcp-autoscale approve {p.id} --digest {p.digest[:12]}"
                    if p.digest
                    else ""
                )
                + f"\n    why {quoted(p.action.rationale)}"
            )

    @app.command()
    def approve(
        proposal_id: Annotated[str, typer.Argument(help="Proposal id (see `mcp-autoscale pending`)")],
        who: AsOpt = None,
        digest: DigestOpt = None,
        defer: Annotated[
            bool,
            typer.Option(
                "--defer",
                help="Only record the approval; a server sharing the state dir runs it at its next call.",
            ),
        ] = False,
        backend: BackendOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        state_dir: StateDirOpt = None,
        context: ContextOpt = None,
        dry_run: DryRunOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Approve a pending proposal; policy and data freshness are re-checked before it runs."""
        with exit_on_error():
            gate = _gate(backend, policy, audit, state_dir, context, dry_run)
            _same_log(gate, proposal_id)
            sim = gate.settings.backend == "sim"
            if sim or defer:
                p = gate.approve_later(proposal_id, _who(who, gate.policy), digest=digest)
                if p.status.value != "approved":
                    echo_out(f"{p.id} {p.status.value}: {p.note or 'nothing will run'}")
                    raise typer.Exit(1)
                why = f"sim backend: {SIM_SERVER_OWNS}. " if sim and not defer else ""
                echo_out(
                    f"{p.id} approved by {p.decided_by}; nothing has changed yet. {why}A server that shares "
                    f"this state dir ({gate.settings.state_dir}) runs it at its next tool call, re-checking "
                    "the policy then; if none is running, it waits until "
                    f"{p.expires_at.isoformat(timespec='seconds')} and then expires. `mcp-autoscale pending` "
                    "shows it as approved until it runs."
                )
                return
            result = gate.approve(proposal_id, _who(who, gate.policy), digest=digest)
        _print(result, as_json)
        _exit_for(result)

    @app.command()
    def reject(
        proposal_id: Annotated[str, typer.Argument(help="Proposal id (see `mcp-autoscale pending`)")],
        reason: Annotated[str, typer.Option("--reason", help="Why not (recorded in the audit log)")],
        who: AsOpt = None,
        digest: DigestOpt = None,
        backend: BackendOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        state_dir: StateDirOpt = None,
        context: ContextOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Reject a pending proposal: nothing changes, the reason is audited."""
        with exit_on_error():
            if not reason.strip():
                raise InvalidInput("--reason is required: say why not (it is recorded in the audit log)")
            gate = _gate(backend, policy, audit, state_dir, context)
            _same_log(gate, proposal_id)
            result = gate.reject(proposal_id, _who(who, gate.policy), reason, digest=digest)
        _print(result, as_json)

    @app.command()
    def rollback(
        audit_id: Annotated[str, typer.Argument(help="Audit record id of an applied action")],
        rationale: Annotated[str, typer.Option("--rationale", help="Why undo it (required)")],
        backend: BackendOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        state_dir: StateDirOpt = None,
        context: ContextOpt = None,
        dry_run: DryRunOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Propose the inverse of an applied action through the same gate (policy, approval, audit)."""
        with exit_on_error():
            gate = _gate(backend, policy, audit, state_dir, context)
            if gate.settings.backend == "sim":
                raise InvalidInput(
                    f"rollback {audit_id} on the sim backend: {SIM_SERVER_OWNS}. Ask that server instead: "
                    f"call the rollback_action tool with audit_id={audit_id!r} (any MCP client)"
                )
            try:
                gate.audit.get(audit_id)
            except NotFound as err:
                raise NotFound(f"{err} (is --audit the log of the server that applied it?)") from None
            result = gate.rollback(audit_id, rationale, caller=_who(None), dry_run=dry_run)
        _print(result, as_json)
        _exit_for(result)
