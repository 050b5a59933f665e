"""Loader: valid files load; invalid ones fail with FILE:LINE: field.path: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.models import ActionKind
from mcp_autoscale.policy import BUILTIN_POLICIES, builtin_policy, load_policy

GOOD = """\
version: 1
name: good
tools: [scale_deployment]
namespaces: [dev]
rules:
  - name: dev
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_good_file_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.name == "good" and policy.tools == [ActionKind.SCALE_DEPLOYMENT]
    assert policy.rules[0].replicas is not None and policy.rules[0].replicas.max == 4


@pytest.mark.parametrize(
    ("text", "line", "field", "needle"),
    [
        (GOOD.replace("max: 4", "max: many"), 8, "rules[0].replicas.max", "integer"),
        (
            GOOD.replace("min: 0, max: 4", "min: 5, max: 4"),
            8,
            "rules[0].replicas",
            "min (5) must be <= max (4)",
        ),
        (GOOD.replace("    match:", "    mach:"), 7, "rules[0].mach", "Extra inputs are not permitted"),
        (
            GOOD.replace("tools: [scale_deployment]", "tools: [scale_everything]"),
            3,
            "tools[0]",
            "scale_deployment",
        ),
        (GOOD + "  - name: dev\n", 9, "rules[1].name", "duplicate rule name 'dev'"),
        (GOOD.replace("name: dev\n", "name: 'bad name!'\n"), 6, "rules[0].name", "pattern"),
        (GOOD + "timezone: Mars/Olympus\n", 9, "timezone", "unknown time zone"),
        (GOOD + "    active: {hours: '9-5'}\n", 9, "rules[0].active.hours", "09:00-17:30"),
        (GOOD + "    active: {cron: 'every monday'}\n", 9, "rules[0].active.cron", "cron"),
        (
            GOOD + "    guards: {max_kv_for_scale_in: 1.5}\n",
            9,
            "rules[0].guards.max_kv_for_scale_in",
            "less than",
        ),
        (GOOD + "    approval: {via: [email]}\n", 9, "rules[0].approval.via[0]", "elicitation"),
        (
            "version: 1\nrules:\n  - name: r\n    replicas:\n      min: -5\n",
            5,
            "rules[0].replicas.min",
            "greater",
        ),
        ("version: 1\nrules: [\n", 3, "(yaml)", ""),
        ("- just\n- a list\n", 1, "(top level)", "mapping"),
        ("version: 2\n", 1, "version", "1"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, needle: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: {field}:"), msg
    assert needle in msg, msg


def test_every_error_is_reported(tmp_path: Path) -> None:
    bad = GOOD.replace("max: 4", "max: x").replace("tools: [scale_deployment]", "tools: [nope]")
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, bad))
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and ":3: tools[0]" in lines[0] and ":8: rules[0].replicas.max" in lines[1]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_empty_file_is_deny_everything(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ""))
    assert policy.tools == [] and policy.rules == []


@pytest.mark.parametrize("name", BUILTIN_POLICIES)
def test_builtins_load(name: str) -> None:
    assert builtin_policy(name).name == name


def test_sim_default_covers_the_sim_namespaces() -> None:
    p = builtin_policy("sim-default")
    assert set(p.namespaces) == {"chat", "batch", "dev"}
    assert set(p.tools) == set(ActionKind)
    assert p.visible_namespaces() == ["chat", "batch", "dev"]


def test_read_only_sees_everything_but_allows_nothing() -> None:
    p = builtin_policy("read-only")
    assert p.tools == [] and p.visible_namespaces() is None


def test_unknown_builtin() -> None:
    with pytest.raises(ConfigError, match="sim-default"):
        builtin_policy("yolo")
