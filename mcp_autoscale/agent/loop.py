"""The reference agent: an MCP client that reads the fleet, decides by rules and calls the gated tools.

It talks to the server exactly as any MCP client would (Claude Desktop, an LLM agent, the Inspector):
spawned over stdio or reached over streamable HTTP. It never touches the cluster itself, so everything it
does passes the server's one policy gate and lands in the audit log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from mcp_autoscale import __version__
from mcp_autoscale.agent.models import AgentReport, Iteration, Proposal
from mcp_autoscale.agent.oauth import ClientCredentials, ClientCredentialsAuth
from mcp_autoscale.agent.rules import (
    override_notes,
    pool_view,
    recommendation_proposals,
    rule_proposals,
)
from mcp_autoscale.logs import get_logger

if TYPE_CHECKING:
    from mcp_autoscale.agent.leader import LeaseElector

log = get_logger(__name__)

TOKEN_ENV = "MCP_AUTOSCALE_HTTP_TOKEN"
PASS_ENV_PREFIXES = ("MCP_AUTOSCALE_", "KUBECONFIG", "XDG_STATE_HOME", "AWS_", "GOOGLE_", "AZURE_")
"""Environment the spawned server needs (settings, kubeconfig, cloud credentials for exec plugins)."""


@dataclass
class AgentOptions:
    """How to reach the server and how to behave. ``serve_args`` are ``mcp-autoscale serve`` options."""

    serve_args: list[str] = field(default_factory=list)
    url: str | None = None
    token: str | None = None
    credentials: ClientCredentials | None = None
    """OAuth client credentials for ``url``: the agent gets (and renews) its own token."""
    apply: bool = False
    once: bool = True
    interval_s: float = 300.0
    max_iterations: int | None = None
    namespace: str | None = None
    read_timeout_s: float = 120.0
    elector: LeaseElector | None = None  # leader election: only the Lease holder acts (agent/leader.py)

    @property
    def dry_run(self) -> bool:
        return not self.apply

    def describe_server(self) -> str:
        """Where the server is, safe to print (never the token)."""
        if self.url:
            if self.credentials is not None:
                return f"{self.url} (streamable HTTP, OAuth client {self.credentials.client_id})"
            return f"{self.url} (streamable HTTP{', bearer token' if self.token else ''})"
        return "mcp-autoscale serve " + " ".join(self.serve_args) + " (stdio)"


def server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(PASS_ENV_PREFIXES)}


@asynccontextmanager
async def connect(options: AgentOptions) -> AsyncIterator[Any]:
    """An initialised ``mcp.Client``: a spawned stdio server, or a URL over streamable HTTP."""
    from mcp import Client, StdioServerParameters

    if options.url:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
        auth = ClientCredentialsAuth(options.url, options.credentials) if options.credentials else None
        async with (
            httpx2.AsyncClient(headers=headers, auth=auth, timeout=options.read_timeout_s) as http,
            Client(
                streamable_http_client(options.url, http_client=http),
                read_timeout_seconds=options.read_timeout_s,
            ) as client,
        ):
            yield client
        return
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_autoscale", "serve", *options.serve_args],
        env=server_env(),
    )
    async with Client(params, read_timeout_seconds=options.read_timeout_s) as client:
        yield client


def _text(result: Any) -> str:
    parts = [getattr(c, "text", "") for c in (result.content or [])]
    return " ".join(p for p in parts if p) or "tool error"


def record_result(proposal: Proposal, result: Any) -> Proposal:
    """Copy the server's answer (an ``ActionResult`` or a tool error) into the proposal."""
    if result.is_error:
        proposal.error = _text(result)
        return proposal
    out: Mapping[str, Any] = result.structured_content or {}
    verdict = out.get("verdict") or {}
    proposal.status = out.get("status")
    proposal.decision = verdict.get("decision")
    proposal.reasons = list(verdict.get("reasons") or [])
    proposal.hint = verdict.get("hint")
    proposal.rules = list(verdict.get("rules") or [])
    proposal.changes = list(out.get("changes") or [])
    proposal.audit_id = out.get("audit_id")
    proposal.message = out.get("message")
    return proposal


