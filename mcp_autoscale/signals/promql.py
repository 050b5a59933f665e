"""Pure PromQL builder: a constant number of queries per snapshot, whatever the number of pools.

Each query covers *every* pool at once, grouped ``by (namespace, <pool label>)``. Where no pool label is
configured the pool is derived from the pod name with ``label_replace``: Kubernetes names a Deployment's
pods ``<deployment>-<pod-template-hash>-<5 chars>`` (hash 1-10 chars), so stripping the two last dash-parts
gives the Deployment. One query per *signal* (one per histogram for the percentiles) carries the dialects asked for as
``or``-ed branches, and the newest sample timestamp next to the value, so the age of every signal costs no
extra query. Each branch is tagged ``<field>|<dialects>|`` in front of the pool name in the pool label
(``field`` = ``value``, ``buckets``, ``quantile=<q>`` or ``ts``; see ``branch_tag``): with the pool derived
from the pod name the tag rides in the ``label_replace`` that derives it, so tagging costs Prometheus
nothing (a separate tag label cost one more ``label_replace`` per result row and branch).

With recording rules (``rules.py`` writes them from the same specs and these same expression builders) the
expensive per-pool aggregations are pre-computed by Prometheus and a query reads the recorded series
instead; the names follow ``level:metric:operations`` (see ``recorded_name``).

Label values that reach a query are escaped twice: regex metacharacters for ``=~`` and then the PromQL
string literal (backslash, double quote, control characters), so a value cannot end the matcher.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mcp_autoscale.signals.dialects.spec import LABEL_NAME, Dialect, Kind, MetricSpec

POD_POOL_REGEX = "^(.+)-[a-z0-9]{1,10}-[a-z0-9]{5}$"
"""Deployment pod names: ``<deployment>-<replicaset hash>-<pod suffix>``; group 1 is the Deployment.

The pod-template-hash is a 32-bit FNV hash rendered with Kubernetes' safe alphabet, so it is *up to* 10
characters (short hashes exist): a fixed 8-10 would drop those pods silently. Pods the backend counts as
ready but no series carries are reported as missing (``PrometheusSource``), so a name this cannot parse
shows up instead of vanishing."""

DERIVED_POOL_LABEL = "pool"
TAG_SEP = "|"
"""Separates a branch's field, its dialects and the pool name in the pool label of a query result (a
Deployment name, a dialect name and a field name cannot contain it)."""
QUANTILE_FIELD = "quantile="
"""Field of a recorded histogram's quantile rows: ``quantile=0.9``."""

_RE2_META = frozenset("\\.+*?()|[]{}^$")


def escape_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal (Go escaping rules)."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def escape_regex(value: str) -> str:
    """``value`` with RE2 metacharacters escaped, so that it matches only itself."""
    return "".join("\\" + ch if ch in _RE2_META else ch for ch in value)


def regex_any(values: Iterable[str]) -> str:
    """A quoted RE2 alternation matching exactly the given literal values (anchored by PromQL)."""
    return escape_string("|".join(escape_regex(v) for v in sorted(set(values))))


@dataclass(frozen=True)
class PoolGrouping:
    """How series map to pools: a configured label, or derived from ``pod``."""

    pool_label: str = ""

    def __post_init__(self) -> None:
        if self.pool_label and (not LABEL_NAME.match(self.pool_label) or self.pool_label.startswith("__")):
            raise ValueError(f"invalid Prometheus label name for pool_label: {self.pool_label!r}")

    @property
    def label(self) -> str:
        """The label that carries the pool name in query results."""
        return self.pool_label or DERIVED_POOL_LABEL

    @property
    def by(self) -> str:
        return f"namespace, {self.label}"

    def wrap(self, expr: str, tag: str = "") -> str:
        """Attach the pool label to an instant-vector expression that still has ``pod``, prefixed with
        ``tag`` when derived (a configured label is tagged after aggregating: ``tagged``)."""
        if self.pool_label:
            return expr
        return (
            f'label_replace({expr}, "{DERIVED_POOL_LABEL}", {escape_string(tag + "$1")}, "pod", '
            f"{escape_string(POD_POOL_REGEX)})"
        )

    def tagged(self, expr: str, tag: str) -> str:
        """``expr`` (aggregated by the pool, built with ``wrap(..., tag)``) with its pool label tagged."""
        return retag(expr, self.label, tag) if self.pool_label else expr


