"""``mcp-autoscale audit verify FILE`` and ``audit show``: check and read the tamper-evident audit log."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.audit.log import head_path
from mcp_autoscale.audit.verify import verify_records
from mcp_autoscale.commands._common import build_settings, echo_out, exit_on_error, fail
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import ActionKind, ActionStatus, AuditRecord, Decision
from mcp_autoscale.preflight import readable_file
from mcp_autoscale.state.base import AuditStore, StateStore
from mcp_autoscale.untrusted import neutralise, quoted

STATUSES = tuple(s.value for s in ActionStatus)
VERDICTS = tuple(d.value for d in Decision)
TOOLS = tuple(k.value for k in ActionKind)

audit_app = typer.Typer(help="Verify and read the audit log.", no_args_is_help=True)

KeyEnvOpt = Annotated[
    str,
    typer.Option("--key-env", help="Environment variable holding the HMAC key (checked when set)."),
]


def _key(env_name: str) -> bytes | None:
    """The HMAC key from the environment; set but empty is an error (it would silently skip signatures)."""
    value = os.environ.get(env_name)
    if value is None:
        return None
    if not value.strip():
        raise InvalidInput(f"{env_name} is set but empty: give the key, or unset it")
    return value.encode()


def parse_since(value: str) -> datetime:
    """'30m', '2h', '1d' ago, or an ISO 8601 time (UTC when no offset is given)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value and value[-1] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--since {value!r}: use e.g. 30m, 2h, 1d or an ISO time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def render_record(r: AuditRecord) -> str:
    """One record for a terminal: every stored string neutralised (the log keeps them as given)."""
    changes = ", ".join(f"{c.field} {c.before}->{c.after}" for c in r.changes) or "-"
    rules = ",".join(r.verdict.rules) or "-"
    line = (
        f"{r.ts:%Y-%m-%d %H:%M:%S}Z  {r.id}  {r.status.value:<16} {r.tool:<17} {r.target:<24} "
        f"{r.verdict.decision.value}[{rules}]  {changes}  by {r.caller}"
    )
    if r.approver:
        line += f" (approver {r.approver})"
    return f"{neutralise(line)}\n    why {quoted(r.rationale, max_len=None)}"


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def _shared_store() -> StateStore | None:
    """The PostgreSQL store when ``MCP_AUTOSCALE_STATE_URL`` is set (the commands then need no FILE)."""
    settings = build_settings()
    if settings.state_url is None:
        return None
    from mcp_autoscale.state import open_store

    return open_store(settings)


@audit_app.command("verify")
def verify(
    file: Annotated[
        Path | None,
        typer.Argument(help="Audit log (JSON Lines); default: the state database, or the configured log"),
    ] = None,
    key_env: KeyEnvOpt = "MCP_AUTOSCALE_AUDIT_HMAC_KEY",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check the hash chain (and HMAC signatures when the key is set); exit 1 naming the first bad record."""
    with exit_on_error():
        key = _key(key_env)
        store = _shared_store() if file is None else None
        if store is not None:
            name = store.audit.where
            try:
                with store.snapshot() as (head, lines):
                    report = verify_records(((line[:-1], True) for line in lines), key, marker=head)
            finally:
                store.close()
        else:
            file = readable_file(file, "FILE") if file is not None else build_settings().resolved_audit_file
            name = str(file)
            report = verify_file(file, key)
    echo_out(report.model_dump_json(indent=2) if as_json else report.summary(name))
    if report.signatures_unchecked and not as_json:
        typer.echo(
            f"warning: {name} is signed but {key_env} is not set: signatures were NOT checked, so a "
            "rewritten chain would pass",
            err=True,
        )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Where to write the log (JSON Lines) and its .head")],
) -> None:
    """Write the audit chain (from the state database, or the configured log) as a file `audit verify` checks."""
    with exit_on_error():
        settings = build_settings()
        store = _shared_store() or open_store_readonly(settings)
        try:
            with store.snapshot() as (head, lines), open(out, "wb") as fh:
                count = 0
                for line in lines:
                    fh.write(line)
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
            head_path(out).write_text(json.dumps(head))
        finally:
            store.close()
    echo_out(
        f"{out}: {count} records from {store.audit.where} (verify with `mcp-autoscale audit verify {out}`)"
    )


def open_store_readonly(settings: Settings) -> StateStore:
    from mcp_autoscale.state import FileStateStore, hmac_key_of

    path = settings.resolved_audit_file
    if not path.exists():
        raise NotFound(f"no audit log at {path}")
    return FileStateStore(path, settings.state_dir, hmac_key_of(settings))


@audit_app.command("show")
def show(
    file: Annotated[
        Path | None, typer.Option("--file", help="Audit log (default: the configured one)")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="namespace/deployment or deployment")] = None,
    tool: Annotated[str | None, typer.Option("--tool")] = None,
    status: Annotated[str | None, typer.Option("--status", help="applied, denied, dry_run, ...")] = None,
    decision: Annotated[str | None, typer.Option("--verdict", help="allow, deny or needs_approval")] = None,
    since: Annotated[str | None, typer.Option("--since", help="30m, 2h, 1d or an ISO time")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    intents: Annotated[
        bool, typer.Option("--intents", help="Also show intent records whose outcome followed")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line")] = False,
) -> None:
    """List audit records, oldest first, filtered by pool / tool / status / verdict / time.

    Reads from the end of the log: ``--limit`` and ``--since`` stop the reading early."""
    with exit_on_error():
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"--status {status!r}: use one of {', '.join(STATUSES)}")
        if decision is not None and decision not in VERDICTS:
            raise InvalidInput(f"--verdict {decision!r}: use one of {', '.join(VERDICTS)}")
        if tool is not None and tool not in TOOLS:
            raise InvalidInput(f"--tool {tool!r}: use one of {', '.join(TOOLS)}")
        since_ts = parse_since(since) if since else None
        if file is not None:
            readable_file(file, "--file")
        store = _shared_store() if file is None else None
        reader: AuditStore
        if store is not None:
            reader = store.audit
        else:
            path = file or build_settings().resolved_audit_file
            if not path.exists():
                fail(f"no audit log at {path}", 1)
            reader = AuditLog(readable_file(path, "audit log"), recover=False)
        records = reader.records(
            pool=pool,
            tool=tool,
            status=status,
            since=since_ts,
            limit=limit,
            intents=intents,
            decision=decision,
        )
        if store is not None:
            store.close()
    for r in records:
        echo_out(json.dumps(r.model_dump(mode="json"), sort_keys=True) if as_json else render_record(r))
    if not records and not as_json:
        echo_out("no matching audit records")
