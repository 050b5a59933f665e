"""The CLI under hostile input (issue 19): every command, fed paths that cannot work, URLs that are not
URLs, numbers out of range and options that do not exist, answers with one line naming the argument and
exit 2. Never a traceback, never a hang (each call is time-bounded), never a half-written file.

In-process through typer's CliRunner (fast); a few subprocess runs prove the same for the commands that
spawn a server, where a missed check would show as a hang rather than an exception.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from typer.testing import CliRunner, Result

from mcp_autoscale.cli import app

REPO = Path(__file__).resolve().parents[2]
POLICY = str(REPO / "policies" / "dev.yaml")
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Named hostile paths. ``ro`` is a read-only directory (root writes there anyway, so /sys stands
    in as the place nobody may create files)."""
    base = tmp_path_factory.mktemp("hostile")
    ro = base / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    (base / "adir").mkdir()
    paths = {
        "proc": "/proc/mcp-autoscale-fuzz/audit.jsonl",
        "proc_top": "/proc/mcp-autoscale-fuzz.jsonl",
        "under_file": "/etc/passwd/x.jsonl",
        "dir": str(base / "adir"),
        "sys": "/sys/mcp-autoscale-fuzz.jsonl",
        "ro": str(ro / "x.jsonl"),
        "missing": str(base / "no" / "such" / "file.yaml"),
        "base": str(base),
    }
    yield paths
    ro.chmod(0o755)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("state")
    return {
        "XDG_STATE_HOME": str(state),
        "MCP_AUTOSCALE_SIM_CLOCK": "manual",
        "MCP_AUTOSCALE_STATE_DIR": str(state / "mcp-autoscale"),
    }


def invoke(args: list[str], env: dict[str, str]) -> Result:
    """Run the CLI in-process, bounded in time: a hang fails the test instead of the suite."""
    box: dict[str, Result] = {}
    runner = CliRunner(env=env)
    thread = threading.Thread(target=lambda: box.update(r=runner.invoke(app, args)), daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), f"hang: mcp-autoscale {' '.join(args)}"
    return box["r"]


def assert_usage_error(result: Result, args: list[str], names: tuple[str, ...]) -> None:
    """Exit 2, no traceback, and the message names the argument (its option or its value)."""
    where = f"mcp-autoscale {' '.join(args)}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{where}: {type(result.exception).__name__}: {result.exception}"
    )
    text = result.output
    assert "Traceback" not in text and "ExceptionGroup" not in text, f"{where}:\n{text}"
    assert result.exit_code == 2, f"{where}: exit {result.exit_code}\n{text}"
    assert any(n in text for n in names), f"{where}: the message names none of {names}:\n{text}"


# Commands with a file they write, and the option that names it.
WRITE_PATH_CASES: list[tuple[list[str], str]] = [
    (["snapshot", "--backend", "sim"], "--audit"),  # read-only: only a directory is refused
    (["serve"], "--audit"),
    (["agent", "--once"], "--audit"),
    (["agent", "--once"], "--report"),
    (["agent", "--once"], "--json"),
    (["demo"], "--audit"),
    (["pending"], "--audit"),
    (["pending"], "--state-dir"),
    (["approve", "prop-000000000000", "--as", "fuzz"], "--audit"),
    (["approve", "prop-000000000000", "--as", "fuzz"], "--state-dir"),
    (["reject", "prop-000000000000", "--reason", "x"], "--state-dir"),
    (["rollback", "aud-000001", "--rationale", "x"], "--audit"),
    (["replay", "--synthetic", "1h"], "--out"),
    (["replay", "--suite"], "--out"),
]

BAD_WRITE = ("proc", "proc_top", "under_file", "dir", "sys")


