"""``mcp-autoscale config claude-desktop``: print a ready ``claude_desktop_config.json`` entry."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from mcp_autoscale.commands._common import echo_out, exit_on_error
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.policy import load_policy
from mcp_autoscale.preflight import check_url, readable_file


def claude_desktop_entry(
    name: str, backend: str, dry_run: bool, policy: Path | None, prometheus: str | None, command: str
) -> dict[str, object]:
    """The ``mcpServers`` entry. No secrets: tokens belong in the environment Claude Desktop passes."""
    args = ["serve", "--backend", backend]
    if dry_run:
        args.append("--dry-run")
    if policy is not None:
        args += ["--policy", str(policy.resolve())]
    if prometheus:
        args += ["--prometheus", prometheus]
    return {"mcpServers": {name: {"command": command, "args": args, "env": {}}}}


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Client configuration snippets.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("claude-desktop")
    def claude_desktop(
        name: Annotated[str, typer.Option("--name", help="Server name in Claude Desktop")] = "autoscale",
        backend: Annotated[str, typer.Option("--backend")] = "sim",
        dry_run: Annotated[bool, typer.Option("--dry-run/--no-dry-run")] = True,
        policy: Annotated[Path | None, typer.Option("--policy")] = None,
        prometheus: Annotated[str | None, typer.Option("--prometheus")] = None,
    ) -> None:
        """Print the JSON to merge into claude_desktop_config.json (dry run by default: review first)."""
        with exit_on_error():
            if backend not in ("sim", "kubernetes"):
                raise InvalidInput(f"--backend must be 'sim' or 'kubernetes', not {backend!r}")
            if policy is not None:
                load_policy(readable_file(policy, "--policy"))  # a broken entry must not be printed
            if prometheus is not None:
                prometheus = check_url(prometheus, "--prometheus")
        command = shutil.which("mcp-autoscale") or str(Path(sys.executable).with_name("mcp-autoscale"))
        echo_out(
            json.dumps(claude_desktop_entry(name, backend, dry_run, policy, prometheus, command), indent=2)
        )
