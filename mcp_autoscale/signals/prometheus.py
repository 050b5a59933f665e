"""Signals from a Prometheus server: a constant set of batched PromQL queries per snapshot.

The query plan (one detection query, one per gauge/counter signal, one per latency histogram) covers every
pool at once. Detection goes first, so that the signal queries carry branches only for the dialects the
pools speak (an unused dialect's branch still costs Prometheus a selector and an ``or``); the signal
queries then run concurrently in a small thread pool. One deadline covers both steps, so a slow Prometheus
costs one timeout, not one per query, and an unreachable one costs one request. Each signal carries the
age of its newest sample; failures become per-signal reasons.
With ``prometheus_recording_rules`` the histogram and counter signals read the series recorded by the rules
of ``signals.rules`` (same number of queries, far less work for Prometheus per snapshot).
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from mcp_autoscale import metrics
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolSignals, PoolState, SignalReport
from mcp_autoscale.signals import dialects
from mcp_autoscale.signals.common import (
    NO_DIALECT,
    SERIES_ABSENT,
    check_overrides,
    not_exposed,
    stale_after_s,
)
from mcp_autoscale.signals.dialects.spec import Dialect, Kind, MetricSpec
from mcp_autoscale.signals.histogram import Cumulative, cumulative, quantile_of
from mcp_autoscale.signals.promql import (
    QUANTILE_FIELD,
    TAG_SEP,
    PoolGrouping,
    QueryPlan,
    detection_query,
    recorded_name,
    signal_plan,
)
from mcp_autoscale.signals.rules import RECORDED_KINDS

log = get_logger(__name__)

_BYTES_REPR = re.compile(r"\((b(['\"]).*\2)\)\s*$", re.DOTALL)


def prometheus_error_message(err: Exception) -> str:
    """Prometheus's own ``error`` text from a failed query (prometheus-api-client wraps it in a repr)."""
    text = str(err)
    m = _BYTES_REPR.search(text)
    if m:
        try:
            body = json.loads(ast.literal_eval(m.group(1)))
            if isinstance(body, dict) and body.get("error"):
                kind = body.get("errorType")
                return f"{kind}: {body['error']}" if kind else str(body["error"])
        except (ValueError, SyntaxError):
            pass
    return text


def unreachable(err: BaseException) -> bool:
    """No answer at all (refused, reset, timed out), as opposed to an answer saying no."""
    return isinstance(err, requests.RequestException | TimeoutError) and not isinstance(
        err, PrometheusApiClientException
    )


def failure_reason(err: BaseException, timeout_s: float) -> str:
    """Name a failed query the way the snapshot reports it."""
    if isinstance(err, PrometheusApiClientException):
        return f"query error: {prometheus_error_message(err)}"
    if isinstance(err, requests.Timeout | TimeoutError):
        return f"prometheus unreachable: no answer within {timeout_s:g} s"
    if isinstance(err, requests.ConnectionError):
        cause = str(err.args[0]) if err.args else type(err).__name__
        if "Connection refused" in cause:
            cause = "connection refused"
        return f"prometheus unreachable: {cause}"
    if isinstance(err, requests.RequestException):
        return f"prometheus unreachable: {type(err).__name__}: {err}"
    return f"query error: {type(err).__name__}: {err}"


class _Series:
    """One pool's result in one query branch: a value (or timestamp), or a histogram's per-bucket rates.

    A plain slotted class: ~9,000 are made per 1000-pool snapshot."""

    __slots__ = ("_cumulative", "buckets", "t", "value")

    def __init__(self) -> None:
        self.t = 0.0
        self.value = math.nan
        self.buckets: list[tuple[float, float]] = []
        self._cumulative: Cumulative | None = None

    def quantile(self, q: float) -> float:
        """``q`` from the bucket rates (prepared once however many quantiles are read)."""
        if self._cumulative is None:
            self._cumulative = cumulative(self.buckets)
        return quantile_of(q, self._cumulative)


