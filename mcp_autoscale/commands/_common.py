"""Options shared by every command that reads the fleet, and the error -> exit-code mapping."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AutoscaleError, InvalidInput
from mcp_autoscale.preflight import check_url, readable_file

BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="sim (embedded simulated fleet, no cluster; the default) or kubernetes."),
]
PrometheusOpt = Annotated[
    str | None, typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")
]
PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="Policy file (YAML).")]
AuditOpt = Annotated[Path | None, typer.Option("--audit", help="Audit log file (JSON Lines).")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Every mutating call becomes a proposal, whatever the policy says.")
]
RunbooksOpt = Annotated[
    Path | None,
    typer.Option(
        "--runbooks",
        help="A team's runbook folder (*.md), merged over the shipped runbooks; a shipped slug is replaced.",
    ),
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (kubernetes backend).")]
KubeCacheOpt = Annotated[
    bool | None,
    typer.Option(
        "--kube-cache/--no-kube-cache",
        help="kubernetes backend: serve fleet reads from a watch cache (list once, then watch; live lists "
        "when a watch is broken too long). Default on (MCP_AUTOSCALE_KUBE_CACHE); actions always read live.",
    ),
]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="Simulator scenario (sim backend).")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Simulator seed (sim backend).", min=0, max=2**32 - 1)
]
ClockOpt = Annotated[
    str | None,
    typer.Option(
        "--sim-clock",
        help="Simulator time: 'wall' follows the wall clock; 'manual' moves only when advanced.",
    ),
]


def build_settings(
    backend: str | None = None,
    prometheus: str | None = None,
    policy: Path | None = None,
    audit: Path | None = None,
    dry_run: bool = False,
    context: str | None = None,
    scenario: str | None = None,
    seed: int | None = None,
    sim_clock: str | None = None,
    **extra: Any,
) -> Settings:
    """Settings from env (MCP_AUTOSCALE_*) overlaid with the CLI options actually given (None = not given)."""
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if backend is not None:
        if backend not in ("sim", "kubernetes"):
            raise InvalidInput(f"--backend must be 'sim' or 'kubernetes', not {backend!r}")
        overrides["backend"] = backend
    if prometheus:
        overrides["prometheus_url"] = prometheus
    if policy is not None:
        overrides["policy_file"] = policy
    if audit is not None:
        overrides["audit_file"] = audit
    if dry_run:
        overrides["dry_run"] = True
    if context:
        overrides["kube_context"] = context
    if scenario:
        overrides["sim_scenario"] = scenario
    if seed is not None:
        overrides["sim_seed"] = seed
    if sim_clock:
        if sim_clock not in ("wall", "manual"):
            raise InvalidInput(f"--sim-clock must be 'wall' or 'manual', not {sim_clock!r}")
        overrides["sim_clock"] = sim_clock
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        raise InvalidInput(f"invalid settings: {err}") from err
    check_settings(settings, prometheus_flag="--prometheus" if prometheus else None)
    return settings


def check_settings(settings: Settings, *, prometheus_flag: str | None = None) -> None:
    """URLs and input files from options or ``MCP_AUTOSCALE_*``, checked before anything starts."""
    if settings.prometheus_url:
        check_url(settings.prometheus_url, prometheus_flag or "MCP_AUTOSCALE_PROMETHEUS_URL")
    if settings.approval_webhook_url:
        check_url(settings.approval_webhook_url, "MCP_AUTOSCALE_APPROVAL_WEBHOOK_URL")
    if settings.policy_file is not None:
        readable_file(settings.policy_file, "--policy")
    if settings.price_catalogue is not None:
        readable_file(settings.price_catalogue, "MCP_AUTOSCALE_PRICE_CATALOGUE")
    if settings.kubeconfig is not None:
        readable_file(settings.kubeconfig, "MCP_AUTOSCALE_KUBECONFIG")


def fail(message: str, code: int = 1) -> None:
    """Print to stderr and exit: 1 failure, 2 bad usage or invalid input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Map domain errors to exit codes with a one-line message on stderr (no traceback)."""
    try:
        yield
    except InvalidInput as err:
        fail(str(err), 2)
    except AutoscaleError as err:
        fail(str(err), 1)


def echo_out(text: str) -> None:
    """Write command output to stdout (never used by ``serve`` in stdio mode)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
