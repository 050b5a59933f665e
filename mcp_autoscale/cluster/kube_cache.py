"""A watch-based cache of the objects the Kubernetes read path lists (the informer pattern, in Python).

Why: an agent that asks for a snapshot every 30 s would otherwise list every Deployment, HPA, ScaledObject,
Pod and NodePool of the cluster each time. Here each kind is listed once, then watched from the list's
``resourceVersion`` (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes),
so a snapshot costs the API server no request while the cache is fresh. It follows client-go's Reflector:
watch with ``allowWatchBookmarks`` and a server-side ``timeoutSeconds``, resume from the last seen
``resourceVersion`` after a dropped stream, relist on 410 Gone (history expired), relist every ``resync_s``
to correct any drift, back off on errors.

Fail closed: every informer knows when the API server last vouched for its data (a list, an event or
bookmark, a stream the server ended on time, having sent everything up to then). Older than ``max_stale_s`` (the watch has been
broken that long) and ``read`` refuses, so the caller lists live and says so; cached data older than the
bound is never served. The watch timeout is below the bound, so a healthy but quiet watch stays fresh even
without bookmarks.

Memory is bounded by what the read path needs: objects are stored trimmed (no ``managedFields`` nor
last-applied annotation; a Pod keeps only what pool status needs), about 0.5 KB per Pod.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from mcp_autoscale import metrics
from mcp_autoscale.logs import get_logger

JSON = dict[str, Any]
log = get_logger(__name__)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
POD_ANNOTATIONS = ("prometheus.io/port", "prometheus.io/path")
MAX_BACKOFF_S = 30.0
SHORT_WATCH_S = 1.0
"""A watch the server ends sooner than this without a single event vouches for nothing (client-go's
"very short watch"): backed off as an error, never counted as the server having been heard."""


class ShortWatch(Exception):
    """The watch stream ended at once with no event (a proxy or server closing it, not its timeout)."""


def trim(obj: JSON) -> JSON:
    """Drop what the read path never reads and what makes objects large (managedFields, last-applied)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": meta}