def branch_tag(field: str, dialects: str) -> str:
    """The prefix a query branch writes in front of the pool name: ``<field>|<dialects>|``."""
    return f"{field}{TAG_SEP}{dialects}{TAG_SEP}"


def parse_branch(value: str) -> tuple[str, str, str] | None:
    """``(field, dialects, pool)`` from a tagged pool label value; None if untagged or without a pool."""
    parts = value.split(TAG_SEP, 2)
    if len(parts) != 3 or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]


def retag(expr: str, label: str, tag: str) -> str:
    """Prefix ``label`` of every result row with ``tag`` (one ``label_replace`` per row)."""
    return f'label_replace({expr}, "{label}", {escape_string(tag + "$1")}, "{label}", "(.*)")'


def any_of(branches: Sequence[str]) -> str:
    """The branches ``or``-ed as a balanced tree: Prometheus hashes and copies both sides of every ``or``,
    so a left-deep chain handles the first branch's rows once per later branch, a balanced one log2(n)
    times."""
    if len(branches) == 1:
        return branches[0]
    half = len(branches) // 2
    return f"({any_of(branches[:half])} or {any_of(branches[half:])})"


def selector(metric: str, namespaces: Sequence[str] | None, matchers: Iterable[tuple[str, str]] = ()) -> str:
    """``metric{namespace=~"a|b", k="v"}`` with every value escaped (``namespaces=None``: any namespace)."""
    parts = [] if namespaces is None else [f"namespace=~{regex_any(namespaces)}"]
    parts += [f"{k}={escape_string(v)}" for k, v in matchers]
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def _by(grouping: PoolGrouping, keep: Sequence[str]) -> str:
    return ", ".join([grouping.by, *keep])


def bucket_rate_of(
    sel: str, grouping: PoolGrouping, window: str, keep: Sequence[str] = (), tag: str = ""
) -> str:
    """``sum by (le, namespace, <pool>) (rate(<sel>[window]))``: shared by queries and recording rules."""
    return f"sum by (le, {_by(grouping, keep)}) ({grouping.wrap(f'rate({sel}[{window}])', tag)})"


def aggregate_of(
    spec: MetricSpec,
    sel: str,
    grouping: PoolGrouping,
    window: str,
    keep: Sequence[str] = (),
    tag: str = "",
) -> str:
    """A gauge's ``sum``/``avg`` or a counter's summed ``rate`` per pool, without the spec's scale."""
    if spec.kind is Kind.GAUGE:
        return f"{spec.agg} by ({_by(grouping, keep)}) ({grouping.wrap(sel, tag)})"
    if spec.kind is Kind.RATE:
        return f"sum by ({_by(grouping, keep)}) ({grouping.wrap(f'rate({sel}[{window}])', tag)})"
    raise ValueError(f"{spec.metric}: a histogram is aggregated per bucket (bucket_rate_of)")


def timestamp_of(sel: str, grouping: PoolGrouping, keep: Sequence[str] = (), tag: str = "") -> str:
    """The newest sample time per pool; ``sel`` must be a bare selector (see ``timestamp_expr``)."""
    return f"max by ({_by(grouping, keep)}) ({grouping.wrap(f'timestamp({sel})', tag)})"


def scaled(spec: MetricSpec, expr: str) -> str:
    return expr if spec.scale == 1.0 else f"{spec.scale:g} * {expr}"


def bucket_rate_expr(spec: MetricSpec, namespaces: Sequence[str], grouping: PoolGrouping, window: str) -> str:
    """Per-bucket rates of a histogram, summed per pool: what ``histogram_quantile`` is applied to."""
    return bucket_rate_of(selector(f"{spec.metric}_bucket", namespaces, spec.matchers), grouping, window)


def value_expr(spec: MetricSpec, namespaces: Sequence[str], grouping: PoolGrouping, window: str) -> str:
    """The expression that computes one signal for every pool (a quantile as ``histogram_quantile``)."""
    if spec.kind is Kind.QUANTILE:
        return (
            f"histogram_quantile({spec.quantile:g}, {bucket_rate_expr(spec, namespaces, grouping, window)})"
        )
    sel = selector(spec.metric, namespaces, spec.matchers)
    return scaled(spec, aggregate_of(spec, sel, grouping, window))


