"""The server's own metrics (prometheus_client): is the gate healthy, are its dependencies answering?

One module holds every metric; the code being measured only gains a decorator or a line at its existing
choke point (the MCP request chain, ``Gate.submit`` and ``Gate._record``, ``PrometheusSource._query``, the
Kubernetes error mappers, ``Snapshotter.take``). Labels are bounded: tool names the server knows, policy
rule names, decisions, HTTP status codes. Nothing here carries a caller, an argument or a rationale.

Served at ``/metrics`` on the HTTP transport and, with ``--metrics-port``, on a separate loopback port
(the only way for stdio, whose stdout is the MCP protocol). docs/observability.md lists every series.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from mcp_autoscale import __version__

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import MCPServer

    from mcp_autoscale.actions.gate import Gate

P = ParamSpec("P")
_HTTP_STATUS = re.compile(r"HTTP Status Code (\d{3})")
R = TypeVar("R")

PREFIX = "mcp_autoscale"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

BUILD_INFO = Gauge(f"{PREFIX}_build_info", "Always 1; the version label says which build runs", ["version"])
TOOL_CALLS = Counter(
    f"{PREFIX}_tool_calls_total",
    "MCP tool calls by tool and outcome (ok, error: the tool answered is_error, protocol_error: a "
    "JSON-RPC error)",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    f"{PREFIX}_tool_call_seconds", "MCP tool call duration", ["tool"], buckets=LATENCY_BUCKETS
)
VERDICTS = Counter(
    f"{PREFIX}_verdicts_total",
    "Gate decisions recorded in the audit log, by decision and by the policy rule that decided "
    "(one increment per rule named in the verdict; 'none' when it names none)",
    ["decision", "rule"],
)
GATE_SECONDS = Histogram(
    f"{PREFIX}_gate_seconds",
    "Time through the gate (decide, approve, execute, audit) per mutating call",
    ["tool"],
    buckets=LATENCY_BUCKETS,
)
PROMETHEUS_QUERY_SECONDS = Histogram(
    f"{PREFIX}_prometheus_query_seconds", "Prometheus instant-query latency", buckets=LATENCY_BUCKETS
)
PROMETHEUS_QUERY_ERRORS = Counter(
    f"{PREFIX}_prometheus_query_errors_total",
    "Prometheus queries that failed, by reason (timeout, unreachable, http_<status>, error)",
    ["reason"],
)
KUBE_API_ERRORS = Counter(
    f"{PREFIX}_kubernetes_api_errors_total",
    "Kubernetes API calls that failed, by HTTP status code ('transport': no answer)",
    ["code"],
)
KUBE_CACHE_READS = Counter(
    f"{PREFIX}_kube_cache_reads_total",
    "Fleet reads on Kubernetes with the watch cache on, by source: 'cache', or 'live' (the cache was "
    "stale past its bound, so the read listed live)",
    ["source"],
)
KUBE_CACHE_WATCH = Counter(
    f"{PREFIX}_kube_cache_watch_total",
    "What the watch cache's streams did: 'event', 'bookmark', 'expired' (410 Gone, relisted), 'error' "
    "(a stream failed; resumed with backoff), 'list' (a list or relist)",
    ["outcome"],
)
AUDIT_APPENDS = Counter(f"{PREFIX}_audit_appends_total", "Audit records appended")
AUDIT_FAILURES = Counter(
    f"{PREFIX}_audit_append_failures_total",
    "Audit appends that failed (the action's outcome may be unrecorded: alert on any)",
)
PENDING_APPROVALS = Gauge(
    f"{PREFIX}_pending_approvals", "Proposals waiting for a human (not yet expired), at scrape time"
)
SNAPSHOT_SECONDS = Histogram(
    f"{PREFIX}_snapshot_seconds",
    "Time to assemble a fleet snapshot (cluster reads + signal collection)",
    buckets=LATENCY_BUCKETS,
)

BUILD_INFO.labels(version=__version__).set(1)
PENDING_APPROVALS.set_function(lambda: 0.0)


# --------------------------------------------------------------------------------------------------
# Instrumentation helpers (decorators for the choke points)
# --------------------------------------------------------------------------------------------------


def timed(histogram: Histogram) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Observe the wrapped call's duration, whether it returns or raises."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - start)

        return inner

    return wrap


def gate_timed(fn: Callable[..., R]) -> Callable[..., R]:
    """For ``Gate.submit(self, action)``: observe the time per tool."""

    @functools.wraps(fn)
    def inner(self: Any, action: Any, *args: Any, **kwargs: Any) -> R:
        start = time.perf_counter()
        try:
            return fn(self, action, *args, **kwargs)
        finally:
            GATE_SECONDS.labels(tool=str(action.kind.value)).observe(time.perf_counter() - start)

    return inner


def audited(fn: Callable[..., R]) -> Callable[..., R]:
    """For ``Gate._record(self, action, verdict, status, ...)``, which appends one audit record: count the
    append (or its failure), and the verdict by decision and rule once per decision (a write-ahead intent
    record is an append, not a second decision)."""

    @functools.wraps(fn)
    def inner(self: Any, action: Any, verdict: Any, status: Any, *args: Any, **kwargs: Any) -> R:
        try:
            result = fn(self, action, verdict, status, *args, **kwargs)
        except Exception:
            AUDIT_FAILURES.inc()
            raise
        AUDIT_APPENDS.inc()
        if str(getattr(status, "value", status)) != "intent":
            decision = str(getattr(verdict.decision, "value", verdict.decision))
            for rule in verdict.rules or ["none"]:
                VERDICTS.labels(decision=decision, rule=str(rule)).inc()
        return result

    return inner


def prometheus_failure_reason(err: BaseException) -> str:
    """A bounded label for a failed Prometheus query: timeout, unreachable, http_<status> or error."""
    import requests

    if isinstance(err, requests.Timeout | TimeoutError):
        return "timeout"
    if isinstance(err, requests.ConnectionError | ConnectionError):
        return "unreachable"
    status = _HTTP_STATUS.search(str(err))
    return f"http_{status.group(1)}" if status else "error"


def prometheus_query(fn: Callable[P, R]) -> Callable[P, R]:
    """For ``PrometheusSource._query``: latency of every query, and failures by reason."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            PROMETHEUS_QUERY_ERRORS.labels(reason=prometheus_failure_reason(err)).inc()
            raise
        finally:
            PROMETHEUS_QUERY_SECONDS.observe(time.perf_counter() - start)

    return inner


