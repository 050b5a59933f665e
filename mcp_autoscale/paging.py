"""Bounded answers for a fleet of any size: pool filters, the attention order, a fleet summary, pages and
cursors. One module for every read tool and resource, so they filter, order and page the same way.

Everything here is a pure function except ``PageStore``: a small bounded memory of ordered answers, so
that the pages of one answer come from the same moment (a stateless offset over a live, re-sorted fleet
would skip or repeat pools between calls). A cursor names the stored answer, the offset and a digest of
the query (tool + filters): a cursor used with other filters, an unknown or expired one, or a malformed
one is an ``InvalidCursor`` that says what to do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, Field

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.models import SIGNAL_NAMES, AutoscalerKind, PoolSnapshot, SloStatus
from mcp_autoscale.snapshot import incomplete

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
AT_RISK_SHARE = 0.8
"""A p90 at this share of its target (or more) is at risk."""
AT_RISK_KV = 0.9
IDLE_RPS_PER_REPLICA = 0.05
"""Below this many requests/s per desired replica a pool that costs money is idle spend."""

SloFilter = Literal["breach", "at_risk", "ok", "unknown"]
OwnerFilter = Literal["keda", "hpa", "none"]
STATUSES: tuple[str, ...] = ("breach", "at_risk", "unknown", "ok")
ATTENTION: tuple[str, ...] = ("breach", "at_risk", "stale_or_missing", "idle_spend", "ok")
"""The attention classes, most urgent first (the order every paged answer follows)."""


class InvalidCursor(InvalidInput):
    """A cursor that cannot continue this query."""


# ------------------------------------------------------------------------------------------- pool views
def owner_kind(pool: PoolSnapshot) -> str:
    if pool.owner is None:
        return "none"
    return "keda" if pool.owner.kind is AutoscalerKind.KEDA else "hpa"


def risk(pool: PoolSnapshot) -> float:
    """The worst measured p90 as a share of its target (0 when nothing is measured)."""
    worst = 0.0
    for signal in ("ttft_p90_s", "itl_p90_s"):
        value = pool.signals.value(signal)
        target = float(getattr(pool.slo_targets, signal))
        if value is not None:
            worst = max(worst, value / target)
    return worst


def is_idle(pool: PoolSnapshot) -> bool:
    """Costs money, serves (almost) nothing: replicas up, next to no requests, nothing queued."""
    desired = pool.replicas.get("desired", 0)
    if desired < 1 or not pool.cost_per_hour:
        return False
    rps = pool.signals.request_rps or 0.0
    return rps < IDLE_RPS_PER_REPLICA * desired and not (pool.signals.queue_depth or 0.0)


def status(pool: PoolSnapshot) -> str:
    """breach | at_risk | unknown | ok: the SLO verdict, with ``ok`` pools close to a limit as at_risk."""
    if pool.slo is SloStatus.BREACH:
        return "breach"
    if pool.slo is SloStatus.UNKNOWN:
        return "unknown"
    kv = pool.signals.kv_usage or 0.0
    preempting = (pool.signals.preemptions_per_min or 0.0) > 0
    if risk(pool) >= AT_RISK_SHARE or kv >= AT_RISK_KV or preempting:
        return "at_risk"
    return "ok"


def attention(pool: PoolSnapshot) -> str:
    """The pool's attention class (see ``ATTENTION``)."""
    st = status(pool)
    if st in ("breach", "at_risk"):
        return st
    if st == "unknown" or incomplete(pool.signals, pool.role):
        return "stale_or_missing"
    return "idle_spend" if is_idle(pool) else "ok"


def attention_key(pool: PoolSnapshot) -> tuple[int, float, float, str, str]:
    """Sort key: class, then the worst p90/target, then $/h (both descending), then the name (stable)."""
    return (
        ATTENTION.index(attention(pool)),
        -risk(pool),
        -(pool.cost_per_hour or 0.0),
        pool.namespace,
        pool.name,
    )


def by_attention(pools: Iterable[PoolSnapshot]) -> list[PoolSnapshot]:
    return sorted(pools, key=attention_key)