@dataclass
class _Answer:
    """One query's outcome: result rows (and their per-pool index) or a reason."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    table: dict[tuple[str, str, str], dict[str, _Series]] = field(default_factory=dict)
    unreachable: bool = False


def build_client(settings: Settings) -> PrometheusConnect:
    """A PrometheusConnect with the configured auth and TLS, no retries (the deadline is ours)."""
    if not settings.prometheus_url:
        raise ConfigError("prometheus source needs prometheus_url (--prometheus URL)")
    session = requests.Session()
    if settings.prometheus_ca_file is not None:
        if not settings.prometheus_ca_file.is_file():
            raise ConfigError(f"prometheus_ca_file {settings.prometheus_ca_file}: no such file")
        session.verify = str(settings.prometheus_ca_file)
    headers: dict[str, str] = {}
    if settings.prometheus_token is not None:
        headers["Authorization"] = f"Bearer {settings.prometheus_token.get_secret_value()}"
    auth = None
    if settings.prometheus_username:
        password = settings.prometheus_password.get_secret_value() if settings.prometheus_password else ""
        auth = (settings.prometheus_username, password)
    return PrometheusConnect(
        url=settings.prometheus_url.rstrip("/"),
        headers=headers or None,
        auth=auth,
        session=session,
        retry=Retry(total=0, raise_on_status=False),
        method="POST",
    )


MISSING_PODS = "pods"
"""``PoolSignals.missing`` key for ready pods that no series carries."""


def missing_pods(pool: PoolState, seen: int, detect: _Answer) -> str | None:
    """Why some of the pool's ready pods are not in Prometheus, or None when every one is (or we cannot
    tell: the detection query failed, or the backend reports no ready pods)."""
    ready = pool.ready_replicas
    if detect.error or ready <= 0 or seen >= ready:
        return None
    return (
        f"{ready - seen} of {ready} ready pods have no series in Prometheus (not scraped yet, or a pod name "
        "the pool grouping does not parse); the signals cover the others only"
    )


class PrometheusSource:
    """``SignalSource`` over Prometheus's HTTP API (``prometheus-api-client``)."""

    name = "prometheus"

    def __init__(
        self,
        settings: Settings,
        *,
        dialect_overrides: Mapping[str, str] | None = None,
        client: PrometheusConnect | None = None,
        max_workers: int | None = None,
    ) -> None:
        self._settings = settings
        self._overrides = check_overrides(dialect_overrides)
        try:
            self._grouping = PoolGrouping(settings.pool_label)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self._client = client or build_client(settings)
        self._timeout = settings.prometheus_timeout_s
        self._max_workers = max_workers
        self._recorded = RECORDED_KINDS if settings.prometheus_recording_rules else frozenset()

    def close(self) -> None:
        self._client.close()

    # ---- querying ---------------------------------------------------------------------------------

    @metrics.prometheus_query
    def _query(self, promql: str) -> list[dict[str, Any]]:
        # (connect, read) timeouts: both bounded, so a black-holed port cannot hang a worker thread.
        rows = self._client.custom_query(promql, timeout=(self._timeout, self._timeout))
        return list(rows)

    def _fetch(
        self, key: str, promql: str
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], dict[str, _Series]]]:
        """Query and index in the worker thread, so early answers are indexed while slow ones still run."""
        rows = self._query(promql)
        return rows, ({} if key == "detect" else self._index_rows(rows))

    def _run(self, queries: Mapping[str, str], deadline: float) -> dict[str, _Answer]:
        """Run the queries concurrently until ``deadline`` (``time.monotonic()``)."""
        # Every query in flight at once (the set is small and constant): a snapshot costs its slowest query,
        # not a queue of them. ``max_workers`` caps it for a Prometheus that must not see ~10 at a time.
        if not queries:
            return {}
        workers = min(self._max_workers or len(queries), len(queries))
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="promql")
        futures: dict[
            str, Future[tuple[list[dict[str, Any]], dict[tuple[str, str, str], dict[str, _Series]]]]
        ] = {key: pool.submit(self._fetch, key, q) for key, q in queries.items()}
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
        pool.shutdown(wait=False, cancel_futures=True)
        out: dict[str, _Answer] = {}
        for key, fut in futures.items():
            if not fut.done():
                fut.cancel()
                out[key] = _Answer(error=self._no_answer(), unreachable=True)
                continue
            err = fut.exception()
            if err is None:
                rows, table = fut.result()
                out[key] = _Answer(rows=rows, table=table)
            else:
                out[key] = _Answer(error=failure_reason(err, self._timeout), unreachable=unreachable(err))
        return out

    def _no_answer(self) -> str:
        return f"prometheus unreachable: no answer within {self._timeout:g} s"

    # ---- assembling -------------------------------------------------------------------------------

    def collect(self, pools: Sequence[PoolState]) -> SignalReport:
        now = datetime.now(UTC)
        if not pools:
            return SignalReport(source=self.name, collected_at=now)
        namespaces = sorted({p.ref.namespace for p in pools})
        every = list(dialects.DIALECTS.values())
        started = time.monotonic()
        deadline = started + self._timeout + 0.5
        markers = [m for d in every for m in d.markers]
        detect = self._run({"detect": detection_query(markers, namespaces, self._grouping)}, deadline)[
            "detect"
        ]
        detected, pods_seen = self._detected(detect)
        chosen: dict[str, Dialect | None] = {}
        by_markers: dict[frozenset[str], Dialect | None] = {}  # most pools expose the same marker set
        for p in pools:
            dialect = self._overrides.get(p.ref.key)
            if dialect is None:
                found = frozenset(detected.get((p.ref.namespace, p.ref.name), ()))
                if found not in by_markers:
                    by_markers[found] = dialects.detect(found)
                dialect = by_markers[found]
            chosen[p.ref.key] = dialect
        # Branches only for the dialects in use; all of them when detection failed (overrides and the
        # reasons then still come from the signal queries, as without the two steps).
        used = {d.name for d in chosen.values() if d is not None}
        qp = self._plan([d for d in every if detect.error or d.name in used], namespaces)
        if detect.unreachable or time.monotonic() >= deadline:
            # nothing answers, or no time is left: the other queries would only wait for the deadline
            reason = detect.error if detect.unreachable else self._no_answer()
            answers = {key: _Answer(error=reason, unreachable=True) for key in qp.queries}
            sent = 1
        else:
            answers = self._run(qp.queries, deadline)
            sent = 1 + len(qp.queries)
        answers["detect"] = detect
        log.debug("prometheus snapshot", queries=sent, seconds=round(time.monotonic() - started, 3))
        errors = sorted({f"{key}: {a.error}" for key, a in answers.items() if a.error})
        if errors and all(a.error for a in answers.values()):
            reasons = {a.error for a in answers.values()}
            if len(reasons) == 1:
                errors = [reasons.pop() or ""]
        values = {key: answer.table for key, answer in answers.items() if key != "detect"}
        report = SignalReport(source=self.name, collected_at=now, queries=sent, errors=errors)
        for p in pools:
            signals = self._pool(p.ref, chosen[p.ref.key], qp.answered_by, answers, values)
            unseen = missing_pods(p, pods_seen.get((p.ref.namespace, p.ref.name), 0), detect)
            if unseen:
                signals.missing[MISSING_PODS] = unseen
            report.pools[p.ref.key] = signals
        return report

    def _plan(self, ds: Sequence[Dialect], namespaces: Sequence[str]) -> QueryPlan:
        window = self._settings.rate_window
        return signal_plan(SIGNAL_NAMES, ds, namespaces, self._grouping, window, self._recorded)

    def _key(self, metric: Mapping[str, str]) -> tuple[str, str] | None:
        ns, pool = metric.get("namespace"), metric.get(self._grouping.label)
        return (ns, pool) if ns and pool else None

    def _detected(
        self, answer: _Answer
    ) -> tuple[dict[tuple[str, str], set[str]], dict[tuple[str, str], int]]:
        """Marker names per pool, and the most series any one marker has there (the pods reporting)."""
        out: dict[tuple[str, str], set[str]] = {}
        pods: dict[tuple[str, str], int] = {}
        for row in answer.rows:
            key = self._key(row["metric"])
            if key is not None:
                out.setdefault(key, set()).add(row["metric"].get("__name__", ""))
                try:
                    seen = int(float(row["value"][1]))
                except (KeyError, IndexError, TypeError, ValueError):
                    seen = 0
                pods[key] = max(pods.get(key, 0), seen)
        return out, pods

    def _index_rows(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, _Series]]:
        """(namespace, pool, field) -> dialect name -> evaluation time and value(s).

        The pool label reads ``<field>|<dialects>|<pool>`` (``promql.branch_tag``). A branch tagged
        ``vllm,vllm-v0`` is filed under both names (one shared ``_Series``), so that assembling a pool is
        plain dictionary look-ups. ~30,000 rows per 1000-pool snapshot pass here, hence the inlined parsing.
        """
        out: dict[tuple[str, str, str], dict[str, _Series]] = {}
        label = self._grouping.label
        split: dict[str, list[str]] = {}
        bounds: dict[str, float] = {}
        for row in rows:
            metric = row["metric"]
            ns = metric.get("namespace")
            parts = metric.get(label, "").split(TAG_SEP, 2)
            if not ns or len(parts) != 3 or not parts[2]:
                continue  # untagged, or a pod name the grouping did not parse (no pool)
            fld, tag, pool = parts
            t, v = row["value"]
            key = (ns, pool, fld)
            by_dialect = out.get(key)
            if by_dialect is None:
                by_dialect = out[key] = {}
            names = split.get(tag)
            if names is None:
                names = split[tag] = tag.split(",")
            series = by_dialect.get(names[0])
            if series is None:
                series = _Series()
                for name in names:
                    by_dialect[name] = series
            series.t = float(t)
            if fld == "buckets":
                le = metric.get("le", "nan")
                bound = bounds.get(le)
                if bound is None:
                    bound = bounds[le] = float(le)
                series.buckets.append((bound, float(v)))
            else:  # a value, a timestamp, or one recorded quantile (field quantile=<q>)
                series.value = float(v)
        return out

    def _pool(
        self,
        ref: PoolRef,
        dialect: Dialect | None,
        answered_by: Mapping[str, str],
        answers: Mapping[str, _Answer],
        values: Mapping[str, Mapping[tuple[str, str, str], dict[str, _Series]]],
    ) -> PoolSignals:
        ns, pool = ref.namespace, ref.name
        got: dict[str, float] = {}
        age_s: dict[str, float] = {}
        stale: list[str] = []
        missing: dict[str, str] = {}
        limit = stale_after_s(self._settings)
        window = self._settings.rate_window
        for name in SIGNAL_NAMES:
            qkey = answered_by.get(name)
            answer = answers.get(qkey) if qkey else None
            if answer is not None and answer.error:
                missing[name] = answer.error
                continue
            if dialect is None:
                det = answers["detect"].error
                missing[name] = f"dialect unknown: {det}" if det else NO_DIALECT
                continue
            spec = dialect.signals.get(name)
            if spec is None or qkey is None:
                missing[name] = not_exposed(dialect)
                continue
            table = values.get(qkey, {})
            ts = table.get((ns, pool, "ts"), {}).get(dialect.name)
            val: tuple[float, float] | None = None
            if spec.kind is Kind.QUANTILE:
                assert spec.quantile is not None
                hist = table.get((ns, pool, "buckets"), {}).get(dialect.name)
                qs = table.get((ns, pool, f"{QUANTILE_FIELD}{spec.quantile:g}"), {}).get(dialect.name)
                if hist is not None:
                    val = (hist.t, hist.quantile(spec.quantile))
                elif qs is not None:
                    val = (qs.t, qs.value)
            else:
                one = table.get((ns, pool, "value"), {}).get(dialect.name)
                val = (one.t, one.value) if one is not None else None
            if val is None:
                missing[name] = self._absent_reason(spec, ts is not None)
                continue
            t_eval, v = val
            if math.isnan(v) or math.isinf(v):
                missing[name] = (
                    f"no observations in the {window} window"
                    if spec.kind is Kind.QUANTILE
                    else f"value is {v}"
                )
                continue
            got[name] = v
            if ts is not None:
                age = max(0.0, t_eval - ts.value)
                age_s[name] = round(age, 3)
                if age > limit:
                    stale.append(name)
        # one validated construction per pool rather than a validated assignment per signal
        return PoolSignals(
            dialect=dialect.name if dialect else None, age_s=age_s, stale=stale, missing=missing, **got
        )

    def _absent_reason(self, spec: MetricSpec, has_samples: bool) -> str:
        """Why a signal has no value; with recording rules, name the recorded series a rule should write."""
        window = self._settings.rate_window
        if spec.kind not in self._recorded:
            if has_samples and spec.kind is not Kind.GAUGE:
                return f"not enough samples in the {window} rate window"
            return SERIES_ABSENT
        label = self._settings.pool_label
        command = f"mcp-autoscale signals rules --window {window}" + (
            f" --pool-label {label}" if label else ""
        )
        rule = f"no recording rule writes {recorded_name(spec, self._grouping, window)} (`{command}` prints the rules)"
        if has_samples:
            # the newest-sample rule has data for this pool: the rate is what is missing
            return f"not enough samples in the {window} rate window, or {rule}"
        return f"{SERIES_ABSENT}: no recorded series for this pool, or {rule}"
