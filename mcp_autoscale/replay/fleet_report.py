"""Write a fleet replay: report.md (fleet table, per-pool table, the goals), PNG plots and results.json."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mcp_autoscale.replay.fleet import FleetReport, fleet_ratios, write_fleet_results

COLOURS = {
    "keda": "#d62728",
    "planner": "#1f77b4",
    "oracle": "#2ca02c",
    "causal": "#9467bd",
    "fleet": "#ff7f0e",
}


def plot_nodes(report: FleetReport, path: Path) -> None:
    """Billed GPUs per minute (all node pools) per strategy, and each pool's load."""
    first = report.results[0]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[1, 2])
    for p in first.pools:
        a1.plot([i / 60.0 for i in range(len(p.rps))], p.rps, lw=0.8, label=f"{p.namespace}/{p.name}")
    a1.set_ylabel("requests/s")
    a1.legend(loc="upper left", fontsize=7, ncol=4)
    a1.set_title("Each pool's load, and the GPUs the fleet is billed for")
    for r in report.results:
        total = [sum(v) for v in zip(*r.node_gpus.values(), strict=True)]
        a2.step([i / 60.0 for i in range(len(total))], total, where="mid", lw=1.0,
                color=COLOURS.get(r.name), label=f"{r.name} ({r.gpu_hours:.1f} GPU-h)")  # fmt: skip
    a2.set_xlabel("hours into the replay")
    a2.set_ylabel("GPUs in launched nodes")
    a2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_tradeoff(report: FleetReport, path: Path) -> None:
    """GPU-hours against mean TTFT minutes within SLO: down and right is better."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r in report.results:
        ax.scatter(r.gpu_hours, r.ttft_minutes_ok_pct, color=COLOURS.get(r.name), s=40)
        ax.annotate(r.name, (r.gpu_hours, r.ttft_minutes_ok_pct), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("fleet GPU-hours (billed)")
    ax.set_ylabel("mean TTFT minutes within SLO (%)")
    ax.set_title("Fleet cost against SLO")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render(report: FleetReport, command: str) -> str:
    lines = [
        "# Fleet replay",
        "",
        f"`{command}`",
        "",
        f"{report.pools} pools, {report.duration_h:g} h, seed {report.seed}, TTFT p90 SLO "
        f"{report.slo.ttft_p90_s:g} s, ITL p90 SLO {report.slo.itl_p90_s:g} s; {report.tick_s:g} s ticks, "
        f"{report.sample_s:g} s planner samples; wall {report.wall_s:.0f} s on {report.workers} worker(s).",
        "",
        "## Fleet totals",
        "",
        "| strategy | GPU-h (billed) | $ | mean TTFT min ok % | mean ITL min ok % | worst interactive "
        "TTFT % | outer actions | gated (applied/denied) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        gated = ", ".join(f"{k} {v}" for k, v in r.verdicts.items()) or "-"
        lines.append(
            f"| {r.name} | {r.gpu_hours:.1f} | {r.usd:.2f} | {r.ttft_minutes_ok_pct:.2f} | "
            f"{r.itl_minutes_ok_pct:.2f} | {r.interactive_ttft_min_pct:.2f} | {r.outer_actions} | {gated} |"
        )
    lines += ["", "## Per pool (TTFT min ok % / ITL min ok % / pod GPU-h)", ""]
    names = [r.name for r in report.results]
    lines.append("| pool | priority | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---:|" * len(names))
    for i, p in enumerate(report.results[0].pools):
        cells = [
            f"{r.pools[i].ttft_minutes_ok_pct:.1f} / {r.pools[i].itl_minutes_ok_pct:.1f} / "
            f"{r.pools[i].gpu_hours:.1f}"
            for r in report.results
        ]
        lines.append(f"| {p.namespace}/{p.name} | {p.priority} | " + " | ".join(cells) + " |")
    ratios = fleet_ratios(report)
    if ratios:
        lines += ["", "## Goals", ""]
        lines += [f"- {k}: {v}" for k, v in ratios.items()]
    fleet = next((r for r in report.results if r.name == "fleet"), None)
    if fleet is not None and fleet.notes:
        lines += ["", "## Pooled headroom (fleet planner)", "", f"```\n{fleet.notes}\n```"]
    lines += ["", "![GPUs](nodes.png)", "", "![trade-off](tradeoff.png)", ""]
    return "\n".join(lines)


def write_fleet_report(report: FleetReport, out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_fleet_results(report, out)
    plot_nodes(report, out / "nodes.png")
    plot_tradeoff(report, out / "tradeoff.png")
    path = out / "report.md"
    path.write_text(render(report, command))
    return path