def timestamp_expr(spec: MetricSpec, namespaces: Sequence[str], grouping: PoolGrouping) -> str:
    """The newest sample time of the series behind a signal, per pool.

    ``timestamp`` is applied to the bare selector: applied to a function result it returns evaluation time.
    """
    return timestamp_of(selector(spec.sample_for_age, namespaces, spec.matchers), grouping)


# ---- recorded series ----------------------------------------------------------------------------------


def matcher_labels(spec: MetricSpec) -> tuple[str, ...]:
    """Labels a spec filters on: a recording rule keeps them so that one recorded series serves each value."""
    return tuple(k for k, _ in spec.matchers)


def level(grouping: PoolGrouping, *extra: str) -> str:
    """The ``level`` part of a recorded name: the labels the aggregation keeps, joined by ``_``."""
    return "_".join(["namespace", grouping.label, *extra])


def recorded_name(spec: MetricSpec, grouping: PoolGrouping, window: str) -> str:
    """The recorded series holding what the query would aggregate, ``level:metric:operations``.

    ``namespace_pool_le:<histogram>_bucket:rate<window>`` (per-bucket rates), ``namespace_pool:<counter
    without _total>:rate<window>`` and ``namespace_pool:<gauge>:sum|avg``; the level names the pool label
    when one is configured and ends with any label the spec filters on. The spec's scale is not recorded
    (it is applied when reading), so specs differing only in scale share a series.
    """
    keep = matcher_labels(spec)
    if spec.kind is Kind.QUANTILE:
        return f"{level(grouping, 'le', *keep)}:{spec.metric}_bucket:rate{window}"
    if spec.kind is Kind.RATE:
        return f"{level(grouping, *keep)}:{spec.metric.removesuffix('_total')}:rate{window}"
    return f"{level(grouping, *keep)}:{spec.metric}:{spec.agg}"


def recorded_timestamp_name(spec: MetricSpec, grouping: PoolGrouping) -> str:
    """The recorded newest sample time behind a signal: ``namespace_pool:<series>:max_timestamp``."""
    return f"{level(grouping, *matcher_labels(spec))}:{spec.sample_for_age}:max_timestamp"


def signal_query(
    signal: str,
    dialects: Iterable[Dialect],
    namespaces: Sequence[str],
    grouping: PoolGrouping,
    window: str,
    recorded: frozenset[Kind] = frozenset(),
) -> str | None:
    """One query answering ``signal`` for every pool in every dialect, with value and timestamp.

    For a quantile signal the value branch returns the per-bucket rates (field ``buckets``, one series
    per ``le``) instead of one quantile, so that p50, p90 and p99 of the same histogram share one query;
    the quantiles are then computed with Prometheus's own algorithm (``histogram.bucket_quantile``).
    Dialects whose spec for the signal is identical share one branch (tag ``vllm,vllm-v0``).

    Specs of a kind in ``recorded`` read the recording rules' series (value and newest sample time) instead
    of aggregating the raw series. A recorded histogram is answered with ``histogram_quantile`` per quantile
    any dialect reads from it (field ``quantile=<q>``): re-reading the recorded bucket rates once per
    quantile is cheap, and returns a few rows per pool instead of one per bucket (vLLM's histograms have
    20+ buckets). Returns None if no dialect exposes the signal.
    """
    ds = list(dialects)
    shared: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[MetricSpec, list[str]]] = {}
    for d in ds:
        spec = d.signals.get(signal)
        if spec is not None:
            # quantiles of the same histogram are one branch whatever their q
            key = (spec.kind.value, spec.metric if spec.kind is Kind.QUANTILE else repr(spec), spec.matchers)
            shared.setdefault(key, (spec, []))[1].append(d.name)
    branches = []
    label = grouping.label
    for spec, names in shared.values():
        tag = ",".join(names)
        fld = "buckets" if spec.kind is Kind.QUANTILE else "value"
        if spec.kind in recorded:
            rec = selector(recorded_name(spec, grouping, window), namespaces, spec.matchers)
            ts = selector(recorded_timestamp_name(spec, grouping), namespaces, spec.matchers)
            branches.append(retag(ts, label, branch_tag("ts", tag)))
            if spec.kind is not Kind.QUANTILE:
                branches.append(retag(scaled(spec, rec), label, branch_tag(fld, tag)))
                continue
            for q in histogram_quantiles(spec, ds):
                value = f"histogram_quantile({q:g}, {rec})"
                branches.append(retag(value, label, branch_tag(f"{QUANTILE_FIELD}{q:g}", tag)))
            continue
        value_tag, ts_tag = branch_tag(fld, tag), branch_tag("ts", tag)
        if spec.kind is Kind.QUANTILE:
            sel = selector(f"{spec.metric}_bucket", namespaces, spec.matchers)
            value = bucket_rate_of(sel, grouping, window, tag=value_tag)
        else:
            sel = selector(spec.metric, namespaces, spec.matchers)
            value = scaled(spec, aggregate_of(spec, sel, grouping, window, tag=value_tag))
        age = selector(spec.sample_for_age, namespaces, spec.matchers)
        branches.append(grouping.tagged(value, value_tag))
        branches.append(grouping.tagged(timestamp_of(age, grouping, tag=ts_tag), ts_tag))
    return any_of(branches) if branches else None


