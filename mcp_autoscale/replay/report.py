"""Write a replay's results: a markdown report, matplotlib PNG plots (Agg backend) and the raw JSON."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mcp_autoscale.replay.evaluate import ReplayReport, StrategyResult

COLOURS = {"keda": "#d62728", "planner": "#1f77b4", "oracle": "#2ca02c", "causal": "#9467bd"}


def _hours(n: int) -> list[float]:
    return [i / 60.0 for i in range(n)]


def plot_replicas(report: ReplayReport, path: Path) -> None:
    first = report.results[0].series
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, height_ratios=[1, 2])
    a1.plot(_hours(len(first.rps)), first.rps, lw=0.8, color="#555555")
    a1.set_ylabel("requests/s")
    a1.set_title("Trace load and replicas per strategy")
    for r in report.results:
        colour = COLOURS.get(r.name)
        a2.step(_hours(len(r.series.desired)), r.series.desired, where="mid", lw=1.0, color=colour,
                label=f"{r.name} (mean {r.mean_replicas:.1f})")  # fmt: skip
    a2.set_xlabel("hours into the trace")
    a2.set_ylabel("desired replicas (1x L4 each)")
    a2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(report: ReplayReport, path: Path) -> None:
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for r in report.results:
        h = _hours(len(r.series.ttft_p90_s))
        a1.plot(h, [x if x is not None else float("nan") for x in r.series.ttft_p90_s], lw=0.9,
                color=COLOURS.get(r.name), label=r.name)  # fmt: skip
        a2.plot(h, [x if x is not None else float("nan") for x in r.series.itl_p90_s], lw=0.9,
                color=COLOURS.get(r.name), label=r.name)  # fmt: skip
    a1.axhline(report.slo.ttft_p90_s, color="black", ls="--", lw=0.8, label="SLO")
    a2.axhline(report.slo.itl_p90_s, color="black", ls="--", lw=0.8, label="SLO")
    a1.set_yscale("log")
    a1.set_ylabel("TTFT p90 per minute (s)")
    a2.set_ylabel("ITL p90 per minute (s)")
    a2.set_xlabel("hours into the trace")
    a1.legend(loc="upper right", fontsize=8)
    a1.set_title("Latency per minute against the SLO")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_summary(report: ReplayReport, path: Path) -> None:
    names = [r.name for r in report.results]
    colours = [COLOURS.get(n, "grey") for n in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.bar(names, [r.gpu_hours for r in report.results], color=colours)
    a1.set_ylabel("GPU-hours billed")
    x = range(len(names))
    a2.bar([i - 0.2 for i in x], [r.ttft_minutes_ok_pct for r in report.results], width=0.4, color=colours)
    a2.bar([i + 0.2 for i in x], [r.itl_minutes_ok_pct for r in report.results], width=0.4, color=colours,
           alpha=0.5)  # fmt: skip
    a2.set_xticks(list(x), names)
    a2.set_ylabel("% minutes within SLO (solid TTFT, light ITL)")
    a2.set_ylim(min(50.0, *(r.ttft_minutes_ok_pct for r in report.results)) - 5, 100.5)
    fig.suptitle("Cost and SLO attainment")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def table(report: ReplayReport) -> str:
    rows = [
        "| strategy | TTFT SLO % minutes | TTFT SLO % requests | ITL SLO % minutes | ITL SLO % tokens | "
        "GPU-hours billed | pod GPU-hours | $ | $ / 1M tokens | $ / 1M out | replica changes | "
        "outer-loop actions | gated actions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        rows.append(
            f"| {r.name} | {r.ttft_minutes_ok_pct:.2f} | {r.ttft_requests_ok_pct:.2f} | "
            f"{r.itl_minutes_ok_pct:.2f} | {r.itl_tokens_ok_pct:.2f} | {r.gpu_hours:.1f} | "
            f"{r.pod_gpu_hours:.1f} | {_fmt(r.usd)} | {_fmt(r.usd_per_m_tokens, 4)} | "
            f"{_fmt(r.usd_per_m_output_tokens, 4)} | {r.replica_changes} | {r.outer_actions} | "
            f"{_verdicts(r)} |"
        )
    return "\n".join(rows)


def _verdicts(r: StrategyResult) -> str:
    """'177 (177 applied)' for a gated strategy, '-' for one that writes outside the gate."""
    if not r.gated_actions:
        return "-"
    parts = ", ".join(f"{n} {k}" for k, n in r.verdicts.items())
    return f"{r.gated_actions} ({parts})"


def ratios(report: ReplayReport) -> dict[str, float]:
    by = {r.name: r for r in report.results}
    out: dict[str, float] = {}
    if "planner" in by and "oracle" in by and by["oracle"].gpu_hours > 0:
        out["planner_vs_oracle_gpu_hours"] = round(by["planner"].gpu_hours / by["oracle"].gpu_hours, 3)
    if "planner" in by and "keda" in by and by["keda"].gpu_hours > 0:
        out["planner_vs_keda_gpu_hours"] = round(by["planner"].gpu_hours / by["keda"].gpu_hours, 3)
    if "causal" in by and "oracle" in by and by["oracle"].gpu_hours > 0:
        out["causal_vs_oracle_gpu_hours"] = round(by["causal"].gpu_hours / by["oracle"].gpu_hours, 3)
    if "planner" in by and "causal" in by and by["causal"].gpu_hours > 0:
        out["planner_vs_causal_gpu_hours"] = round(by["planner"].gpu_hours / by["causal"].gpu_hours, 3)
    return out


def _result_line(r: StrategyResult) -> str:
    return f"- **{r.name}**: {r.label}; mean {r.mean_replicas:.2f} replicas; replay took {r.wall_s:.1f} s"


def _causal_note(report: ReplayReport) -> list[str]:
    causal = next((r for r in report.results if r.name == "causal"), None)
    if causal is None:
        return []
    u = causal.knowledge.get("utilisation")
    at_u = "" if u is None else f" at U {u:g}"
    return [
        "Causal oracle: the same true capacity and the exact load of the last minute (no scrape or rate "
        f"lag), sized{at_u} with the planner's 600 s scale-in hold, but no foresight. Its gap to the "
        "oracle is the price of not seeing the future, which no outer loop avoids; set against the planner, "
        "it shows what measurement lag and a learned capacity cost, and what a forecast and hysteresis win.",
        "",
    ]


def write_report(report: ReplayReport, out: Path, command: str) -> Path:
    """Write report.md, replicas.png, latency.png, summary.png and results.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plot_replicas(report, out / "replicas.png")
    plot_latency(report, out / "latency.png")
    plot_summary(report, out / "summary.png")
    (out / "results.json").write_text(report.model_dump_json(indent=1), encoding="utf-8")
    r = ratios(report)
    cap = report.oracle_capacity
    lines = [
        "# Trace replay: KEDA vs KEDA + planner vs oracles",
        "",
        f"Trace: `{report.trace}`: {report.requests:,} requests over {report.duration_h:g} h. Pool "
        "`chat/llama-8b` (Llama-3.1-8B, 1x L4 per replica, node pool `gpu-l4`) of the default simulated "
        f"fleet, seed {report.seed}. SLO: TTFT p90 <= {report.slo.ttft_p90_s:g} s, ITL p90 <= "
        f"{report.slo.itl_p90_s:g} s. Price: ${report.usd_per_gpu_hour:.3f}/GPU-h (g6.xlarge on-demand).",
        "",
        table(report),
        "",
        *(f"- {k.replace('_', ' ')}: **{v:.2f}x**" for k, v in r.items()),
        "",
        *(_result_line(x) for x in report.results),
        "",
        f"Oracle knowledge: true per-replica capacity {cap.get('c_in', 0):,.0f} prompt tok/s and "
        f"{cap.get('c_out', 0):,.0f} output tok/s within SLO (measured by a probe run on the twin), "
        f"lead {cap.get('lead_s', 0):.0f} s (node provisioning + cold start).",
        "",
        *_causal_note(report),
        "Gated actions: the planner's writes are submitted as `Action`s through `actions.Gate` (a replay "
        "policy allowing the evaluated pool within its floor and the node pool's GPU limit; every submission "
        "has a hash-chained audit record). KEDA's own changes and the oracle's direct scaling are outside it.",
        "",
        f"Wall time: {report.wall_s:.1f} s with {report.workers} worker process(es).",
        "",
        "![replicas](replicas.png)",
        "",
        "![latency](latency.png)",
        "",
        "![summary](summary.png)",
        "",
        f"Reproduce: `{command}`",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
