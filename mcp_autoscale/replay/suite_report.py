"""Write the suite's results: ``suite.md`` (one table), ``suite.json``, a Pareto plot per shape, and each
trace's ``results.json`` (the single replay's format) in a folder of its own."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mcp_autoscale.replay.evaluate import ReplayReport
from mcp_autoscale.replay.suite import SuiteReport

COLOURS = {
    "keda": "#d62728",
    "planner": "#1f77b4",
    "oracle": "#2ca02c",
    "causal": "#9467bd",
    "wva": "#ff7f0e",
    "dynamo": "#8c564b",
    "aibrix": "#e377c2",
}


def _fmt(x: float | None, nd: int = 2, suffix: str = "") -> str:
    return "-" if x is None else f"{x:,.{nd}f}{suffix}"


def suite_table(summary: SuiteReport) -> str:
    rows = [
        "| shape | strategy | traces | TTFT SLO % min | ITL SLO % min | GPU-hours | $ / 1M tokens | "
        "x causal GPU-h | x oracle GPU-h |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.rows:
        rows.append(
            f"| {r.shape} | {r.strategy} | {r.traces} | {r.ttft_minutes_ok_pct:.2f} | "
            f"{r.itl_minutes_ok_pct:.2f} | {r.gpu_hours:.1f} | {_fmt(r.usd_per_m_tokens, 4)} | "
            f"{_fmt(r.vs_causal_gpu_hours)} | {_fmt(r.vs_oracle_gpu_hours)} |"
        )
    return "\n".join(rows)


def plot_pareto(shape: str, reports: list[ReplayReport], path: Path) -> None:
    """GPU-hours (x) vs TTFT-SLO minutes (y): one dot per trace, a ring at each strategy's mean."""
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    names = list(dict.fromkeys(r.name for rep in reports for r in rep.results))
    for name in names:
        pts = [(r.gpu_hours, r.ttft_minutes_ok_pct) for rep in reports for r in rep.results if r.name == name]
        colour = COLOURS.get(name, "grey")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=colour, alpha=0.6)
        mx = sum(p[0] for p in pts) / len(pts)
        my = sum(p[1] for p in pts) / len(pts)
        ax.scatter([mx], [my], s=90, facecolors="none", edgecolors=colour, linewidths=1.6, label=name)
        ax.annotate(name, (mx, my), textcoords="offset points", xytext=(6, 4), fontsize=8, color=colour)
    ax.set_xlabel("GPU-hours billed (lower is better)")
    ax.set_ylabel("% minutes within the TTFT SLO (higher is better)")
    ax.set_title(f"{shape}: cost vs SLO ({len(reports)} trace(s); rings are means)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_suite(
    reports: dict[str, ReplayReport],
    summary: SuiteReport,
    shapes: dict[str, list[str]],
    out: Path,
    command: str,
) -> Path:
    """``shapes`` maps each shape to its trace keys. Returns the path of suite.md."""
    out.mkdir(parents=True, exist_ok=True)
    for key, rep in reports.items():
        (out / key).mkdir(parents=True, exist_ok=True)
        (out / key / "results.json").write_text(rep.model_dump_json(indent=1), encoding="utf-8")
    (out / "suite.json").write_text(summary.model_dump_json(indent=1), encoding="utf-8")
    plots = []
    for shape, keys in shapes.items():
        reps = [reports[k] for k in keys if k in reports]
        if reps:
            name = f"pareto-{shape}.png"
            plot_pareto(shape, reps, out / name)
            plots += [f"![{shape}]({name})", ""]
    traces = [
        f"- `{k}`: {r.requests:,} requests over {r.duration_h:g} h (`{r.trace}`)" for k, r in reports.items()
    ]
    lines = [
        "# Replay suite: every strategy on every shape",
        "",
        "Pool `chat/llama-8b` of the default simulated fleet (1x L4 per replica, node pool `gpu-l4`, limit "
        "24 GPUs). Means over each shape's traces; the GPU-hour ratios are per trace (to that trace's causal "
        "oracle and oracle), then averaged.",
        "",
        suite_table(summary),
        "",
        f"Wall time: {summary.wall_s:.0f} s with {summary.workers} worker process(es) "
        f"({summary.task_s:.0f} s of task time in all).",
        "",
        "Traces:",
        "",
        *traces,
        "",
        *plots,
        "",
        f"Reproduce: `{command}`",
        "",
    ]
    path = out / "suite.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
