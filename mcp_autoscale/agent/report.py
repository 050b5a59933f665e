"""The agent's markdown report: readable in a pull request, a CI job summary or a terminal."""

from __future__ import annotations

from mcp_autoscale.agent.models import AgentReport, ExitCode, Iteration, PoolView, Proposal

VERDICT_TEXT = {
    ExitCode.OK: "OK: every SLO was judged and is healthy, or every breach has an allowed action",
    ExitCode.UNRESOLVED: (
        "ATTENTION: SLO breaches or pools that cannot be judged, with no allowed action "
        "(denied, pending approval or none)"
    ),
    ExitCode.ERROR: "ERROR: the agent could not see or act (a source was down, the server or a tool failed)",
    ExitCode.USAGE: "bad usage",
}


def headline(report: AgentReport) -> str:
    """One line for a terminal or a log: the verdict and its first cause."""
    code = ExitCode(report.exit_code)
    causes = [*report.errors]
    for it in report.iterations:
        causes += [f"source down: {e}" for e in it.source_errors] + it.errors
        causes += [f"{p.pool}: {p.error}" for p in it.proposals if p.error]
    if code is ExitCode.UNRESOLVED and report.iterations:
        causes.append("without an allowed action: " + ", ".join(report.iterations[-1].unresolved()))
    return f"agent: exit {int(code)}, {VERDICT_TEXT[code]}" + (f" ({causes[0]})" if causes else "")


