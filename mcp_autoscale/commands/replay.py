"""``mcp-autoscale replay``: replay a trace on the twin; compare KEDA, KEDA + planner, the peers' autoscalers
and two oracles; ``--suite`` runs them all on the library of load shapes."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from mcp_autoscale.commands._common import build_settings, echo_out, exit_on_error, fail
from mcp_autoscale.logs import configure_logging
from mcp_autoscale.preflight import readable_file, writable_dir

MAX_SYNTHETIC_S = 7 * 86400.0


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        trace: Annotated[
            Path | None, typer.Argument(help="Azure LLM trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens).")
        ] = None,
        out: Annotated[
            Path, typer.Option("--out", help="Folder for report.md, PNG plots and results.json.")
        ] = Path("replay-report"),
        synthetic: Annotated[
            str | None, typer.Option("--synthetic", help="Generate a trace of this length instead, e.g. 24h.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the twin and of the synthetic trace.")] = 7,
        peak_rps: Annotated[
            float, typer.Option("--peak-rps", help="Synthetic trace: requests/s at peak.")
        ] = 12.0,
        start_hour: Annotated[
            float, typer.Option("--start-hour", help="Synthetic trace: local start hour.")
        ] = 0.0,
        interval: Annotated[
            float, typer.Option("--interval", help="Planner outer-loop period in seconds (60-180).")
        ] = 120.0,
        workers: Annotated[int, typer.Option("--workers", help="Processes to run strategies in.")] = 2,
        strategies: Annotated[
            str | None,
            typer.Option(
                "--strategies",
                help="Comma-separated subset of keda,planner,oracle,causal,wva,dynamo,aibrix "
                "(default: keda,planner,oracle,causal; with --suite, all).",
            ),
        ] = None,
        suite: Annotated[
            bool, typer.Option("--suite", help="Run every strategy on every shape x seed (and any --trace).")
        ] = False,
        seeds: Annotated[int, typer.Option("--seeds", help="Suite: seeds per shape (>= 1).")] = 2,
        shapes: Annotated[
            str | None,
            typer.Option("--shapes", help="Suite: comma-separated shapes (default: all of them)."),
        ] = None,
        extra: Annotated[
            list[Path] | None,
            typer.Option("--trace", help="Suite: an Azure-format CSV to add (repeat for more)."),
        ] = None,
        duration: Annotated[
            str | None,
            typer.Option(
                "--duration", help="Suite: one duration for every shape (default: each shape's own)."
            ),
        ] = None,
        fleet: Annotated[
            Path | None,
            typer.Option("--fleet", help="FLEET.yaml: many pools on shared node pools (docs/evaluation.md)."),
        ] = None,
    ) -> None:
        """Replay a trace (or a synthetic one) under each strategy and write a markdown report with plots."""
        from mcp_autoscale.errors import InvalidInput
        from mcp_autoscale.replay import ReplayConfig, compare, load_trace, parse_duration, synthetic_trace
        from mcp_autoscale.replay.evaluate import STRATEGIES
        from mcp_autoscale.replay.report import ratios, write_report
        from mcp_autoscale.replay.trace import write_trace

        configure_logging("warning")
        with exit_on_error():  # every mode writes to --out and seeds the twin: refuse a bad one first
            writable_dir(out, "--out")
            if seed < 0:
                raise InvalidInput(f"--seed must be >= 0, got {seed}")
            if fleet is not None:
                readable_file(fleet, "--fleet")
        if fleet is not None:
            if trace is not None or synthetic is not None or suite:
                fail("--fleet replays the pools' own traces; give no TRACE, --synthetic or --suite", 2)
            from mcp_autoscale.commands.replay_fleet import run_fleet

            run_fleet(fleet, out, seed, interval, workers, strategies)
            return
        if suite:
            if trace is not None or synthetic is not None:
                fail("--suite runs the shape library; add CSVs with --trace FILE, not a TRACE argument", 2)
            _run_suite(out, seeds, shapes, extra or [], duration, strategies, workers)
            return
        if (trace is None) == (synthetic is None):
            fail("give either a TRACE.csv or --synthetic DURATION (e.g. --synthetic 24h)", 2)
        names = [s.strip() for s in (strategies or "keda,planner,oracle,causal").split(",") if s.strip()]
        with exit_on_error():
            unknown = [n for n in names if n not in STRATEGIES]
            if unknown or not names:
                raise InvalidInput(
                    f"--strategies: unknown {', '.join(unknown) or '(none)'}; use {','.join(STRATEGIES)}"
                )
            if not 60.0 <= interval <= 180.0:
                raise InvalidInput(f"--interval must be within 60-180 s, got {interval:g}")
            if not (math.isfinite(peak_rps) and 0.0 < peak_rps <= 10_000.0):
                raise InvalidInput(f"--peak-rps must be a number in (0, 10000], got {peak_rps:g}")
            if not (math.isfinite(start_hour) and 0.0 <= start_hour < 24.0):
                raise InvalidInput(f"--start-hour must be within 0-24, got {start_hour:g}")
            if not 1 <= workers <= 64:
                raise InvalidInput(f"--workers must be within 1-64, got {workers}")
            if trace is not None:
                readable_file(trace, "TRACE.csv")
            settings = build_settings()
            if synthetic is not None:
                length = parse_duration(synthetic)
                if length > MAX_SYNTHETIC_S:
                    raise InvalidInput(f"--synthetic {synthetic!r}: at most 7d (a replay runs every step)")
                tr = synthetic_trace(length, seed, peak_rps=peak_rps, start_hour=start_hour)
                out.mkdir(parents=True, exist_ok=True)
                write_trace(tr, out / "trace.csv")
            else:
                assert trace is not None
                tr = load_trace(trace)
            out.mkdir(parents=True, exist_ok=True)
            cfg = ReplayConfig(
                seed=seed,
                slo=settings.slo,
                planner_interval_s=interval,
                price_catalogue=settings.price_catalogue,
                audit_dir=out
                / "planner-gate",  # every gated planner action, hash-chained, kept with the report
            )
            report = compare(tr, cfg, names, workers=max(1, workers))
            command = "mcp-autoscale " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            path = write_report(report, out, command)
        for r in report.results:
            echo_out(
                f"{r.name:8s} TTFT ok {r.ttft_minutes_ok_pct:6.2f}% min {r.ttft_requests_ok_pct:6.2f}% req  "
                f"ITL ok {r.itl_minutes_ok_pct:6.2f}% min  GPU-h {r.gpu_hours:8.1f}  ${r.usd:9.2f}  "
                f"changes {r.replica_changes}  actions {r.outer_actions}"
            )
        for k, v in ratios(report).items():
            echo_out(f"{k}: {v:.2f}x")
        echo_out(f"wall {report.wall_s:.1f} s; report: {path}")


def _run_suite(
    out: Path,
    seeds: int,
    shapes: str | None,
    extra: list[Path],
    duration: str | None,
    strategies: str | None,
    workers: int,
) -> None:
    from mcp_autoscale.errors import InvalidInput
    from mcp_autoscale.replay import ReplayConfig, parse_duration
    from mcp_autoscale.replay.evaluate import STRATEGIES
    from mcp_autoscale.replay.shapes import SHAPES
    from mcp_autoscale.replay.suite import run_suite, suite_specs
    from mcp_autoscale.replay.suite_report import write_suite
    from mcp_autoscale.replay.trace import load_trace

    with exit_on_error():
        names = [s.strip() for s in (strategies or ",".join(STRATEGIES)).split(",") if s.strip()]
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown or not names:
            raise InvalidInput(
                f"--strategies: unknown {', '.join(unknown) or '(none)'}; use {','.join(STRATEGIES)}"
            )
        picked = [s.strip() for s in (shapes or ",".join(SHAPES)).split(",") if s.strip()]
        bad = [s for s in picked if s not in SHAPES]
        if bad:
            raise InvalidInput(f"--shapes: unknown {', '.join(bad)}; known: {','.join(SHAPES)}")
        if seeds < 1:
            raise InvalidInput(f"--seeds must be >= 1, got {seeds}")
        for path in extra:
            load_trace(path)  # fail fast, naming the file and line
        settings = build_settings()
        specs = suite_specs(
            picked, list(range(1, seeds + 1)), extra, parse_duration(duration) if duration else None
        )
        cfg = ReplayConfig(slo=settings.slo, price_catalogue=settings.price_catalogue)
        reports, summary = run_suite(specs, names, cfg=cfg, workers=max(1, workers))
        by_shape: dict[str, list[str]] = {}
        for spec in specs:
            by_shape.setdefault(spec.shape, []).append(spec.key)
        command = "mcp-autoscale " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        path = write_suite(reports, summary, by_shape, out, command)
    for r in summary.rows:
        echo_out(
            f"{r.shape:15s} {r.strategy:8s} TTFT ok {r.ttft_minutes_ok_pct:6.2f}% min  "
            f"ITL ok {r.itl_minutes_ok_pct:6.2f}% min  GPU-h {r.gpu_hours:8.1f}"
        )
    echo_out(f"wall {summary.wall_s:.1f} s on {summary.workers} worker(s); report: {path}")
