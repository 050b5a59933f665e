"""``mcp-autoscale agent``: the reference rules-based agent loop (CI-friendly, deterministic).

Exit codes: 0 all SLOs healthy or every breach has an allowed (or dry-run) action; 1 errors (server failed,
tool errors); 2 bad usage; 3 breaches with no allowed action (denied, pending approval, or none proposed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import anyio
import typer

from mcp_autoscale.commands._common import (
    AuditOpt,
    BackendOpt,
    ClockOpt,
    ContextOpt,
    DryRunOpt,
    KubeCacheOpt,
    PolicyOpt,
    PrometheusOpt,
    ScenarioOpt,
    SeedOpt,
    build_settings,
    echo_out,
    exit_on_error,
    fail,
)
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.logs import configure_logging
from mcp_autoscale.preflight import check_url, writable_file


def serve_args(
    backend: str | None,
    prometheus: str | None,
    policy: Path | None,
    audit: Path | None,
    dry_run: bool,
    context: str | None,
    scenario: str | None,
    seed: int | None,
    sim_clock: str | None,
    log_level: str,
    kube_cache: bool | None = None,
) -> list[str]:
    """The ``mcp-autoscale serve`` options for the spawned server: only those given (the server reads the
    rest from ``MCP_AUTOSCALE_*``, which the agent passes through); paths made absolute."""
    args: list[str] = []
    for flag, value in (
        ("--backend", backend),
        ("--prometheus", prometheus),
        ("--context", context),
        ("--scenario", scenario),
        ("--seed", None if seed is None else str(seed)),
        ("--sim-clock", sim_clock),
    ):
        if value:
            args += [flag, value]
    if policy is not None:
        args += ["--policy", str(policy.resolve())]
    if audit is not None:
        args += ["--audit", str(audit.resolve())]
    if dry_run:
        args.append("--dry-run")
    if kube_cache is not None:
        args.append("--kube-cache" if kube_cache else "--no-kube-cache")
    return [*args, "--log-level", log_level]


def preflight(
    backend: str | None,
    prometheus: str | None,
    policy: Path | None,
    audit: Path | None,
    context: str | None,
    scenario: str | None,
    seed: int | None,
    sim_clock: str | None,
    url: str | None,
    report: Path | None,
    json_out: Path | None,
) -> None:
    """Everything the spawned server would refuse, refused here first with one line (exit 2), plus the
    report paths: a run must not end in a traceback or a report that cannot be written."""
    from mcp_autoscale.app import check_state_paths
    from mcp_autoscale.sim.scenarios import check_scenario

    if report is not None:
        writable_file(report, "--report")
    if json_out is not None:
        writable_file(json_out, "--json")
    if url is not None:
        if not check_url(url, "--url").rstrip("/").endswith("/mcp"):
            raise InvalidInput(
                f"--url {url!r}: the MCP endpoint ends in /mcp, e.g. http://127.0.0.1:8765/mcp"
            )
        return  # a running server: its own paths and sources are its business
    settings = build_settings(backend, prometheus, policy, audit, False, context, scenario, seed, sim_clock)
    if settings.backend == "sim":
        check_scenario(settings.sim_scenario)
    check_state_paths(settings)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def register(app: typer.Typer) -> None:
    @app.command()
    def agent(
        backend: BackendOpt = None,
        prometheus: PrometheusOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        dry_run: DryRunOpt = False,
        context: ContextOpt = None,
        scenario: ScenarioOpt = None,
        seed: SeedOpt = None,
        sim_clock: ClockOpt = None,
        kube_cache: KubeCacheOpt = None,
        url: Annotated[
            str | None,
            typer.Option("--url", help="Use a running server (streamable HTTP, e.g. http://h:8765/mcp)"),
        ] = None,
        token: Annotated[
            str | None,
            typer.Option("--token", help="Bearer token for --url (default: $MCP_AUTOSCALE_HTTP_TOKEN)"),
        ] = None,
        client_id: Annotated[
            str | None,
            typer.Option(
                "--client-id",
                help="OAuth client id for --url: the agent gets its own token (client credentials)",
            ),
        ] = None,
        client_secret_file: Annotated[
            Path | None,
            typer.Option(
                "--client-secret-file", help="File holding the OAuth client secret (with --client-id)"
            ),
        ] = None,
        apply: Annotated[
            bool, typer.Option("--apply", help="Send calls with dry_run=false (the policy still decides)")
        ] = False,
        once: Annotated[bool, typer.Option("--once", help="One pass, then exit (for CI)")] = False,
        interval: Annotated[
            float, typer.Option("--interval", min=1.0, max=86400.0, help="Seconds between passes")
        ] = 300.0,
        max_iterations: Annotated[
            int | None,
            typer.Option("--max-iterations", min=1, help="Stop after N passes (default: no limit)"),
        ] = None,
        namespace: Annotated[
            str | None, typer.Option("--namespace", "-n", help="Only this namespace")
        ] = None,
        report: Annotated[
            Path | None, typer.Option("--report", help="Write the markdown report here")
        ] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="Do not print the report to stdout")] = False,
        log_level: Annotated[str, typer.Option("--log-level", help="Agent and server log level")] = "warning",
        leader_elect: Annotated[
            bool,
            typer.Option(
                "--leader-elect",
                help="Several replicas: only the holder of the Lease mcp-autoscale-agent (in "
                "MCP_AUTOSCALE_KUBE_NAMESPACE, on the --context cluster or in-cluster) acts; others stand by.",
            ),
        ] = False,
    ) -> None:
        """Read the fleet over MCP, propose gated actions with data-cited rationales, write a report.

        Exit 0: SLOs healthy or every breach has an allowed/dry-run action; 3: a breach has no allowed
        action; 1: server or tool errors; 2: bad usage.
        """
        from mcp_autoscale.agent import AgentOptions, AgentReport, render_markdown, run_agent
        from mcp_autoscale.agent.oauth import ClientCredentials
        from mcp_autoscale.agent.report import headline

        configure_logging(log_level)
        if apply and dry_run:
            fail("--apply and --dry-run contradict each other: pick one", 2)
        if backend is not None and backend not in ("sim", "kubernetes"):
            fail(f"--backend must be 'sim' or 'kubernetes', not {backend!r}", 2)
        if sim_clock is not None and sim_clock not in ("wall", "manual"):
            fail(f"--sim-clock must be 'wall' or 'manual', not {sim_clock!r}", 2)
        with exit_on_error():
            preflight(
                backend, prometheus, policy, audit, context, scenario, seed, sim_clock, url, report, json_out
            )
        client_id = client_id or os.environ.get("MCP_AUTOSCALE_OAUTH_CLIENT_ID") or None
        secret_env = os.environ.get("MCP_AUTOSCALE_OAUTH_CLIENT_SECRET_FILE")
        client_secret_file = client_secret_file or (Path(secret_env) if secret_env else None)
        credentials = None
        if client_id or client_secret_file:
            if not client_id or not client_secret_file or not url:
                fail("--client-id and --client-secret-file go together, with --url", 2)
            assert client_id and client_secret_file  # fail() exits
            with exit_on_error():
                credentials = ClientCredentials.from_file(
                    client_id, client_secret_file, os.environ.get("MCP_AUTOSCALE_OAUTH_ISSUER") or None
                )
        elector = None
        if leader_elect:
            from mcp_autoscale.agent.leader import lease_elector

            with exit_on_error():
                elector = lease_elector(build_settings(context=context), interval)
        options = AgentOptions(
            serve_args=serve_args(
                backend,
                prometheus,
                policy,
                audit,
                dry_run,
                context,
                scenario,
                seed,
                sim_clock,
                log_level,
                kube_cache=kube_cache,
            ),
            url=url,
            token=None if credentials else token or os.environ.get("MCP_AUTOSCALE_HTTP_TOKEN") or None,
            credentials=credentials,
            apply=apply,
            once=once,
            interval_s=interval,
            max_iterations=max_iterations,
            namespace=namespace,
            elector=elector,
        )

        def save(current: AgentReport) -> None:
            if report is not None:
                _write(report, render_markdown(current))
            if json_out is not None:
                _write(json_out, current.model_dump_json(indent=2))

        result = anyio.run(run_agent, options, save)
        if not quiet:
            echo_out(render_markdown(result))
        elif result.exit_code != 0:
            typer.echo(headline(result), err=True)  # --quiet silences the report, never a failure
        raise typer.Exit(result.exit_code)
