"""The ``mcp-autoscale`` command line.

Each command group lives in its own module under ``mcp_autoscale.commands`` and exposes
``register(app: typer.Typer) -> None``; this module only mounts them. A run imports just the module that
owns its command (``COMMAND_MODULES``), so ``audit show`` does not pay for the MCP SDK, the Kubernetes
client and matplotlib at start-up; ``--help``, an unknown word or ``cli.app`` mount every module.
Exit codes: 0 ok, 1 failure, 2 bad usage or invalid input.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import typer

from mcp_autoscale import __version__, commands

COMMAND_MODULES: dict[str, str] = {
    "agent": "agent",
    "approve": "approvals",
    "audit": "audit",
    "config": "config",
    "demo": "demo",
    "doctor": "doctor",
    "pending": "approvals",
    "policy": "policy",
    "reject": "approvals",
    "replay": "replay",
    "rollback": "approvals",
    "serve": "serve",
    "signals": "signals",
    "sim": "sim",
    "snapshot": "snapshot",
}
"""Top-level command -> the module under ``mcp_autoscale.commands`` that registers it (a test keeps it true)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-autoscale {__version__}")
        raise typer.Exit(0)


def command_modules() -> list[str]:
    """Every module under ``mcp_autoscale.commands`` that registers commands."""
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_cli(modules: Sequence[str] | None = None) -> typer.Typer:
    """A Typer app with the commands of ``modules`` (None: all of them)."""
    cli = typer.Typer(
        name="mcp-autoscale",
        help="MCP server: an LLM agent as the slow, reasoning outer loop for LLM-inference autoscaling.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @cli.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print version."
        ),
    ) -> None:
        """mcp-autoscale."""

    for name in command_modules() if modules is None else modules:
        register = getattr(importlib.import_module(f"{commands.__name__}.{name}"), "register", None)
        if callable(register):
            register(cli)
    return cli


def cli_for(argv: Sequence[str]) -> typer.Typer:
    """Only the module that owns ``argv``'s command; every module for help, --version or an unknown word."""
    words = [a for a in argv if not a.startswith("-")]
    owner = COMMAND_MODULES.get(words[0]) if words and argv and argv[0] == words[0] else None
    return build_cli(None if owner is None else [owner])


_full: typer.Typer | None = None


def __getattr__(name: str) -> typer.Typer:
    """``mcp_autoscale.cli.app``: the whole command line (built once, on first use)."""
    global _full
    if name != "app":
        raise AttributeError(name)
    if _full is None:
        _full = build_cli()
    return _full


def main() -> None:
    cli_for(sys.argv[1:])()


if __name__ == "__main__":
    main()