# ------------------------------------------------------------------------------------------- filters
FILTERS: dict[str, Callable[[PoolSnapshot], str]] = {
    "namespace": lambda p: p.namespace,
    "deployment": lambda p: p.name,
    "slo": status,
    "gpu_type": lambda p: p.gpu_type.casefold(),
    "owner": owner_kind,
    "cluster": lambda p: p.cluster or "",
}
"""Filter name -> the pool's value. A new filter (e.g. ``cluster``) is one line here plus the parameter."""


def active_filters(**given: str | None) -> dict[str, str]:
    """The filters a caller set (None = not set), checked against ``FILTERS``."""
    unknown = set(given) - set(FILTERS)
    if unknown:
        raise InvalidInput(f"unknown filter(s): {', '.join(sorted(unknown))}; known: {', '.join(FILTERS)}")
    return {k: (v.casefold() if k == "gpu_type" else v) for k, v in given.items() if v is not None}


def matches(pool: PoolSnapshot, filters: Mapping[str, str]) -> bool:
    return all(FILTERS[name](pool) == wanted for name, wanted in filters.items())


def select(pools: Iterable[PoolSnapshot], filters: Mapping[str, str]) -> list[PoolSnapshot]:
    return [p for p in pools if matches(p, filters)]


# ------------------------------------------------------------------------------------------- summary
class FleetSummary(BaseModel):
    """The pools that match the filters, counted (every page repeats it: it never depends on the page)."""

    total_pools: int
    slo: dict[str, int] = Field(description="breach / at_risk / unknown / ok")
    attention: dict[str, int] = Field(description="breach / at_risk / stale_or_missing / idle_spend / ok")
    gpu_type: dict[str, int]
    owner: dict[str, int] = Field(description="keda / hpa / none")
    usd_per_hour: float | None = None
    idle_usd_per_hour: float = Field(default=0.0, description="$/h of pools in idle_spend")
    stale_pools: int = 0
    missing_pools: int = Field(default=0, description="Pools with a signal missing that they should have")


def _count(values: Iterable[str], order: Sequence[str] = ()) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(order, 0)
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts if order else dict(sorted(counts.items()))


def summarise(pools: Sequence[PoolSnapshot]) -> FleetSummary:
    classes = [attention(p) for p in pools]
    costs = [p.cost_per_hour for p in pools if p.cost_per_hour is not None]
    idle = sum(p.cost_per_hour or 0.0 for p, c in zip(pools, classes, strict=True) if c == "idle_spend")
    return FleetSummary(
        total_pools=len(pools),
        slo=_count((status(p) for p in pools), STATUSES),
        attention=_count(classes, ATTENTION),
        gpu_type=_count(p.gpu_type for p in pools),
        owner=_count((owner_kind(p) for p in pools), ("keda", "hpa", "none")),
        usd_per_hour=round(sum(costs), 2) if costs else None,
        idle_usd_per_hour=round(idle, 2),
        stale_pools=sum(1 for p in pools if p.signals.stale),
        missing_pools=sum(1 for p in pools if incomplete(p.signals, p.role) and not p.signals.stale),
    )


# ------------------------------------------------------------------------------------------- cursors
class Cursor(NamedTuple):
    answer: str
    offset: int
    query: str


def query_digest(tool: str, params: Mapping[str, Any]) -> str:
    """What a cursor is bound to: the tool and its filters (not ``limit``: a page may be any size)."""
    text = json.dumps([tool, {k: v for k, v in params.items() if v is not None}], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def encode_cursor(cursor: Cursor) -> str:
    raw = f"{cursor.answer}.{cursor.offset}.{cursor.query}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    bad = InvalidCursor(
        f"invalid cursor {text[:40]!r}: pass next_cursor exactly as a previous answer gave it, "
        "or omit cursor to start from the first page"
    )
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        answer, offset, query = raw.split(".")
        value = int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    if value < 0 or not answer or not query:
        raise bad
    return Cursor(answer, value, query)


H = TypeVar("H")
T = TypeVar("T")