def idempotency_key(run_id: str, proposal: Proposal) -> str:
    """The same change within one run acts at most once (a loop that re-proposes it gets the first record)."""
    args = {k: v for k, v in proposal.arguments.items() if k not in ("rationale", "dry_run")}
    digest = hashlib.sha256(json.dumps([proposal.tool, args], sort_keys=True).encode()).hexdigest()[:16]
    return f"agent-{run_id}-{digest}"


PAGE = 200
"""The largest page a read tool gives: the agent reads the whole fleet in as few calls as it can."""


async def call_all(
    client: Any, tool: str, args: Mapping[str, Any], key: str
) -> tuple[Any, list[Mapping[str, Any]]]:
    """Call a paged read tool and follow ``next_cursor`` to the end: the first result and every item.

    An error on any page is returned as that page's result (the caller reports it)."""
    result = await client.call_tool(tool, {**args, "limit": PAGE})
    first = result
    items: list[Mapping[str, Any]] = []
    while not result.is_error:
        data = result.structured_content or {}
        items += data.get(key) or []
        cursor = data.get("next_cursor")
        if not cursor:
            return first, items
        result = await client.call_tool(tool, {**args, "limit": PAGE, "cursor": cursor})
    return result, items


MAX_CALLS_PER_PASS = 80
"""Gated calls one pass makes beyond those for breaches (a 1,000-pool fleet can yield hundreds of
recommendations; the rest wait for the next pass, in the planner's order: breach severity, then $)."""
RATE_LIMIT_RETRIES = 5
_RETRY_IN = re.compile(r"rate limited: .*Retry in ([0-9.]+) s")


def cap_calls(proposals: list[Proposal]) -> tuple[list[Proposal], list[Proposal]]:
    """Every call that addresses a breach, then the others in order up to ``MAX_CALLS_PER_PASS`` in all."""
    breach = [p for p in proposals if p.addresses_breach]
    others = [p for p in proposals if not p.addresses_breach]
    room = max(0, MAX_CALLS_PER_PASS - len(breach))
    return breach + others[:room], others[room:]


async def call_with_retry(client: Any, tool: str, args: Mapping[str, Any]) -> Any:
    """Call a tool; when the gate says the caller is rate limited, wait as long as it says and retry."""
    result = await client.call_tool(tool, dict(args))
    for _ in range(RATE_LIMIT_RETRIES):
        match = _RETRY_IN.search(_text(result)) if result.is_error else None
        if match is None:
            return result
        await anyio.sleep(min(float(match.group(1)) + 0.05, 5.0))
        result = await client.call_tool(tool, dict(args))
    return result


