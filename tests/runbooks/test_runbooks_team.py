"""Runbooks live at the top level (``runbooks/``), ship in the wheel, and a team's folder merges on top."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client
from typer.testing import CliRunner

from mcp_autoscale.app import build_app
from mcp_autoscale.cli import app as cli
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.runbooks import default_runbooks, merged_runbooks, packaged_runbook_dir
from mcp_autoscale.server import create_server

ROOT = Path(__file__).resolve().parents[2]

TEAM = """---
title: {title}
slug: {slug}
severity: high
signals: [queue_depth]
symptoms: [{symptom}]
---
# {title}

{intro} More text.

```mcp
get_slo_snapshot(namespace="chat")
```
"""


def _team_dir(tmp_path: Path) -> Path:
    team = tmp_path / "team-runbooks"
    team.mkdir()
    (team / "gateway-503.md").write_text(
        TEAM.format(
            title="Gateway answers 503",
            slug="gateway-503",
            symptom="inference gateway returns 503",
            intro="Our gateway sheds load first.",
        )
    )
    (team / "ttft-breach.md").write_text(
        TEAM.format(
            title="TTFT breach, our way",
            slug="ttft-breach",
            symptom="time to first token is slow",
            intro="Page the serving on-call before touching bounds.",
        )
    )
    return team


def test_runbooks_have_one_source_at_the_top_level() -> None:
    """In a checkout the shipped runbooks are read from runbooks/, and no second copy sits in the package."""
    assert Path(str(packaged_runbook_dir())).resolve() == ROOT / "runbooks"
    assert not (ROOT / "mcp_autoscale" / "data" / "runbooks").exists()
    assert {p.stem for p in (ROOT / "runbooks").glob("*.md")} == {r.slug for r in default_runbooks()}


def test_the_build_copies_runbooks_into_the_package(tmp_path: Path) -> None:
    """What a wheel (or ``pip install .``) gets: setup.py's build step puts runbooks/ in the package."""
    out = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    built = out / "mcp_autoscale" / "data" / "runbooks"
    names = sorted(p.name for p in (ROOT / "runbooks").glob("*.md"))
    assert len(names) == 8 and sorted(p.name for p in built.iterdir()) == names
    match, mismatch, errors = filecmp.cmpfiles(ROOT / "runbooks", built, names, shallow=False)
    assert match == names and not mismatch and not errors
    assert (out / "mcp_autoscale" / "data" / "prices.yaml").is_file()  # the other package data too


def test_team_folder_adds_and_replaces(tmp_path: Path) -> None:
    merged = {r.slug: r for r in merged_runbooks(_team_dir(tmp_path))}
    assert set(merged) == {r.slug for r in default_runbooks()} | {"gateway-503"}
    assert merged["ttft-breach"].title == "TTFT breach, our way"  # the team's wins
    assert merged["kv-cache-pressure"] == next(r for r in default_runbooks() if r.slug == "kv-cache-pressure")
    assert [r.slug for r in merged_runbooks(None)] == [r.slug for r in default_runbooks()]


def test_a_broken_team_runbook_stops_start_up(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    team = _team_dir(tmp_path)
    (team / "broken.md").write_text(TEAM.format(title="x", slug="other", symptom="y", intro="z"))
    with pytest.raises(ConfigError, match=r"broken\.md.*field 'slug'"):
        build_app(make_settings(runbooks_dir=team))
    result = CliRunner().invoke(cli, ["serve", "--runbooks", str(team)])
    assert result.exit_code == 2 and "broken.md" in result.stderr
    result = CliRunner().invoke(cli, ["doctor", "--json", "--runbooks", str(team)])
    rows = {c["name"]: c for c in json.loads(result.stdout)["checks"] if c["group"] == "runbooks"}
    assert result.exit_code == 1 and rows["runbooks"]["status"] == "fail"
    assert "broken.md" in rows["runbooks"]["detail"]


@pytest.mark.anyio
async def test_served_runbooks_include_the_team_folder(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    app = build_app(make_settings(runbooks_dir=_team_dir(tmp_path)))
    async with Client(create_server(app)) as client:
        found = await client.call_tool("find_runbook", {"symptom": "gateway returns 503"})
        assert found.structured_content is not None
        assert found.structured_content["matches"][0]["slug"] == "gateway-503"
        body = await client.read_resource("autoscale://runbooks/ttft-breach")
        assert "Page the serving on-call" in body.contents[0].text  # type: ignore[union-attr]
        index = await client.read_resource("autoscale://runbooks")
        slugs = {r["slug"] for r in json.loads(index.contents[0].text)}  # type: ignore[union-attr]
        assert "gateway-503" in slugs and len(slugs) == 9


def test_doctor_counts_the_team_folder(tmp_path: Path) -> None:
    team = _team_dir(tmp_path)
    result = CliRunner().invoke(
        cli, ["doctor", "--json", "--runbooks", str(team), "--audit", str(tmp_path / "a.jsonl")]
    )
    [row] = [c for c in json.loads(result.stdout)["checks"] if c["group"] == "runbooks"]
    assert (
        row["status"] == "pass" and "1 added, 1 replaced" in row["detail"] and "9 runbooks" in row["detail"]
    )
