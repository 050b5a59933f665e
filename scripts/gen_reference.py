"""Generate docs/reference.md from the live server's schemas, so the reference cannot drift from the code.

    python scripts/gen_reference.py            # rewrite docs/reference.md
    python scripts/gen_reference.py --check    # exit 1 if docs/reference.md is out of date

The server is built on the simulator backend with a temporary audit file and listed through an in-process
MCP client: what is documented is exactly what a client receives from tools/list, resources/list,
resources/templates/list and prompts/list.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "reference.md"
ANNOTATION_FIELDS = ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")


def _cell(text: Any) -> str:
    """One table cell / paragraph: whitespace collapsed (docstrings are indented), pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _flag(value: bool | None) -> str:
    return "unset" if value is None else str(value).lower()


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(root.get("$defs", {}).get(ref.split("/")[-1], {}))
    return schema


def type_of(schema: dict[str, Any], root: dict[str, Any]) -> str:
    """A short JSON-Schema type: ``integer``, ``string | null``, ``"auto" | "limit"``, ``array of X``."""
    schema = _resolve(schema, root)
    if "enum" in schema:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
    if "const" in schema:
        return f'"{schema["const"]}"'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(type_of(s, root) for s in schema[key])
    if "$ref" in schema:
        return str(schema["$ref"]).split("/")[-1]
    t = schema.get("type")
    if t == "array":
        return f"array of {type_of(schema.get('items', {}), root)}"
    if t == "object" and schema.get("title"):
        return str(schema["title"])
    return str(t or "any")


def bounds_of(schema: dict[str, Any], root: dict[str, Any]) -> str:
    """Constraints a caller must respect: ranges, lengths, patterns (also inside ``anyOf`` branches)."""
    schema = _resolve(schema, root)
    parts: list[str] = []
    for sub in [schema, *schema.get("anyOf", [])]:
        sub = _resolve(sub, root)
        for key, fmt in (
            ("minimum", ">= {}"),
            ("exclusiveMinimum", "> {}"),
            ("maximum", "<= {}"),
            ("exclusiveMaximum", "< {}"),
            ("minLength", "length >= {}"),
            ("maxLength", "length <= {}"),
            ("pattern", "pattern `{}`"),
        ):
            if key in sub:
                parts.append(fmt.format(sub[key]))
    return ", ".join(dict.fromkeys(parts))


