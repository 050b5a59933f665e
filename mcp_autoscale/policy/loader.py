"""Load a policy file with errors that point at FILE:LINE: field.path: message.

ruamel.yaml's round-trip loader keeps each key's and item's line (``.lc``); pydantic's error locations are
walked down that tree so every problem names the line a person has to edit.

A policy file is small and plain: it is refused when larger than ``MAX_POLICY_BYTES`` or when it uses
YAML anchors or aliases (a 571-byte "billion laughs" file of nested aliases expands to ~10^9 nodes and
took minutes and gigabytes). The check walks the parser's events, which never expand anything.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.policy.schema import Policy

BUILTIN_POLICIES: tuple[str, ...] = ("sim-default", "sim-fleet", "read-only")
MAX_POLICY_BYTES = 1024 * 1024  # the largest shipped policy is ~5 KB


def _check_plain(yaml: YAML, text: str, source: str) -> None:
    """Refuse anchors and aliases before anything is built (events only: nothing is expanded)."""
    for event in yaml.parse(text):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, AliasEvent):
            raise ConfigError(
                f"{source}:{line}: (yaml): alias *{event.anchor} is not allowed in a policy "
                "(anchors and aliases are refused: write the values out)"
            )
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor:
            raise ConfigError(
                f"{source}:{line}: (yaml): anchor &{event.anchor} is not allowed in a policy "
                "(anchors and aliases are refused: write the values out)"
            )


def _plain(node: Any) -> Any:
    """Round-trip nodes -> plain Python (pydantic should see dict/list/str/int/float, not ruamel types)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _line_of(root: Any, loc: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node on ``loc`` that exists in the YAML tree."""
    node = root
    line = (root.lc.line if hasattr(root, "lc") else 0) + 1
    for part in loc:
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _check_duplicate_names(root: CommentedMap, source: str) -> None:
    """Point at the second rule with a name (pydantic alone could only point at ``rules:``)."""
    rules = root.get("rules")
    if not isinstance(rules, CommentedSeq):
        return
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        name = rule.get("name") if isinstance(rule, CommentedMap) else None
        if isinstance(name, str):
            if name in seen:
                line = _line_of(root, ("rules", i, "name"))
                raise ConfigError(f"{source}:{line}: rules[{i}].name: duplicate rule name {name!r}")
            seen.add(name)


def parse_policy(text: str, source: str) -> Policy:
    """Parse and validate policy YAML; ``source`` names the file in error messages."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise ConfigError(
            f"{source}:1: (file): policy is {size} bytes, more than the {MAX_POLICY_BYTES} allowed"
        )
    yaml = YAML(typ="rt")
    try:
        _check_plain(yaml, text, source)
        root = yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{source}:{line}: (yaml): {err.problem or err.context}") from err
    except YAMLError as err:
        raise ConfigError(f"{source}:1: (yaml): {err}") from err
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        raise ConfigError(f"{source}:1: (top level): a policy must be a mapping, not {type(root).__name__}")
    _check_duplicate_names(root, source)
    try:
        return Policy.model_validate(_plain(root))
    except ValidationError as err:
        lines = []
        for e in err.errors(include_url=False):
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{source}:{_line_of(root, loc)}: {_field_path(loc)}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_policy(path: Path) -> Policy:
    """Read a policy file; raises ``ConfigError`` whose message names file, line and field."""
    try:
        with open(path, "rb") as fh:  # never read more than the cap (a policy path may name a huge file)
            data = fh.read(MAX_POLICY_BYTES + 1)
        if len(data) > MAX_POLICY_BYTES:
            raise ConfigError(f"{path}:1: (file): policy is larger than the {MAX_POLICY_BYTES} bytes allowed")
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}:1: (file): policy is not UTF-8 text ({err.reason})") from err
    except OSError as err:
        raise ConfigError(f"{path}:0: (file): cannot read policy file: {err.strerror or err}") from err
    return parse_policy(text, str(path))


def default_policy_name(backend: str, scenario: str) -> str:
    """The built-in policy a server uses without ``--policy``: read-only on a cluster, else the twin's."""
    if backend != "sim":
        return "read-only"
    return "sim-fleet" if scenario.startswith("fleet-") else "sim-default"


def builtin_policy(name: str) -> Policy:
    """A policy shipped inside the package: 'sim-default' (the sim fleet, sane bounds), 'sim-fleet' (the
    generated fleet-N scenarios) or 'read-only'."""
    if name not in BUILTIN_POLICIES:
        raise ConfigError(f"unknown built-in policy {name!r}; choose one of {', '.join(BUILTIN_POLICIES)}")
    res = resources.files("mcp_autoscale").joinpath("data", "policies", f"{name}.yaml")
    return parse_policy(res.read_text(encoding="utf-8"), f"<builtin>/{name}.yaml")