async def run_iteration(client: Any, index: int, options: AgentOptions, run_id: str) -> Iteration:
    """One pass: snapshot, recommendations (or the agent's rules), gated calls."""
    it = Iteration(index=index, started_at=datetime.now(UTC))
    snap_args: dict[str, Any] = {"include_node_pools": False}
    if options.namespace:
        snap_args["namespace"] = options.namespace
    snap, all_pools = await call_all(client, "get_slo_snapshot", snap_args, "pools")
    if snap.is_error:
        it.errors.append(f"get_slo_snapshot failed: {_text(snap)}")
        return it
    data: Mapping[str, Any] = snap.structured_content or {}
    it.snapshot_taken_at = str(data.get("taken_at"))
    it.backend = data.get("backend")
    it.signal_source = data.get("signal_source")
    it.partial = bool(data.get("partial"))
    it.warnings = list(data.get("warnings") or [])
    it.source_errors = list(data.get("source_errors") or [])
    it.fleet_cost_per_hour = data.get("fleet_cost_per_hour")
    it.pools = [pool_view(p) for p in all_pools]

    tools = {t.name for t in (await client.list_tools()).tools}
    proposals: list[Proposal]
    if "recommend_scaling" in tools:
        it.recommendation_source = "recommend_scaling"
        rec_args = {"namespace": options.namespace} if options.namespace else {}
        recs, items = await call_all(client, "recommend_scaling", rec_args, "recommendations")
        if recs.is_error:
            it.errors.append(f"recommend_scaling failed: {_text(recs)}")
            return it
        proposals, notes = recommendation_proposals(items, it.pools, options.dry_run)
        # A breach the planner leaves alone (e.g. "the fast loop will get there") still gets the agent's
        # queue-first rule, so capacity being built is held; the report says who decided and why.
        covered = {p.pool for p in proposals if p.addresses_breach}
        uncovered = [v for v in it.pools if v.slo == "breach" and v.pool not in covered]
        extra, extra_notes = rule_proposals(uncovered, options.dry_run)
        it.overrides = override_notes(items, extra)
        proposals += extra
        notes += extra_notes
    else:
        it.recommendation_source = "agent-rules"
        proposals, notes = rule_proposals(it.pools, options.dry_run)
    it.notes.extend(notes)

    proposals, deferred = cap_calls(proposals)
    if deferred:
        it.notes.append(
            f"{len(deferred)} more recommended calls (none for a breach) deferred to the next pass: at most "
            f"{MAX_CALLS_PER_PASS} calls per pass, breaches first"
        )
    for proposal in proposals:
        args = {**proposal.arguments, "idempotency_key": idempotency_key(run_id, proposal)}
        result = await call_with_retry(client, proposal.tool, args)
        it.proposals.append(record_result(proposal, result))
        log.info(
            "agent.call", tool=proposal.tool, pool=proposal.pool, status=proposal.status, error=proposal.error
        )
    return it


def _error_text(err: BaseException) -> str:
    """The innermost meaningful message of an (exception-group-wrapped) connection failure."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


async def _campaign(options: AgentOptions, index: int) -> Iteration | None:
    """None when this replica may act (no election, or it leads); else the standby iteration to report."""
    if options.elector is None:
        return None
    outcome = await anyio.to_thread.run_sync(options.elector.campaign)
    if outcome.leading:
        return None
    log.info("agent.standby", leader=outcome.holder, lease=options.elector.lease, error=outcome.error)
    standby = Iteration(index=index, started_at=datetime.now(UTC), standby=True, leader=outcome.holder)
    standby.notes.append(f"Lease {options.elector.lease}; this replica is {options.elector.identity}")
    if outcome.error is not None:
        standby.errors.append(f"leader election failed, standing by (fail closed): {outcome.error}")
    return standby


async def run_agent(
    options: AgentOptions, on_update: Callable[[AgentReport], None] | None = None
) -> AgentReport:
    """Run one pass (``once``) or loop every ``interval_s`` up to ``max_iterations``; never raises."""
    report = AgentReport(
        version=__version__,
        started_at=datetime.now(UTC),
        server=options.describe_server(),
        mode="dry-run" if options.dry_run else "apply",
    )
    run_id = hashlib.sha256(f"{report.started_at.isoformat()}-{os.getpid()}".encode()).hexdigest()[:8]
    limit = 1 if options.once else options.max_iterations
    try:
        async with AsyncExitStack() as stack:
            client: Any = None  # connected at the first pass this replica leads: a standby starts no server
            index = 0
            while limit is None or index < limit:
                index += 1
                standby = await _campaign(options, index)
                if standby is not None:
                    report.iterations.append(standby)
                else:
                    if client is None:
                        client = await stack.enter_async_context(connect(options))
                    report.iterations.append(await run_iteration(client, index, options, run_id))
                report.exit_code = report.final_exit_code()
                if on_update is not None:
                    on_update(report)
                if limit is not None and index >= limit:
                    break
                await anyio.sleep(options.interval_s)
    except Exception as err:  # the server failed to start, died, or the connection broke
        report.errors.append(f"server connection failed: {_error_text(err)}")
    finally:
        if options.elector is not None:
            await anyio.to_thread.run_sync(options.elector.resign)
    report.finished_at = datetime.now(UTC)
    report.exit_code = report.final_exit_code()
    if on_update is not None:
        on_update(report)
    return report
