"""The command line imports only the module that owns the command it runs, and the table saying which
module that is stays true."""

from __future__ import annotations

import subprocess
import sys

import typer

from mcp_autoscale.cli import COMMAND_MODULES, build_cli, cli_for, command_modules


def _names(cli: typer.Typer) -> set[str]:
    return {c.name or c.callback.__name__ for c in cli.registered_commands if c.callback} | {
        g.name for g in cli.registered_groups if g.name
    }


def test_the_table_names_every_command_and_its_module() -> None:
    owners: dict[str, str] = {}
    for module in command_modules():
        for name in _names(build_cli([module])):
            owners[name] = module
    assert owners == COMMAND_MODULES


def test_a_command_mounts_only_its_module_and_help_mounts_all() -> None:
    assert _names(cli_for(["audit", "show", "--limit", "20"])) == {"audit"}
    assert _names(cli_for(["approve", "prop-1"])) == {"approve", "pending", "reject", "rollback"}
    assert _names(cli_for(["--help"])) == set(COMMAND_MODULES)
    assert _names(cli_for(["nope"])) == set(COMMAND_MODULES)  # typer names the unknown command


def test_audit_show_does_not_import_the_mcp_sdk_or_the_kubernetes_client(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "from mcp_autoscale.cli import cli_for\n"
        "cli_for(['audit', 'show'])\n"
        "print(sorted(m for m in ('mcp', 'kubernetes', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