@pytest.mark.parametrize(("base", "option"), WRITE_PATH_CASES, ids=lambda v: str(v))
def test_unwritable_paths_are_refused_up_front(
    base: list[str], option: str, hostile: dict[str, str], env: dict[str, str]
) -> None:
    for key in BAD_WRITE:
        if base[0] == "snapshot" and key != "dir":
            continue  # a read-only command takes no lock and writes nothing: any path is fine but a dir
        value = hostile[key]
        if option in ("--state-dir", "--out") and key == "dir":
            continue  # a directory is what these want
        if option in ("--state-dir", "--out"):
            value = value.removesuffix(".jsonl")
        args = [*base, option, value]
        assert_usage_error(invoke(args, env), args, (option, value))


def test_doctor_reports_an_unwritable_audit_log_as_a_failed_check(
    hostile: dict[str, str], env: dict[str, str]
) -> None:
    """doctor's job is to report: a FAIL row naming the path and exit 1, not a refusal or a traceback."""
    for key in BAD_WRITE:
        result = invoke(["doctor", "--audit", hostile[key]], env)
        assert (result.exit_code == 1 and result.exception is None) or isinstance(
            result.exception, SystemExit
        )
        assert "FAIL    audit" in result.output and "Traceback" not in result.output, result.output


def test_read_only_command_reads_a_log_in_a_read_only_place(
    hostile: dict[str, str], env: dict[str, str]
) -> None:
    """`snapshot` never takes the writers' lock: an audit log nobody may write next to is fine."""
    for key in ("proc", "sys", "ro", "under_file"):
        args = ["snapshot", "--audit", hostile[key]]
        result = invoke(args, env)
        assert result.exit_code == 0, (args, result.output)


READ_PATH_CASES: list[list[str]] = [
    ["snapshot", "--policy"],
    ["serve", "--policy"],
    ["agent", "--once", "--policy"],
    ["doctor", "--policy"],
    ["pending", "--policy"],
    ["config", "claude-desktop", "--policy"],
    ["policy", "check"],
    ["policy", "explain", "--tool", "scale_deployment", "--args", "{}", "--"],
    ["audit", "verify"],
    ["audit", "show", "--file"],
    ["replay", "--out", "OUT"],
]

BAD_READ = ("proc", "under_file", "dir", "missing")


@pytest.mark.parametrize("base", READ_PATH_CASES, ids=lambda v: " ".join(v[:2]))
def test_unreadable_inputs_are_refused(base: list[str], hostile: dict[str, str], env: dict[str, str]) -> None:
    for key in BAD_READ:
        value = hostile[key]
        args = [a if a != "OUT" else hostile["base"] + "/replay-out" for a in base] + [value]
        if base[0] == "replay":
            args = ["replay", value, "--out", hostile["base"] + "/replay-out"]
        if base[:2] == ["policy", "explain"]:
            args = ["policy", "explain", value, "--tool", "scale_deployment", "--args", "{}"]
        option = next((a for a in reversed(base) if a.startswith("--") and a != "--"), value)
        assert_usage_error(invoke(args, env), args, (option, value))


def test_replay_fleet_file_is_checked(hostile: dict[str, str], env: dict[str, str]) -> None:
    for key in BAD_READ:
        args = ["replay", "--fleet", hostile[key], "--out", hostile["base"] + "/replay-out"]
        assert_usage_error(invoke(args, env), args, ("--fleet",))


URLS = ("127.0.0.1:9090", "localhost:9090", "not-a-url", "ftp://127.0.0.1:9090", "http://", "http://h:99999")


@pytest.mark.parametrize(
    "base",
    [["snapshot"], ["serve"], ["agent", "--once"], ["doctor"], ["config", "claude-desktop"]],
    ids=lambda v: v[0],
)
def test_urls_are_checked_with_the_fix(base: list[str], env: dict[str, str]) -> None:
    for url in URLS:
        args = [*base, "--prometheus", url]
        result = invoke(args, env)
        assert_usage_error(result, args, ("--prometheus",))
        if "://" not in url:
            assert f"did you mean http://{url}" in result.output
        elif url.startswith("ftp"):
            assert "use http://" in result.output


def test_agent_url_is_checked(env: dict[str, str]) -> None:
    for url in (*URLS, "http://127.0.0.1:8765/not-mcp"):
        args = ["agent", "--once", "--url", url]
        assert_usage_error(invoke(args, env), args, ("--url",))


