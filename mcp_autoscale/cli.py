"""The ``mcp-autoscale`` command line.

Each command group lives in its own module under ``mcp_autoscale.commands`` and exposes
``register(app: typer.Typer) -> None``; this module only discovers and mounts them.
Exit codes: 0 ok, 1 failure, 2 bad usage or invalid input.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from mcp_autoscale import __version__, commands

app = typer.Typer(
    name="mcp-autoscale",
    help="MCP server: an LLM agent as the slow, reasoning outer loop for LLM-inference autoscaling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-autoscale {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print version."),
) -> None:
    """mcp-autoscale."""


def _mount_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)


_mount_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
