"""``mcp-autoscale audit verify FILE`` and ``audit show``: check and read the tamper-evident audit log."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.commands._common import build_settings, echo_out, exit_on_error, fail
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.models import ActionKind, ActionStatus, AuditRecord, Decision
from mcp_autoscale.preflight import readable_file
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
    value = os.environ.get(env_name)
    return value.encode() if value else None


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


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="Audit log (JSON Lines)")],
    key_env: KeyEnvOpt = "MCP_AUTOSCALE_AUDIT_HMAC_KEY",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check the hash chain (and HMAC signatures when the key is set); exit 1 naming the first bad record."""
    with exit_on_error():
        readable_file(file, "FILE")
        report = verify_file(file, _key(key_env))
    echo_out(report.model_dump_json(indent=2) if as_json else report.summary(file))
    if not report.ok:
        raise typer.Exit(1)


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
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line")] = False,
) -> None:
    """List audit records, oldest first, filtered by pool / tool / status / verdict / time."""
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
        path = file or build_settings().resolved_audit_file
        if not path.exists():
            fail(f"no audit log at {path}", 1)
        readable_file(path, "audit log")
        records = AuditLog(path, recover=False).records(pool=pool, tool=tool, status=status, since=since_ts)
        if decision is not None:
            records = [r for r in records if r.verdict.decision.value == decision]
        if limit is not None:
            records = records[-limit:]
    for r in records:
        echo_out(json.dumps(r.model_dump(mode="json"), sort_keys=True) if as_json else render_record(r))
    if not records and not as_json:
        echo_out("no matching audit records")
