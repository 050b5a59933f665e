"""Issue 13, item 11: a tiny YAML "billion laughs" policy must be refused at once, naming file and line."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.policy import load_policy, parse_policy
from mcp_autoscale.policy.loader import MAX_POLICY_BYTES


def laughs(depth: int) -> str:
    """The classic: each level is nine aliases of the one before (9**depth scalars once expanded)."""
    names = "abcdefghijkl"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in itertools.pairwise(names[: depth + 1]):
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_anything_expands(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(9))  # ~350 bytes, 9**10 scalars if expanded
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"laughs\.yaml:1: \(yaml\): anchor &a is not allowed"):
        load_policy(path)
    assert time.perf_counter() - started < 5.0


def test_an_alias_names_its_line() -> None:
    text = "version: 1\ntools: [scale_deployment]\nnamespaces: [dev]\nrules:\n  - name: x\n    match:\n"
    text += "      namespaces: *ns\n"
    with pytest.raises(ConfigError, match=r"<p>:7: \(yaml\): alias \*ns is not allowed"):
        parse_policy(text, "<p>")


def test_a_huge_policy_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_POLICY_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=r"big\.yaml:1: \(file\): policy is larger than"):
        load_policy(path)
    with pytest.raises(ConfigError, match=r"<p>:1: \(file\): policy is \d+ bytes"):
        parse_policy(path.read_text(), "<p>")