class PageStore:
    """The last ``size`` answers that had more than one page (thread-safe, least recently used first out)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._answers: OrderedDict[str, tuple[str, Any, list[Any]]] = OrderedDict()

    def save(self, query: str, header: Any, items: list[Any]) -> str:
        answer = secrets.token_hex(6)
        with self._lock:
            self._answers[answer] = (query, header, items)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
        return answer

    def load(self, cursor: Cursor) -> tuple[str, Any, list[Any]]:
        with self._lock:
            found = self._answers.get(cursor.answer)
            if found is not None:
                self._answers.move_to_end(cursor.answer)
        if found is None:
            raise InvalidCursor(
                f"cursor expired or unknown (the server keeps the last {self.size} paged answers, and "
                "none across restarts): omit cursor to start again from the first page"
            )
        return found


@dataclass(frozen=True)
class Page(Generic[H, T]):
    header: H
    items: list[T]
    total: int
    next_cursor: str | None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1-{MAX_LIMIT}, got {limit}")
    return limit


def paginate(
    store: PageStore,
    query: str,
    limit: int,
    cursor: str | None,
    compute: Callable[[], tuple[H, list[T]]],
) -> Page[H, T]:
    """The page at ``cursor`` (or the first page of a fresh answer from ``compute``)."""
    check_limit(limit)
    if cursor is None:
        header, items = compute()
        offset = 0
        answer = store.save(query, header, items) if len(items) > limit else ""
    else:
        c = decode_cursor(cursor)
        if c.query != query:
            raise InvalidCursor(
                "this cursor belongs to another query: pass the same tool and filters as the call that "
                "returned it, or omit cursor to start a new one"
            )
        _, header, items = store.load(c)
        offset, answer = c.offset, c.answer
        if offset > len(items):
            raise InvalidCursor(f"cursor offset {offset} is past the end ({len(items)} items)")
    end = offset + limit
    nxt = encode_cursor(Cursor(answer, end, query)) if end < len(items) else None
    return Page(header=header, items=items[offset:end], total=len(items), next_cursor=nxt)


# ------------------------------------------------------------------------------------------- compact form
def compact_signals(signals: dict[str, Any]) -> dict[str, Any]:
    """Signals ages that are all the same collapse to ``{"*": age}`` (the ``missing`` convention); an
    unmeasured signal stays an explicit null (its reason is under ``missing``: never zero, never absent)."""
    for name in SIGNAL_NAMES:
        signals.setdefault(name, None)
    ages = signals.get("age_s")
    if isinstance(ages, dict) and len(ages) > 1 and len(set(ages.values())) == 1:
        signals["age_s"] = {"*": next(iter(ages.values()))}
    return signals


def _prune(model: BaseModel, data: dict[str, Any]) -> dict[str, Any]:
    """Drop optional fields that are None or empty from ``data`` (``model``'s JSON dump), at every level.

    Walks the model beside its dump, so a *required* field that is None (``owner: str | None``) stays and
    the result still validates against the model's schema; zeros and False stay too.
    """
    for name, info in type(model).model_fields.items():
        key = info.serialization_alias or info.alias or name
        if key not in data:
            continue
        value = getattr(model, name)
        if not info.is_required() and (value is None or value == [] or value == {}):
            del data[key]
        elif isinstance(value, BaseModel) and isinstance(data[key], dict):
            _prune(value, data[key])
        elif isinstance(value, list) and isinstance(data[key], list):
            for item, dumped in zip(value, data[key], strict=False):
                if isinstance(item, BaseModel) and isinstance(dumped, dict):
                    _prune(item, dumped)
        elif isinstance(value, dict) and isinstance(data[key], dict):
            for k, item in value.items():
                dumped = data[key].get(str(k))
                if isinstance(item, BaseModel) and isinstance(dumped, dict):
                    _prune(item, dumped)
    return data


def prune(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON data without optional None/empty fields (see ``_prune``)."""
    return _prune(model, model.model_dump(mode="json"))


def compact_dump(model: BaseModel) -> dict[str, Any]:
    """The structured form of an answer without null or empty fields, and pools' ages collapsed."""
    data = prune(model)
    for pool in data.get("pools") or []:
        if isinstance(pool, dict) and isinstance(pool.get("signals"), dict):
            compact_signals(pool["signals"])
    return data


def compact_text(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
