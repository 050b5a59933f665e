"""The example GitHub Actions workflow runs the agent in dry-run mode, posts the report and gates on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mcp_autoscale.cli import app as cli

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions" / "autoscale-review.yml"


def steps() -> list[dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    [job] = doc["jobs"].values()
    return list(job["steps"])


def test_workflow_is_valid_yaml_with_a_trigger() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["name"] == "autoscale-review"
    assert "schedule" in doc[True] or "workflow_dispatch" in doc[True]  # YAML 1.1 reads `on` as True
    assert doc["permissions"] == {"contents": "read"}


def test_installs_then_runs_the_agent_once_in_dry_run_with_a_report() -> None:
    names = [s.get("name", s.get("uses", "")) for s in steps()]
    install = names.index("Install mcp-autoscale")
    agent = next(i for i, s in enumerate(steps()) if "mcp-autoscale agent" in s.get("run", ""))
    assert install < agent
    run = steps()[agent]["run"]
    for flag in ("--once", "--dry-run", "--report report.md", "--json report.json"):
        assert flag in run, flag
    assert "--apply" not in run
    assert "code=$?" in run and "exit_code=$code" in run and "$GITHUB_OUTPUT" in run


def test_report_goes_to_the_job_summary_and_the_job_gates_on_the_exit_code() -> None:
    summary = next(s for s in steps() if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert summary["if"] == "always()" and 'cat report.md >> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    gate = steps()[-1]
    assert gate["name"] == "Gate on the exit code"
    assert "steps.agent.outputs.exit_code" in gate["run"] and "exit 3" in gate["run"]


def test_the_workflow_uses_only_real_cli_options() -> None:
    """Every option the workflow passes to `mcp-autoscale agent` / `doctor` exists on that command."""
    import typer

    group: Any = typer.main.get_command(cli)
    assert {"agent", "doctor"} <= set(group.commands)
    text = WORKFLOW.read_text()
    for command in ("agent", "doctor"):
        known = {o for p in group.commands[command].params for o in p.opts}
        for line in text.splitlines():
            if f"mcp-autoscale {command}" in line or (command == "agent" and "--report report.md" in line):
                for token in line.split():
                    if token.startswith("--"):
                        assert token in known, f"{command} has no option {token}"