NUMBERS: list[tuple[list[str], str, tuple[str, ...]]] = [
    (["snapshot"], "--seed", ("-1", "1e400", "99999999999999999999999999", "x")),
    (["serve"], "--port", ("-1", "0", "70000", "nan")),
    (["serve"], "--seed", ("-1",)),
    (["agent", "--once"], "--interval", ("0", "-5", "nan", "inf")),
    (["agent", "--once"], "--max-iterations", ("0", "-1")),
    (["agent", "--once"], "--seed", ("-1",)),
    (["sim"], "--port", ("-1", "70000")),
    (["sim"], "--speed", ("0", "-1", "nan", "inf")),
    (["sim"], "--seed", ("-1",)),
    (["audit", "show"], "--limit", ("0", "-1", "nan")),
    (["replay", "--synthetic", "1h", "--out", "OUT"], "--interval", ("0", "nan", "1e300")),
    (["replay", "--synthetic", "1h", "--out", "OUT"], "--peak-rps", ("-1", "0", "nan", "1e300")),
    (["replay", "--synthetic", "1h", "--out", "OUT"], "--start-hour", ("-1", "24", "nan")),
    (["replay", "--synthetic", "1h", "--out", "OUT"], "--seed", ("-1",)),
    (["replay", "--synthetic", "1h", "--out", "OUT"], "--workers", ("0", "-3", "100000")),
    (["replay", "--out", "OUT"], "--synthetic", ("0h", "-1h", "99999d", "soon", "nan")),
    (
        ["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "{}"],
        "--kv",
        ("1.7", "-0.1", "nan", "inf"),
    ),
    (["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "{}"], "--queue", ("-5", "nan")),
    (["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "{}"], "--age", ("-10", "nan")),
    (["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "{}"], "--current", ("-1",)),
    (["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "{}"], "--cost", ("nan", "inf")),
]


@pytest.mark.parametrize(("base", "option", "values"), NUMBERS, ids=lambda v: str(v))
def test_numbers_out_of_range(
    base: list[str], option: str, values: tuple[str, ...], hostile: dict[str, str], env: dict[str, str]
) -> None:
    base = [hostile["base"] + "/replay-out" if a == "OUT" else a for a in base]
    for value in values:
        args = [*base, option, value]
        assert_usage_error(invoke(args, env), args, (option, value))


WORDS: list[list[str]] = [
    ["snapshot", "--backend", "foo"],
    ["snapshot", "--scenario", "nope"],
    ["serve", "--transport", "carrier-pigeon"],
    ["serve", "--sim-clock", "sundial"],
    ["agent", "--once", "--scenario", "nope"],
    ["agent", "--once", "--backend", "foo"],
    ["agent", "--once", "--apply", "--dry-run"],
    ["demo", "--scenario", "nope"],
    ["sim", "--scenario", "nope"],
    ["config", "claude-desktop", "--backend", "foo"],
    ["audit", "show", "--status", "nonsense"],
    ["audit", "show", "--verdict", "maybe"],
    ["audit", "show", "--tool", "rm_rf"],
    ["audit", "show", "--since", "yesterday-ish"],
    ["policy", "explain", POLICY, "--tool", "delete_everything"],
    ["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "{nope"],
    ["policy", "explain", POLICY, "--tool", "scale_deployment", "--args", "[1]"],
    ["policy", "explain", POLICY, "--tool", "scale_deployment", "--at", "someday"],
    ["approve", "../../etc/passwd", "--as", "x"],
    ["reject", "prop-0000", "--reason", "   "],
    ["replay", "--synthetic", "1h", "--strategies", "magic"],
    ["replay"],
    ["signals", "rules", "--format", "xml"],
    ["signals", "rules", "--window", "forever"],
    ["snapshot", "--no-such-option"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", WORDS, ids=lambda v: " ".join(v[:3]))
def test_unknown_words_are_usage_errors(
    args: list[str], hostile: dict[str, str], env: dict[str, str]
) -> None:
    if args[0] == "replay":
        args = [*args, "--out", hostile["base"] + "/replay-out"]
    names = tuple(a for a in args if a.startswith("--")) + tuple(args[-1:]) + ("proposal id", "--synthetic")
    assert_usage_error(invoke(args, env), args, names)


def test_no_kubeconfig_says_what_is_missing_and_the_fix(tmp_path: Path, env: dict[str, str]) -> None:
    bare = {**env, "HOME": str(tmp_path), "KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": ""}
    args = ["snapshot", "--backend", "kubernetes"]
    result = invoke(args, bare)
    assert_usage_error(result, args, ("kubeconfig",))
    assert f"{tmp_path}/.kube/config does not exist" in result.output and "export KUBECONFIG" in result.output
    assert "Service host/port" not in result.output


def test_config_claude_desktop_prints_nothing_broken(hostile: dict[str, str], env: dict[str, str]) -> None:
    for args in (
        ["config", "claude-desktop", "--backend", "foo"],
        ["config", "claude-desktop", "--policy", hostile["missing"]],
        ["config", "claude-desktop", "--policy", "/etc/passwd"],
    ):
        result = invoke(args, env)
        assert result.exit_code == 2 and "mcpServers" not in result.output, (args, result.output)


def test_audit_lock_times_out_instead_of_hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A held (or uncreatable) audit lock ends in a one-line error after the timeout, not a hang."""
    from mcp_autoscale.audit import log as audit_log
    from mcp_autoscale.errors import AuditUnavailable

    monkeypatch.setattr(audit_log, "LOCK_TIMEOUT_S", 0.2)
    path = tmp_path / "audit.jsonl"
    holder = FileLock(str(path) + ".lock")
    with holder, pytest.raises(AuditUnavailable, match=r"not acquired within 0\.2 s"):
        audit_log.AuditLog(path)


def spawn(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_autoscale", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["snapshot", "--audit", "/proc/mcp-autoscale-fuzz.jsonl", "--prometheus", "127.0.0.1:9090"],
        ["demo", "--scenario", "nope"],
        ["sim", "--port", "0", "--host", "256.1.1.1"],
    ],
    ids=lambda v: v[0],
)
def test_no_hang_and_one_line_as_a_process(args: list[str], env: dict[str, str]) -> None:
    proc = spawn(args, env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_quiet_agent_still_says_why_it_failed(env: dict[str, str]) -> None:
    """`agent --quiet` silences the report, never the failure: one line on stderr."""
    proc = spawn(["agent", "--once", "--quiet", "--url", "http://127.0.0.1:1/mcp"], env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "agent: exit 1" in proc.stderr and "server connection failed" in proc.stderr


def test_snapshot_exit_codes_never_green_when_blind(env: dict[str, str]) -> None:
    """0 complete, 1 a source down (named), 3 partial; the --json document is printed either way."""
    import json

    ok = invoke(["snapshot", "--json"], env)
    assert ok.exit_code == 0, ok.output
    down = invoke(["snapshot", "--json", "--prometheus", "http://127.0.0.1:1"], env)
    assert down.exit_code == 1, down.output
    snap: dict[str, Any] = json.loads(down.stdout)
    assert snap["source_errors"] == ["prometheus unreachable: connection refused"]
    assert {p["slo"] for p in snap["pools"]} == {"unknown"}
    table = invoke(["snapshot", "--prometheus", "http://127.0.0.1:1"], env)
    assert table.exit_code == 1 and "SOURCE DOWN: prometheus unreachable" in table.stdout
    # partial without a dead source (a pool's signals missing or stale): 3, never 0
    from mcp_autoscale.commands.snapshot import snapshot_exit_code
    from mcp_autoscale.models import FleetSnapshot

    partial = FleetSnapshot.model_validate({**snap, "source_errors": [], "partial": True})
    assert snapshot_exit_code(partial) == 3
    unjudged = FleetSnapshot.model_validate({**snap, "source_errors": [], "partial": False})
    assert snapshot_exit_code(unjudged) == 3