def _f(value: float | None, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _objectives(signals: list[str]) -> list[str]:
    """The SLO objectives among missing or stale signals (all of them when none is an objective)."""
    return [s for s in signals if s in ("ttft_p90_s", "itl_p90_s", "*")] or signals


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _pool_row(p: PoolView) -> str:
    ttft = _f(p.ttft_p90_s, ".2f", " s")
    if p.ttft_target_s is not None and p.ttft_p90_s is not None:
        ttft += f" / {p.ttft_target_s:g} s"
    itl = _f(None if p.itl_p90_s is None else p.itl_p90_s * 1000, ".0f", " ms")
    replicas = f"{p.replicas_ready}/{p.replicas_desired}" + (
        f" (+{p.replicas_starting})" if p.replicas_starting else ""
    )
    slo = "**BREACH**" if p.slo == "breach" else p.slo
    if p.breaches:
        slo += ": " + "; ".join(p.breaches)
    cells = [
        p.pool,
        replicas,
        p.owner or "none",
        ttft,
        itl,
        _f(p.kv_usage, ".2f"),
        _f(p.queue_depth, ".0f"),
        _f(p.cost_per_hour, ".2f"),
        slo,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


MAX_TABLE_ROWS = 30
"""Pools in the markdown table beyond the breaching ones: a 1,000-pool table buries what matters."""
MAX_DETAILED_PROPOSALS = 25
"""Proposals shown with rationale, policy reasons and expected effect; the rest get one line each (the
--json report has every detail)."""
_SLO_ORDER = {"breach": 0, "unknown": 1}


def pools_first(pools: list[PoolView]) -> list[PoolView]:
    """Breaching pools first (all of them), then unknown, then by $/h; at most MAX_TABLE_ROWS otherwise."""
    ordered = sorted(pools, key=lambda p: (_SLO_ORDER.get(p.slo, 2), -(p.cost_per_hour or 0.0), p.pool))
    breaching = sum(1 for p in pools if p.slo == "breach")
    return ordered[: max(MAX_TABLE_ROWS, breaching)]


def _args_text(proposal: Proposal) -> str:
    shown = {k: v for k, v in proposal.arguments.items() if k not in ("rationale", "idempotency_key")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _proposal(n: int, p: Proposal) -> list[str]:
    outcome = p.status or "error"
    head = f"{n}. **{p.tool}** on `{p.pool}` ({_args_text(p)}) -> **{outcome}**"
    if p.decision:
        head += f", policy: {p.decision}"
    if p.audit_id:
        head += f", audit id `{p.audit_id}`"
    lines = [head, f"   - rationale: {p.rationale}", f"   - source: {p.source}"]
    if p.error:
        lines.append(f"   - error: {p.error}")
    lines += [f"   - policy reason: {r}" for r in p.reasons]
    if p.rules:
        lines.append(f"   - rules: {', '.join(p.rules)}")
    if p.hint:
        lines.append(f"   - hint: {p.hint}")
    lines += [f"   - change: {c.get('field')}: {c.get('before')} -> {c.get('after')}" for c in p.changes]
    if p.expected:
        lines.append("   - expected: " + ", ".join(f"{k}={v}" for k, v in p.expected.items()))
    return lines


def render_iteration(it: Iteration, title: str) -> list[str]:
    lines = [f"## {title}", ""]
    if it.standby:
        who = it.leader or "no one (the Lease could not be read)"
        lines.append(f"**Standby**: {who} leads; this replica read nothing and called nothing.")
        lines += [f"- error: {e}" for e in it.errors] + [f"- {n}" for n in it.notes]
        return lines
    source = f"{it.backend or '?'} backend, signals from {it.signal_source or '?'}"
    lines.append(f"Snapshot taken {it.snapshot_taken_at or '-'} ({source}); decisions by {it.decided_by()}.")
    if it.fleet_cost_per_hour is not None:
        lines[-1] += f" Fleet cost ${it.fleet_cost_per_hour:.2f}/h."
    if it.source_errors:
        lines += ["", "**Source down, the agent was blind**: " + "; ".join(it.source_errors)]
    elif it.partial:
        lines += ["", "**Partial snapshot**: " + "; ".join(it.warnings or ["some signals missing or stale"])]
    shown = pools_first(it.pools)
    lines += [
        "",
        "| pool | ready/desired | owner | TTFT p90 / target | ITL p90 | KV | queue | $/h | SLO |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_pool_row(p) for p in shown),
        "",
    ]
    if len(shown) < len(it.pools):
        rest = len(it.pools) - len(shown)
        lines[-1:-1] = [f"| ... {rest} more pools, none breaching; every pool is in the --json report |"]
    breached = it.breached()
    if breached:
        lines.append("### Breaches")
        lines += [f"- `{p.pool}`: {'; '.join(p.breaches) or 'SLO breach'}" for p in breached]
        lines.append("")
    unjudged = it.unjudged()
    if unjudged:
        lines.append("### SLO not judged (never counted as healthy)")
        lines += [
            f"- `{p.pool}`: objectives not measured ({', '.join(_objectives(p.missing)) or '-'}) "
            f"or stale ({', '.join(_objectives(p.stale)) or '-'})"
            for p in unjudged
        ]
        lines.append("")
    if it.overrides:
        lines.append("### Who decided")
        lines += [f"- {o}" for o in it.overrides]
        lines.append("")
    lines.append("### Proposed actions")
    if it.proposals:
        for n, p in enumerate(it.proposals, 1):
            lines += _proposal(n, p) if n <= MAX_DETAILED_PROPOSALS else _proposal(n, p)[:1]
    else:
        lines.append("None.")
    lines.append("")
    if it.notes:
        lines.append("### Notes")
        lines += [f"- {n}" for n in it.notes]
        lines.append("")
    unresolved = it.unresolved()
    if unresolved:
        lines.append("### Breaches (or unjudged pools) without an allowed action")
        lines += [f"- `{u}`" for u in unresolved]
        lines.append("")
    if it.errors:
        lines.append("### Errors")
        lines += [f"- {e}" for e in it.errors]
        lines.append("")
    return lines


def render_markdown(report: AgentReport) -> str:
    code = ExitCode(report.exit_code)
    lines = [
        "# mcp-autoscale agent report",
        "",
        f"**Result: exit {int(code)}, {VERDICT_TEXT[code]}.**",
        "",
        f"- server: `{report.server}`",
        f"- mode: {report.mode}"
        + (" (every call sent with dry_run=true: nothing changed)" if report.mode == "dry-run" else ""),
        f"- started: {report.started_at:%Y-%m-%d %H:%M:%S} UTC, iterations: {len(report.iterations)}",
        f"- mcp-autoscale {report.version}",
        "",
    ]
    if report.errors:
        lines.append("## Errors")
        lines += [f"- {e}" for e in report.errors]
        lines.append("")
    many = len(report.iterations) > 1
    for it in report.iterations:
        lines += render_iteration(it, f"Iteration {it.index}" if many else "What the agent saw and did")
    return "\n".join(lines).rstrip() + "\n"