def param_table(schema: dict[str, Any]) -> list[str]:
    props: dict[str, Any] = schema.get("properties") or {}
    if not props:
        return ["No parameters."]
    required = set(schema.get("required") or [])
    lines = ["| parameter | type | required | default | bounds | description |", "|---|---|---|---|---|---|"]
    for name, prop in props.items():
        default = "" if name in required or "default" not in prop else f"`{prop['default']!r}`"
        cells = [
            f"`{name}`",
            type_of(prop, schema),
            "yes" if name in required else "no",
            default,
            bounds_of(prop, schema),
            prop.get("description") or _resolve(prop, schema).get("description") or "",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def output_summary(schema: dict[str, Any] | None) -> list[str]:
    if not schema:
        return ["Output: text only (no structured schema)."]
    props: dict[str, Any] = schema.get("properties") or {}
    title = schema.get("title") or "object"
    lines = [f"Output (`structuredContent`): **{title}** with fields:", ""]
    for name, prop in props.items():
        desc = prop.get("description") or _resolve(prop, schema).get("description") or ""
        lines.append(f"- `{name}` ({_cell(type_of(prop, schema))})" + (f": {_cell(desc)}" if desc else ""))
    return lines


def result_models() -> list[Any]:
    """The nested models inside tool results (``tools/list`` publishes only their top-level fields)."""
    from mcp_autoscale.cost import NodePoolCost, PoolCost, WhatIfResult
    from mcp_autoscale.models import (
        Autoscaler,
        Change,
        NodePoolState,
        PoolSignals,
        PoolSnapshot,
        SloTargets,
        Verdict,
    )
    from mcp_autoscale.planner import Diagnosis, ExpectedEffect, Recommendation, ToolCall

    return [
        PoolSnapshot, PoolSignals, SloTargets, Autoscaler, NodePoolState, Verdict, Change,
        Recommendation, ToolCall, ExpectedEffect, Diagnosis, PoolCost, NodePoolCost, WhatIfResult,
    ]  # fmt: skip


def model_section(models: list[Any]) -> list[str]:
    lines = [
        "",
        "## Result models",
        "",
        "`tools/list` publishes each tool's output schema to its top-level fields (to keep the model's",
        "context small); these are the nested objects those fields hold, generated from the same models.",
    ]
    for model in models:
        schema = model.model_json_schema()
        lines += ["", f"### `{model.__name__}`", ""]
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and doc[0]:
            lines += [_cell(doc[0]), ""]
        lines += ["| field | type | description |", "|---|---|---|"]
        for name, prop in (schema.get("properties") or {}).items():
            desc = prop.get("description") or ""
            lines.append(f"| `{name}` | {_cell(type_of(prop, schema))} | {_cell(desc)} |")
    return lines


def render(
    tools: list[Any], resources: list[Any], templates: list[Any], prompts: list[Any], meta: dict[str, str]
) -> str:
    lines = [
        "# Reference: tools, resources and prompts",
        "",
        "<!-- Generated by scripts/gen_reference.py from the live server's schemas. Do not edit by hand:",
        "     run `python scripts/gen_reference.py` (tests/docs/test_reference.py fails on drift). -->",
        "",
        f"Server `{meta['name']}` as an MCP client lists it on the simulator backend. Every mutating tool",
        "goes through the policy gate and is audited; its `rationale` is required and `dry_run` turns it",
        "into a proposal. Tools described as *Simulator only* exist only with `--backend sim`.",
        "",
        "## Tools",
        "",
        "| tool | title | read-only | destructive | idempotent |",
        "|---|---|---|---|---|",
    ]
    for t in tools:
        ann = t.annotations
        flags = ["yes" if ann is not None and getattr(ann, f) else "no" for f in ANNOTATION_FIELDS[:3]]
        title = (ann.title if ann is not None and ann.title else "") or (t.title or "")
        lines.append(f"| [`{t.name}`](#{t.name}) | {_cell(title)} | " + " | ".join(flags) + " |")
    for t in tools:
        ann = t.annotations
        lines += ["", f"### `{t.name}`", ""]
        lines += [_cell(t.description or ""), ""]
        if ann is not None:
            hints = ", ".join(
                f"`{f.removesuffix('_hint')}`: {_flag(getattr(ann, f))}" for f in ANNOTATION_FIELDS
            )
            lines += [f"Annotations: {hints}.", ""]
        lines += param_table(t.input_schema)
        lines.append("")
        lines += output_summary(t.output_schema)
    lines += ["", "## Resources", "", "| URI | name | MIME type | description |", "|---|---|---|---|"]
    for r in resources:
        cells = [f"`{r.uri}`", r.name, r.mime_type or "", r.description or r.title or ""]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## Resource templates",
        "",
        "| URI template | name | MIME type | description |",
        "|---|---|---|---|",
    ]
    for rt in templates:
        cells = [f"`{rt.uri_template}`", rt.name, rt.mime_type or "", rt.description or ""]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Prompts", ""]
    for p in prompts:
        lines += [f"### `{p.name}`", "", _cell(p.description or ""), ""]
        args = p.arguments or []
        if args:
            lines += ["| argument | required | description |", "|---|---|---|"]
            lines += [
                f"| `{a.name}` | {'yes' if a.required else 'no'} | {_cell(a.description or '')} |"
                for a in args
            ]
            lines.append("")
    lines += model_section(result_models())
    return "\n".join(lines).rstrip() + "\n"


async def _collect(workdir: Path) -> str:
    from mcp import Client

    from mcp_autoscale.app import build_app
    from mcp_autoscale.config import Settings
    from mcp_autoscale.server import create_server

    settings = Settings(
        backend="sim",
        sim_clock="manual",
        audit_file=workdir / "audit.jsonl",
        state_dir=workdir / "state",
        policy_file=None,
        prometheus_url=None,
        dry_run=False,
    )
    server = create_server(build_app(settings))
    async with Client(server) as client:
        tools = sorted((await client.list_tools()).tools, key=lambda t: t.name)
        resources = sorted((await client.list_resources()).resources, key=lambda r: str(r.uri))
        templates = sorted(
            (await client.list_resource_templates()).resource_templates, key=lambda r: r.uri_template
        )
        prompts = sorted((await client.list_prompts()).prompts, key=lambda p: p.name)
    return render(tools, resources, templates, prompts, {"name": server.name})


def generate() -> str:
    """The reference markdown, built from a fresh server (no file written)."""
    from mcp_autoscale.logs import configure_logging

    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="mcp-autoscale-ref-") as tmp:
        return anyio.run(_collect, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/reference.md is out of date")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run `python scripts/gen_reference.py`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