def trim_pod(pod: JSON) -> JSON:
    """Only what pool status reads from a Pod: owner match, scheduling, readiness, /metrics URL."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in POD_ANNOTATIONS}
    kept_meta = {
        k: meta[k]
        for k in ("name", "namespace", "labels", "deletionTimestamp", "resourceVersion")
        if k in meta
    }
    if annotations:
        kept_meta["annotations"] = annotations
    return {
        "metadata": kept_meta,
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [{"ports": c.get("ports") or []} for c in spec.get("containers") or []],
        },
        "status": {
            "podIP": status.get("podIP"),
            "conditions": [
                {"type": c.get("type"), "status": c.get("status")} for c in status.get("conditions") or []
            ],
        },
    }


@dataclass(frozen=True)
class Query:
    """One list the read path makes, and how to watch it.

    ``list_call`` makes the list request and returns the List's JSON (``ApiException`` on API errors);
    ``watch_fn(*args, **kwargs)`` is the same client list method, which ``watch.Watch().stream`` calls with
    ``watch=True``. ``optional``: 404 means the CRD is not installed (empty, rechecked); ``soft``: any API
    error means unavailable (``None``, rechecked), as for NodeClaims on the live path."""

    role: str
    what: str
    list_call: Callable[[], JSON]
    watch_fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    optional: bool = False
    soft: bool = False
    trim: Callable[[JSON], JSON] = trim


def _key(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass
class Counters:
    lists: int = 0
    watches: int = 0
    events: int = 0
    bookmarks: int = 0
    expired: int = 0
    errors: int = 0


class Informer:
    """List, then watch, one query in a daemon thread; the objects are read under the cache's lock."""

    def __init__(
        self,
        query: Query,
        lock: threading.Lock,
        *,
        max_stale_s: float,
        resync_s: float,
        connect_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.query = query
        self._lock = lock
        self._max_stale_s = max_stale_s
        self._resync_s = resync_s
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.waited = False
        """A read already waited for the first list (an API server down at start costs one wait, not one
        per read)."""
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self.objects: dict[tuple[str, str], JSON] = {}
        self.unavailable = False
        self.resource_version: str | None = None
        self.last_heard: float | None = None
        self.last_list: float | None = None
        self.broken_since: float | None = None
        self.last_error: str | None = None
        self.counters = Counters()

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"kube-cache-{self.query.what}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()  # shuts the socket: the blocked read returns

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------------------------ state
    def age(self) -> float | None:
        """Seconds since the API server last vouched for this data (None: never synced)."""
        with self._lock:
            return None if self.last_heard is None else self._clock() - self.last_heard

    def fresh(self) -> bool:
        age = self.age()
        return age is not None and age <= self._max_stale_s

    def _heard(self) -> None:
        with self._lock:
            self.last_heard = self._clock()
            self.broken_since = None

    # ------------------------------------------------------------------------------------ the loop
    def _run(self) -> None:
        need_list, backoff, expired_backoff = True, 0.0, 0.0
        while not self._stop.is_set():
            try:
                if need_list or self._resync_due():
                    need_list = not self._list()
                    if need_list:  # absent CRD or soft failure: recheck while still inside the bound
                        self._stop.wait(self._max_stale_s / 3)
                        continue
                self._watch_once()
                backoff = expired_backoff = 0.0
            except ApiException as e:
                if e.status == 410:  # the history we would resume from is gone: relist (replaces the store)
                    self.counters.expired += 1
                    metrics.kube_cache_watch("expired")
                    log.info("kube_cache.expired", what=self.query.what, rv=self.resource_version)
                    need_list = True
                    # 410 again on a fresh list's version: back off, not a list per round trip
                    if expired_backoff:
                        self._stop.wait(expired_backoff * random.uniform(0.5, 1.0))
                    expired_backoff = min(MAX_BACKOFF_S, max(0.2, expired_backoff * 2))
                    continue
                backoff = self._failed(e, backoff)
            except Exception as e:  # transport errors, dropped streams: keep the thread alive, back off
                backoff = self._failed(e, backoff)

    def _failed(self, err: BaseException, backoff: float) -> float:
        if self._stop.is_set():
            return backoff
        self.counters.errors += 1
        metrics.kube_cache_watch("error")
        with self._lock:
            if self.broken_since is None:
                self.broken_since = self._clock()
            status = getattr(err, "status", None)
            self.last_error = f"{type(err).__name__}" + (f" {status}" if status else "")
        log.warning("kube_cache.broken", what=self.query.what, error=self.last_error)
        backoff = min(MAX_BACKOFF_S, max(0.2, backoff * 2))
        self._stop.wait(backoff * random.uniform(0.5, 1.0))
        return backoff

    def _resync_due(self) -> bool:
        return bool(
            self._resync_s and self.last_list is not None and self._clock() - self.last_list >= self._resync_s
        )

    def _list(self) -> bool:
        """List and replace the store. False when the kind is absent or unavailable (nothing to watch)."""
        q = self.query
        try:
            data = q.list_call()
        except ApiException as e:
            if (q.optional and e.status == 404) or q.soft:
                with self._lock:
                    self.objects, self.unavailable = {}, q.soft
                    self.last_list = self._clock()
                self._heard()
                self.synced.set()
                return False
            raise
        self.counters.lists += 1
        metrics.kube_cache_watch("list")
        items = {_key(o): q.trim(o) for o in data.get("items") or []}
        with self._lock:
            self.objects = items
            self.unavailable = False
            self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "") or None
            self.last_list = self._clock()
        self._heard()
        self.synced.set()
        return self.resource_version is not None

    def _watch_once(self) -> None:
        """One watch request from the current resourceVersion until the server ends it (timeoutSeconds)."""
        q = self.query
        timeout = max(1, int(self._max_stale_s * random.uniform(0.5, 0.9)))

        def opened(*args: Any, **kwargs: Any) -> Any:
            resp = q.watch_fn(*args, **kwargs)  # non-2xx raised ApiException already
            if self._stop.is_set():  # stopped while the request was in flight: stop() had no socket to shut
                resp.close()  # the stream then ends at once instead of blocking until its timeout
            # An accepted watch does not vouch for the data yet: its first event may be 410 Expired.
            self.counters.watches += 1
            return resp

        w = watch.Watch(return_type="object")  # plain dicts: no strict typed models
        self._watch = w
        if self._stop.is_set():
            return
        started, events = time.monotonic(), 0
        for event in w.stream(
            opened,
            *q.args,
            resource_version=self.resource_version,
            timeout_seconds=timeout,
            allow_watch_bookmarks=True,
            _request_timeout=(self._connect_timeout_s, timeout + self._connect_timeout_s),
            **q.kwargs,
        ):
            events += 1
            self._apply(event)
            if self._stop.is_set():
                w.stop()
                return
        if self._stop.is_set():
            return
        if not events and time.monotonic() - started < SHORT_WATCH_S:
            raise ShortWatch(f"{q.what}: the watch ended at once with no event")
        self._heard()  # the server ended the stream on time: it was alive until now

    def _apply(self, event: JSON) -> None:
        kind = event.get("type")
        obj = event.get("raw_object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        with self._lock:
            if kind in ("ADDED", "MODIFIED"):
                self.objects[_key(obj)] = self.query.trim(obj)
            elif kind == "DELETED":
                self.objects.pop(_key(obj), None)
            if rv:
                self.resource_version = str(rv)
        if kind == "BOOKMARK":
            self.counters.bookmarks += 1
            metrics.kube_cache_watch("bookmark")
        else:
            self.counters.events += 1
            metrics.kube_cache_watch("event")
        self._heard()


@dataclass
class CacheRead:
    """Objects by role (``None``: unavailable), or why the cache cannot answer (then ``objects`` is empty)."""

    objects: dict[str, list[JSON] | None]
    stale: str | None = None
    age_s: float = 0.0


class KubeCache:
    """Informers for a set of queries, started on the first read; ``read`` answers only within the bound."""

    def __init__(
        self,
        queries: Sequence[Query],
        *,
        max_stale_s: float = 90.0,
        resync_s: float = 600.0,
        sync_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self.max_stale_s = max_stale_s
        self.sync_timeout_s = sync_timeout_s
        self._clock = clock
        self.informers = [
            Informer(
                q,
                self._lock,
                max_stale_s=max_stale_s,
                resync_s=resync_s,
                connect_timeout_s=sync_timeout_s,
                clock=clock,
            )
            for q in queries
        ]
        self._started = False
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                for inf in self.informers:
                    inf.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop every informer and wait for its thread (tests; the server's threads are daemons)."""
        for inf in self.informers:
            inf.stop()
        for inf in self.informers:
            inf.join(timeout)

    def read(self, roles: Iterable[str]) -> CacheRead:
        """The cached objects of ``roles`` if every informer behind them is fresh; else why not."""
        wanted = set(roles)
        informers = [i for i in self.informers if i.query.role in wanted]
        self.start()
        deadline = time.monotonic() + self.sync_timeout_s
        for inf in informers:  # a read waits (bounded) for initial lists once; later, unsynced = stale
            if not inf.waited:
                inf.synced.wait(max(0.0, deadline - time.monotonic()))
                inf.waited = True
        stale = [i for i in informers if not i.fresh()]
        if stale:
            return CacheRead({}, stale="; ".join(self._why(i) for i in stale))
        out: dict[str, list[JSON] | None] = {r: [] for r in wanted}
        with self._lock:
            oldest = max((self._clock() - (i.last_heard or 0.0) for i in informers), default=0.0)
            for inf in informers:
                current = out[inf.query.role]
                if inf.unavailable or current is None:
                    out[inf.query.role] = None
                else:
                    current.extend(inf.objects.values())
        return CacheRead(out, age_s=oldest)

    def _why(self, inf: Informer) -> str:
        age = inf.age()
        if age is None:
            return f"{inf.query.what}: not synced within {self.sync_timeout_s:g} s ({inf.last_error or 'no answer'})"
        return (
            f"{inf.query.what}: watch broken, last heard {age:.0f} s ago > {self.max_stale_s:g} s bound "
            f"({inf.last_error or 'no answer'})"
        )

    def stats(self) -> dict[str, int]:
        """Requests and events so far, summed over the informers (benchmarks, logs)."""
        total = Counters()
        for inf in self.informers:
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(inf.counters, name))
        return dict(vars(total))
