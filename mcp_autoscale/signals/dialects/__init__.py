"""Metric dialects: one module per engine, each exporting ``DIALECTS``.

Every module in this package (except ``spec``) is loaded at import, so adding a dialect means adding a
module (or an entry to an existing module's ``DIALECTS``); nothing else has to change.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping

from mcp_autoscale.signals.dialects.spec import Dialect, Kind, MetricSpec


def _load() -> dict[str, Dialect]:
    found: dict[str, Dialect] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "spec" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for dialect in getattr(module, "DIALECTS", ()):
            if dialect.name in found:
                raise ValueError(f"dialect {dialect.name!r} defined twice")
            found[dialect.name] = dialect
    return dict(sorted(found.items(), key=lambda kv: (kv[1].priority, kv[0])))


DIALECTS: Mapping[str, Dialect] = _load()
"""All dialects, in detection priority order."""


def marker_names() -> list[str]:
    """Every marker series of every dialect (what the detection query asks for)."""
    return sorted({m for d in DIALECTS.values() for m in d.markers})


def detect(series_names: Iterable[str]) -> Dialect | None:
    """The highest-priority dialect whose markers all exist among ``series_names``."""
    present = set(series_names)
    for dialect in DIALECTS.values():
        if all(m in present for m in dialect.markers):
            return dialect
    return None


def get(name: str) -> Dialect:
    """A dialect by name; ``KeyError`` names the known ones."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(DIALECTS)}") from None


__all__ = ["DIALECTS", "Dialect", "Kind", "MetricSpec", "detect", "get", "marker_names"]