def kube_api_error(code: int | str) -> None:
    KUBE_API_ERRORS.labels(code=str(code or "transport")).inc()


def kube_cache_read(source: str) -> None:
    KUBE_CACHE_READS.labels(source=source).inc()


def kube_cache_watch(outcome: str) -> None:
    KUBE_CACHE_WATCH.labels(outcome=outcome).inc()


# --------------------------------------------------------------------------------------------------
# MCP: tool calls, through the SDK's middleware chain
# --------------------------------------------------------------------------------------------------


def instrument_server(server: MCPServer) -> None:
    """Count every ``tools/call`` by tool and outcome. Unknown tool names count as ``unknown`` so a client
    cannot grow the label set."""

    async def tool_calls(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        name = str((ctx.params or {}).get("name", ""))
        tool = name if server._tool_manager.get_tool(name) is not None else "unknown"
        start = time.perf_counter()
        outcome = "protocol_error"
        try:
            result = await call_next(ctx)
            is_error = (
                result.get("isError") if isinstance(result, dict) else getattr(result, "is_error", False)
            )
            outcome = "error" if is_error else "ok"
            return result
        finally:
            TOOL_CALLS.labels(tool=tool, outcome=outcome).inc()
            TOOL_SECONDS.labels(tool=tool).observe(time.perf_counter() - start)

    server.middleware.append(tool_calls)


# --------------------------------------------------------------------------------------------------
# Exposition
# --------------------------------------------------------------------------------------------------


def watch_pending(gate: Gate) -> None:
    """Make the pending-approvals gauge read this gate's proposals at scrape time (no side effects: an
    expired proposal is not closed here, only left out)."""
    from mcp_autoscale.approvals import ProposalStatus

    def count() -> float:
        now: datetime = gate.clock()
        try:
            proposals = gate.proposals.all()
        except Exception:  # a scrape must not fail because the store is briefly unreadable
            return float("nan")
        return float(sum(1 for p in proposals if p.status is ProposalStatus.PENDING and now < p.expires_at))

    PENDING_APPROVALS.set_function(count)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(host: str, port: int) -> int:
    """Serve ``/metrics`` on its own port in a daemon thread (stdio mode); returns the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])