def histogram_quantiles(spec: MetricSpec, dialects: Iterable[Dialect]) -> list[float]:
    """Every quantile any dialect reads from the histogram of ``spec`` (p50, p90, p99 of TTFT, ...)."""
    return sorted(
        {
            s.quantile
            for d in dialects
            for s in d.signals.values()
            if s.quantile is not None and (s.metric, s.matchers) == (spec.metric, spec.matchers)
        }
    )


def histogram_signature(signal: str, dialects: Iterable[Dialect]) -> tuple[tuple[str, str], ...] | None:
    """Which histogram each dialect reads ``signal`` from; equal signatures can share one query."""
    sig = []
    for d in dialects:
        spec = d.signals.get(signal)
        if spec is not None:
            if spec.kind is not Kind.QUANTILE:
                return None
            sig.append((d.name, f"{spec.metric}{spec.matchers}"))
    return tuple(sig) or None


def detection_query(markers: Iterable[str], namespaces: Sequence[str], grouping: PoolGrouping) -> str:
    """Which marker series exist per pool, and on how many pods: one row per (pool, marker) whatever the
    pool count; the value counts the series (one per pod for the engines' per-process gauges)."""
    names = sorted(set(markers))
    sel = f"{{__name__=~{regex_any(names)}, namespace=~{regex_any(namespaces)}}}"
    return f"count by (__name__, {grouping.by}) ({grouping.wrap(sel)})"


@dataclass(frozen=True)
class QueryPlan:
    """Every query of one snapshot, keyed by what it answers (``"detect"``, a signal, or a histogram group).

    ``answered_by`` maps each signal to the key of the query holding its data.
    """

    queries: Mapping[str, str]
    answered_by: Mapping[str, str]


def signal_plan(
    signals: Sequence[str],
    dialects: Iterable[Dialect],
    namespaces: Sequence[str],
    grouping: PoolGrouping,
    window: str,
    recorded: frozenset[Kind] = frozenset(),
) -> QueryPlan:
    """One query per non-quantile signal and one per histogram, with branches for ``dialects`` only.

    ``recorded``: the kinds read from recording rules' series.
    """
    ds = list(dialects)
    queries: dict[str, str] = {}
    answered_by: dict[str, str] = {}
    by_histogram: dict[tuple[tuple[str, str], ...], str] = {}
    for sig in signals:
        hist = histogram_signature(sig, ds)
        if hist is not None and hist in by_histogram:
            answered_by[sig] = by_histogram[hist]
            continue
        q = signal_query(sig, ds, namespaces, grouping, window, recorded)
        if q is None:
            continue
        queries[sig] = q
        answered_by[sig] = sig
        if hist is not None:
            by_histogram[hist] = sig
    return QueryPlan(queries=queries, answered_by=answered_by)


def plan(
    signals: Sequence[str],
    dialects: Iterable[Dialect],
    namespaces: Sequence[str],
    grouping: PoolGrouping,
    window: str,
    recorded: frozenset[Kind] = frozenset(),
) -> QueryPlan:
    """The whole constant query set: detection, then ``signal_plan`` (detection always reads the raw
    markers). ``PrometheusSource`` sends detection first and the signal queries for the dialects found."""
    ds = list(dialects)
    rest = signal_plan(signals, ds, namespaces, grouping, window, recorded)
    detect = detection_query([m for d in ds for m in d.markers], namespaces, grouping)
    return QueryPlan(queries={"detect": detect, **rest.queries}, answered_by=rest.answered_by)
