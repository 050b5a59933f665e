"""Prometheus recording rules for the expensive per-pool aggregations, generated from the dialect specs.

The rules are written by the same expression builders the raw queries use (``promql.bucket_rate_of``,
``aggregate_of``, ``timestamp_of``) over the same ``PoolGrouping`` and rate window, and their names come
from ``promql.recorded_name``, which is also what ``PrometheusSource`` reads with
``prometheus_recording_rules``: rules and queries cannot disagree. Each recorded value has a companion
``...:max_timestamp`` series (the newest raw sample time per pool), so the age of a recorded signal is
still the age of the data it was computed from, not of the rule evaluation.

Rules cover every namespace (the source filters by namespace when reading). Two output forms: a plain
rules file (``rule_files:``, what ``promtool check rules`` reads) and a prometheus-operator
``PrometheusRule`` object with the same groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from mcp_autoscale.signals.dialects import DIALECTS
from mcp_autoscale.signals.dialects.spec import Dialect, Kind, MetricSpec
from mcp_autoscale.signals.promql import (
    PoolGrouping,
    aggregate_of,
    bucket_rate_of,
    escape_string,
    matcher_labels,
    recorded_name,
    recorded_timestamp_name,
    regex_any,
    timestamp_of,
)

GROUP_NAME = "mcp-autoscale"

RECORDED_KINDS: frozenset[Kind] = frozenset({Kind.QUANTILE, Kind.RATE})
"""What the rules record and the source then reads recorded: histogram bucket rates and counter rates.

Gauges stay raw queries: recording a gauge saves little (measured, see docs/signals.md) and adds up to one
evaluation interval of age to a signal that is only a sum of current values.
"""


def _selector(metric: str, values: Mapping[str, set[str]]) -> str:
    """``metric{k="v"}``, or ``k=~"a|b"`` when specs sharing one rule filter the same label differently."""
    parts = []
    for k, vs in sorted(values.items()):
        parts.append(f"{k}={escape_string(next(iter(vs)))}" if len(vs) == 1 else f"{k}=~{regex_any(vs)}")
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def recording_rules(
    dialects: Iterable[Dialect],
    grouping: PoolGrouping,
    window: str,
    kinds: frozenset[Kind] = RECORDED_KINDS,
) -> list[dict[str, str]]:
    """``[{"record": name, "expr": promql}]`` for every spec of a kind in ``kinds``, each name once.

    Ordered by dialect priority then signal, so the file reads engine by engine and diffs stay small.
    """
    order: list[str] = []
    specs: dict[str, MetricSpec] = {}
    values: dict[str, dict[str, set[str]]] = {}
    for d in dialects:
        for spec in d.signals.values():
            if spec.kind not in kinds:
                continue
            for name in (recorded_name(spec, grouping, window), recorded_timestamp_name(spec, grouping)):
                if name not in specs:
                    order.append(name)
                    specs[name] = spec
                    values[name] = {}
                for k, v in spec.matchers:
                    values[name].setdefault(k, set()).add(v)
    rules = []
    for name in order:
        spec = specs[name]
        keep = matcher_labels(spec)
        if name.endswith(":max_timestamp"):
            expr = timestamp_of(_selector(spec.sample_for_age, values[name]), grouping, keep)
        elif spec.kind is Kind.QUANTILE:
            expr = bucket_rate_of(_selector(f"{spec.metric}_bucket", values[name]), grouping, window, keep)
        else:
            expr = aggregate_of(spec, _selector(spec.metric, values[name]), grouping, window, keep)
        rules.append({"record": name, "expr": expr})
    return rules


def rule_groups(
    dialects: Iterable[Dialect], grouping: PoolGrouping, window: str, interval: str | None = None
) -> list[dict[str, Any]]:
    """One rule group; ``interval`` overrides Prometheus's global ``evaluation_interval`` for it."""
    group: dict[str, Any] = {"name": GROUP_NAME}
    if interval:
        group["interval"] = interval
    group["rules"] = recording_rules(dialects, grouping, window)
    return [group]


def rules_file(
    dialects: Iterable[Dialect], grouping: PoolGrouping, window: str, interval: str | None = None
) -> dict[str, Any]:
    """A Prometheus rules file (``rule_files:``) as a mapping."""
    return {"groups": rule_groups(dialects, grouping, window, interval)}


def prometheus_rule(
    dialects: Iterable[Dialect],
    grouping: PoolGrouping,
    window: str,
    interval: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """The same groups as a prometheus-operator ``PrometheusRule`` (``monitoring.coreos.com/v1``)."""
    metadata: dict[str, Any] = {"name": "mcp-autoscale-recording-rules"}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/name": "mcp-autoscale"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": rule_groups(dialects, grouping, window, interval)},
    }


def to_yaml(doc: Mapping[str, Any], header: str = "") -> str:
    """Block-style YAML, keys in insertion order, one line per expression; ``header`` as leading comments."""
    body = yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, width=1 << 16)
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + body


FORMATS = ("rules", "prometheusrule")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


def duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds`` (``15s``, ``500ms``)."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive, not {seconds:g} s")
    return f"{seconds:g}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def render(
    window: str,
    pool_label: str = "",
    interval: str | None = None,
    fmt: str = "rules",
    namespace: str | None = None,
) -> str:
    """The rules as YAML text, with a header saying how it was generated and how to enable it.

    ``fmt="rules"``: a plain rules file; ``"prometheusrule"``: a prometheus-operator object.
    Raises ``ValueError`` for a bad format, interval or pool label.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if interval is not None and not _DURATION.match(interval):
        raise ValueError(f"interval {interval!r} is not a Prometheus duration such as 15s or 1m")
    grouping = PoolGrouping(pool_label)
    args = f"--window {window}" + (f" --pool-label {pool_label}" if pool_label else "")
    args += f" --interval {interval}" if interval else ""
    args += f" --format {fmt}" if fmt != "rules" else ""
    args += f" --namespace {namespace}" if namespace else ""
    header = (
        f"Generated by `mcp-autoscale signals rules {args}`: regenerate, do not edit.\n"
        "Recording rules for mcp-autoscale's per-pool signals (histogram bucket rates, counter rates and the\n"
        "newest sample time behind each). Read them with MCP_AUTOSCALE_PROMETHEUS_RECORDING_RULES=true and\n"
        f"the same rate_window ({window}) and pool_label ({pool_label or 'derived from pod'})."
    )
    ds = DIALECTS.values()
    if fmt == "rules":
        doc = rules_file(ds, grouping, window, interval)
    else:
        doc = prometheus_rule(ds, grouping, window, interval, namespace)
    return to_yaml(doc, header)
