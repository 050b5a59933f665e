"""docs/reference.md is generated from the live server's schemas; this fails the moment it drifts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_matches_the_live_server() -> None:
    generated = load_generator().generate()
    current = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert current == generated, "docs/reference.md is out of date: run `python scripts/gen_reference.py`"


def test_reference_documents_every_tool_with_its_schema() -> None:
    gen = load_generator()
    text = gen.generate()
    for tool in ("get_slo_snapshot", "patch_hpa", "scale_deployment", "request_gpu_nodes", "estimate_cost"):
        assert f"### `{tool}`" in text
    # a parameter row carries type, required flag and bounds straight from the input schema
    assert "| `replicas` | integer | yes |  | >= 0, <= 1000 |" in text
    assert "| `rationale` | string | yes |  | length >= 1, length <= 2000 |" in text
    assert (
        "`autoscale://pools/{namespace}/{deployment}/metrics`" in text and "### `diagnose_slo_breach`" in text
    )


def test_type_and_bounds_rendering() -> None:
    gen = load_generator()
    root = {"$defs": {"Mode": {"enum": ["auto", "limit"], "type": "string"}}}
    assert gen.type_of({"anyOf": [{"type": "integer"}, {"type": "null"}]}, root) == "integer | null"
    assert gen.type_of({"$ref": "#/$defs/Mode"}, root) == '"auto" | "limit"'
    assert gen.type_of({"type": "array", "items": {"type": "string"}}, root) == "array of string"
    assert gen.bounds_of(
        {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 9}, {"type": "null"}]}, root
    ) == (">= 1, <= 9")
