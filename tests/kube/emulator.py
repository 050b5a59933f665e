"""An in-process Kubernetes API-server emulator for tests: the real client talks real HTTP to it.

Why purpose-built (see /work/shared/KUBE_TESTING.md): the PyPI emulators ignore resourceVersion, dryRun, the
scale subresource and patch content types, and kmock mutates the store before injected faults fire. This one
is small and generic: one routing regex, one store keyed by (group, version, plural, namespace, name), one
RLock, one global resourceVersion counter. Its own behaviour suite (test_emulator.py) pins it so it cannot
quietly become lenient.

Faithful where the backend depends on it: rv on every write and 409 on stale PUT / rv-bearing PATCH, 409
AlreadyExists, scale subresource (autoscaling/v1 Scale), JSON patch (422 on failed ``test``), merge patch
(RFC 7386), strategic merge (approximation: a patchMergeKey table), ``dryRun=All`` (full path, nothing
persisted), label and field selectors, standard ``Status`` error bodies, RBAC denials (a deny-list that also
answers SelfSubjectAccessReviews), custom resources served only while their CRD exists (404 otherwise, as
on a cluster without KEDA).
Watches (``?watch=true``) follow the API server's "efficient detection of changes"
(https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes): a chunked
stream of newline-delimited JSON events (ADDED / MODIFIED / DELETED, BOOKMARK when ``allowWatchBookmarks``)
from a bounded event history; ``resourceVersion`` unset or "0" first sends the current objects as ADDED; a
``resourceVersion`` older than the history (or a watcher that falls behind it) gets one ERROR event whose
object is a ``Status`` with code 410 and reason ``Expired`` and the stream ends, as the apiserver's watch
cache does (``newErrWatcher`` for ``NewResourceExpired("too old resource version: %d (%d)")``, HTTP 200);
label and field selectors apply to events, and an object that stops (starts) matching is sent as DELETED
(ADDED). ``timeoutSeconds`` ends the stream cleanly; ``break_watches()`` drops every open stream without
the closing chunk (a lost connection). Approximations: one history for all kinds (``history_size`` events,
the real cache keeps one per resource), bookmarks every ``bookmark_interval_s`` and just before the
timeout (the apiserver sends them about once a minute and before the deadline).
Not emulated: server-side apply (415), defaulting, admission, schema validation, ``$retainKeys`` and
``$setElementOrder``, version conversion (each apiVersion is its own store).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpatch

JSON = dict[str, Any]
Key = tuple[str, str, str, str | None, str]  # group, version, plural, namespace, name

ROUTE = re.compile(
    r"^/(?:api/(?P<cv>[^/]+)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)

# (group, plural) -> (Kind, namespaced). Built-in resources the emulator serves at any version given.
BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "pods"): ("Pod", True),
    ("", "events"): ("Event", True),
    ("", "configmaps"): ("ConfigMap", True),
    ("", "services"): ("Service", True),
    ("", "namespaces"): ("Namespace", False),
    ("", "nodes"): ("Node", False),
    ("apps", "deployments"): ("Deployment", True),
    ("apps", "statefulsets"): ("StatefulSet", True),
    ("apps", "replicasets"): ("ReplicaSet", True),
    ("autoscaling", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", True),
    ("events.k8s.io", "events"): ("Event", True),
    ("coordination.k8s.io", "leases"): ("Lease", True),
    ("scheduling.k8s.io", "priorityclasses"): ("PriorityClass", False),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("CustomResourceDefinition", False),
    ("authorization.k8s.io", "selfsubjectaccessreviews"): ("SelfSubjectAccessReview", False),
}
SCALABLE = {("apps", "deployments"), ("apps", "statefulsets"), ("apps", "replicasets")}

# Strategic merge: list field name -> merge key (the patchMergeKey of the Go types, for the fields we meet).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
}

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
SERVICE_ACCOUNT = "system:serviceaccount:mcp-autoscale:mcp-autoscale"
HISTORY_SIZE = 1000
BOOKMARK_INTERVAL_S = 60.0


class ApiError(Exception):
    """A failure answered with a standard ``Status`` body."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: JSON | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    body: JSON | None = None
    delay_s: float = 0.0
    watch: bool | None = None


@dataclass
class Hook:
    method: str
    path: re.Pattern[str]
    fn: Callable[[Emulator], object]
    times: int


@dataclass
class Denial:
    verb: str
    group: str
    resource: str
    namespace: str | None = None
    subresource: str = ""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any


@dataclass(frozen=True)
class Change:
    """One persisted write in the event history (``prev``: the object before a MODIFIED)."""

    rv: int
    type: str
    key: Key
    obj: JSON
    prev: JSON | None = None


@dataclass
class Route:
    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    sub: str | None
    kind: str = ""
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# --------------------------------------------------------------------------------------------------
# Pure helpers: patches and selectors
# --------------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def strategic_merge_patch(target: Any, patch: Any, field_name: str = "") -> Any:
    """Merge patch plus list merging by patchMergeKey (MERGE_KEYS) and ``$patch: delete`` items."""
    if isinstance(patch, list):
        key = MERGE_KEYS.get(field_name)
        if key is None or not isinstance(target, list):
            return [item for item in copy.deepcopy(patch) if not _is_delete(item)]
        merged = copy.deepcopy(target)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise ApiError(
                    422, f"strategic merge patch: list {field_name!r} item lacks merge key {key!r}"
                )
            idx = next(
                (i for i, cur in enumerate(merged) if isinstance(cur, dict) and cur.get(key) == item[key]),
                None,
            )
            if _is_delete(item):
                if idx is not None:
                    merged.pop(idx)
            elif idx is None:
                merged.append(strategic_merge_patch({}, item))
            else:
                merged[idx] = strategic_merge_patch(merged[idx], item)
        return merged
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k == "$patch":
            continue
        if v is None:
            result.pop(k, None)
        else:
            result[k] = strategic_merge_patch(result.get(k), v, k)
    return result


def _is_delete(item: Any) -> bool:
    return isinstance(item, dict) and item.get("$patch") == "delete"


_REQ = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<skey>[\w./-]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)"
    r"|(?P<ekey>[\w./-]+)\s*(?P<eop>==|!=|=)\s*(?P<eval>[\w./-]*)"
    r"|(?P<xkey>[\w./-]+))\s*$"
)


def _split_top(expr: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def _requirement(m: re.Match[str]) -> Callable[[dict[str, str]], bool]:
    if m["nkey"]:
        absent: str = m["nkey"]
        return lambda lb: absent not in lb
    if m["xkey"]:
        present: str = m["xkey"]
        return lambda lb: present in lb
    if m["skey"]:
        key: str = m["skey"]
        vals = {v.strip() for v in m["vals"].split(",") if v.strip()}
        if m["op"] == "in":
            return lambda lb: lb.get(key) in vals
        return lambda lb: lb.get(key) not in vals
    ekey: str = m["ekey"]
    want: str = m["eval"]
    if m["eop"] == "!=":
        return lambda lb: lb.get(ekey) != want
    return lambda lb: ekey in lb and lb[ekey] == want


def parse_label_selector(expr: str) -> Callable[[dict[str, str]], bool]:
    """Equality (``=``, ``==``, ``!=``) and set-based (``in``, ``notin``, ``k``, ``!k``), ANDed."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_top(expr):
        m = _REQ.match(part)
        if not m:
            raise ApiError(400, f"unable to parse requirement: {part.strip()!r}")
        checks.append(_requirement(m))
    return lambda labels: all(c(labels) for c in checks)


FIELD_PATHS = {"metadata.name", "metadata.namespace"}
EVENT_FIELD_PATHS = {
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
}


def parse_field_selector(expr: str, plural: str) -> Callable[[JSON], bool]:
    """``metadata.name`` / ``metadata.namespace`` (and a few Event fields), ``=``, ``==``, ``!=``."""
    allowed = FIELD_PATHS | (EVENT_FIELD_PATHS if plural == "events" else set())
    checks: list[Callable[[JSON], bool]] = []
    for part in _split_top(expr):
        m = re.match(r"^\s*([\w.]+)\s*(==|!=|=)\s*(\S*)\s*$", part)
        if not m or m[1] not in allowed:
            raise ApiError(400, f'field label not supported: "{part.strip()}"')
        path, op, want = m[1], m[2], m[3]

        def check(obj: JSON, path: str = path, op: str = op, want: str = want) -> bool:
            cur: Any = obj
            for seg in path.split("."):
                cur = cur.get(seg) if isinstance(cur, dict) else None
            got = "" if cur is None else str(cur)
            return got != want if op == "!=" else got == want

        checks.append(check)
    return lambda obj: all(c(obj) for c in checks)


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


@dataclass
class Emulator:
    """State, behaviour and test helpers. ``start()`` serves it over HTTP on 127.0.0.1:<free port>."""

    store: dict[Key, JSON] = field(default_factory=dict)
    rv: int = 0
    log: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)
    denials: list[Denial] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    url: str = ""
    history_size: int = HISTORY_SIZE
    """Events kept for watches; a watch from before them gets 410 Expired."""
    bookmark_interval_s: float = BOOKMARK_INTERVAL_S
    watch_timeout_s: float = 1800.0
    """A watch without ``timeoutSeconds`` ends after this long (the apiserver picks 30-60 min)."""
    history: deque[Change] = field(default_factory=deque)
    history_floor: int = 0
    """Watches can resume from any resourceVersion >= this one (older events were dropped)."""
    epoch: int = 0
    """Bumped by ``break_watches``/``reset``/``stop``: open streams drop."""
    _server: ThreadingHTTPServer | None = None
    _changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self.lock)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Emulator:
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def setup(self) -> None:
                super().setup()
                # headers and body go out as two writes: without NODELAY, Nagle + delayed ACK add ~40 ms each
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, body = emu.handle(self.command, self.path, self.headers.get("Content-Type"), raw)
                if isinstance(body, WatchStream):
                    self._stream(body)
                    return
                data = json.dumps(body).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout test): nothing to answer

            def _stream(self, stream: WatchStream) -> None:
                """Chunked newline-delimited JSON; a dropped stream ends without the closing chunk."""
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for event in stream.events():
                        if event is None:
                            self.close_connection = True
                            return
                        line = json.dumps(event).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True  # the client stopped watching

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="kube-emulator", daemon=True).start()
        return self

    def write_kubeconfig(self, path: Path, token: str = "emulator-token") -> Path:
        """A kubeconfig whose one context ('emu') points at this emulator, for the real client."""
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: emu\n"
            f"clusters: [{{name: emu, cluster: {{server: '{self.url}'}}}}]\n"
            f"users: [{{name: emu, user: {{token: {token}}}}}]\n"
            "contexts: [{name: emu, context: {cluster: emu, user: emu}}]\n"
        )
        return path

    def stop(self) -> None:
        self.break_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---------------------------------------------------------------- test helpers
    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        body: JSON | None = None,
        delay_s: float = 0.0,
        watch: bool | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` before touching any state.
        ``watch``: True only watch requests, False only the others, None both."""
        with self.lock:
            self.faults.append(
                Fault(method.upper(), re.compile(path_regex), status, times, body, delay_s, watch)
            )

    def break_watches(self) -> None:
        """Drop every open watch stream mid-way, as a lost connection does."""
        with self._changed:
            self.epoch += 1
            self._changed.notify_all()

    def compact(self) -> None:
        """Forget the event history (etcd compaction): a watch from any earlier rv gets 410 Expired."""
        with self._changed:
            self.history.clear()
            self.history_floor = self.rv
            self._changed.notify_all()

    def watches(self) -> list[Request]:
        """Logged watch requests."""
        return [r for r in self.requests("GET") if _is_watch(r.query)]

    def on(self, method: str, path_regex: str, fn: Callable[[Emulator], object], times: int = 1) -> None:
        """Run ``fn(emu)`` before the next ``times`` matching requests are handled (a concurrent writer)."""
        with self.lock:
            self.hooks.append(Hook(method.upper(), re.compile(path_regex), fn, times))

    def deny(
        self, verb: str, group: str, resource: str, namespace: str | None = None, subresource: str = ""
    ) -> None:
        """RBAC: forbid ``verb`` on ``group/resource[/subresource]`` (in ``namespace``, or everywhere)."""
        with self.lock:
            self.denials.append(Denial(verb, group, resource, namespace, subresource))

    def seed(self, obj: JSON, plural: str | None = None) -> JSON:
        """Store ``obj`` as if created (uid, rv, timestamps). Plural defaults from the kind."""
        obj = copy.deepcopy(obj)
        obj.get("metadata", {}).pop("resourceVersion", None)
        group, version = _split_api_version(obj["apiVersion"])
        plural = plural or self._plural_for(group, obj["kind"])
        ns = obj.get("metadata", {}).get("namespace")
        with self.lock:
            route = self._resolve(Route(group, version, ns, plural, obj["metadata"]["name"], None))
            return copy.deepcopy(self._create(route, obj, dry_run=False))

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> JSON | None:
        group, version = _split_api_version(api_version)
        with self.lock:
            obj = self.store.get((group, version, plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def bump(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> str:
        """A concurrent writer touched the object: new resourceVersion, same content."""
        group, version = _split_api_version(api_version)
        with self.lock:
            key = (group, version, plural, namespace, name)
            obj = self.store[key]
            prev = copy.deepcopy(obj)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record("MODIFIED", key, obj, prev)
            return str(self.rv)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Logged requests, optionally filtered by method and a path regex."""
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path))
            ]

    def writes(self) -> list[Request]:
        return [r for r in self.requests() if r.method != "GET"]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    def reset(self) -> None:
        with self.lock:
            self.store.clear()
            self.log.clear()
            self.faults.clear()
            self.hooks.clear()
            self.denials.clear()
            self.rv = 0
            self.history.clear()
            self.history_floor = 0
            self.history_size, self.bookmark_interval_s = HISTORY_SIZE, BOOKMARK_INTERVAL_S
            self.epoch += 1
            self._changed.notify_all()

    # ---------------------------------------------------------------- request handling
    def handle(self, method: str, raw_path: str, content_type: str | None, raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        ctype = (content_type or "").split(";")[0].strip() or None
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        with self.lock:
            self.log.append(Request(method, path, query, ctype, copy.deepcopy(body)))
            fault = self._take_fault(method, path, _is_watch(query))
            hooks = self._take_hooks(method, path)
        if fault is not None:
            if fault.delay_s:
                threading.Event().wait(fault.delay_s)
            err = ApiError(fault.status, f"injected fault {fault.status}")
            return fault.status, fault.body if fault.body is not None else err.status()
        for hook in hooks:
            hook.fn(self)
        try:
            with self.lock:
                return self._dispatch(method, path, query, ctype, body)
        except ApiError as e:
            return e.code, e.status()

    def _take_fault(self, method: str, path: str, watch: bool) -> Fault | None:
        for f in self.faults:
            if (
                f.method == method
                and f.path.search(path)
                and f.times > 0
                and (f.watch is None or f.watch == watch)
            ):
                f.times -= 1
                return f
        return None

    def _take_hooks(self, method: str, path: str) -> list[Hook]:
        due = []
        for h in self.hooks:
            if h.method == method and h.path.search(path) and h.times > 0:
                h.times -= 1
                due.append(h)
        return due

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], ctype: str | None, body: Any
    ) -> tuple[int, Any]:
        m = ROUTE.match(path)
        if not m:
            raise ApiError(404, "the server could not find the requested resource")
        route = self._resolve(
            Route(m["g"] or "", m["v"] or m["cv"], m["ns"], m["plural"], m["name"], m["sub"])
        )
        if _is_watch(query):
            if method != "GET" or route.name is not None or route.sub is not None:
                raise ApiError(405, "watch a collection (narrow it with fieldSelector=metadata.name=...)")
            self._authorize("watch", route)
            return 200, self._open_watch(route, query)
        dry = query.get("dryRun")
        if dry is not None and dry != "All":
            raise ApiError(400, f"unsupported dry run value: {dry!r} (valid: All)")
        dry_run = dry == "All"
        verb = ("list" if route.name is None else "get") if method == "GET" else VERBS.get(method, "")
        if not verb:
            raise ApiError(405, f"method {method} not allowed")
        if route.plural == "selfsubjectaccessreviews":
            if method != "POST":
                raise ApiError(405, "selfsubjectaccessreviews only accept create")
            return 201, self._review(body)
        self._authorize(verb, route)

        scale_ok = route.sub == "scale" and (route.group, route.plural) in SCALABLE
        if route.sub is not None and not scale_ok and route.sub != "status":
            raise ApiError(404, f"subresource {route.sub!r} not found on {route.plural}")
        if method == "GET":
            return 200, self._read(route, query)
        if method == "POST":
            if route.name is not None:
                raise ApiError(405, "POST must target a collection")
            if not isinstance(body, dict):
                raise ApiError(400, "request body must be a JSON object")
            return 201, self._create(route, body, dry_run)
        if route.name is None:
            raise ApiError(405, f"{method} must target a named object")
        if method == "DELETE":
            return 200, self._delete(route, dry_run)
        current = self._stored(route)
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "request body must be a JSON object")
            return 200, self._write(route, current, lambda _view: copy.deepcopy(body), dry_run)
        return 200, self._write(route, current, lambda view: _apply_patch(ctype, view, body), dry_run)

    def _resolve(self, route: Route) -> Route:
        """Fill in kind/scope, or 404 as a server without that resource (e.g. no KEDA CRD) would."""
        builtin = BUILTIN.get((route.group, route.plural))
        if builtin is not None:
            route.kind, route.namespaced = builtin
        else:
            crd = self._crd_for(route.group, route.version, route.plural)
            if crd is None:
                raise ApiError(404, "the server could not find the requested resource")
            route.kind = crd["spec"]["names"]["kind"]
            route.namespaced = crd["spec"].get("scope", "Namespaced") == "Namespaced"
        if not route.namespaced and route.namespace is not None:
            raise ApiError(404, f"{route.plural} is cluster-scoped; no namespaced path exists")
        if route.namespaced and route.name is not None and route.namespace is None:
            raise ApiError(404, f"{route.plural} is namespaced; the path needs /namespaces/<ns>")
        return route

    def _crd_for(self, group: str, version: str, plural: str) -> JSON | None:
        for (g, _v, p, _ns, _n), crd in self.store.items():
            if g != "apiextensions.k8s.io" or p != "customresourcedefinitions":
                continue
            spec = crd.get("spec", {})
            served = {v.get("name") for v in spec.get("versions", []) if v.get("served", True)}
            if (
                spec.get("group") == group
                and spec.get("names", {}).get("plural") == plural
                and version in served
            ):
                return crd
        return None

    def _plural_for(self, group: str, kind: str) -> str:
        for (g, plural), (k, _scope) in BUILTIN.items():
            if g == group and k == kind:
                return plural
        for (g, _v, p, _ns, _n), crd in self.store.items():
            if g == "apiextensions.k8s.io" and p == "customresourcedefinitions":
                spec = crd.get("spec", {})
                if spec.get("group") == group and spec.get("names", {}).get("kind") == kind:
                    return str(spec["names"]["plural"])
        raise KeyError(f"no resource of kind {kind} in group {group!r}; install its CRD first")

    def _authorize(self, verb: str, route: Route) -> None:
        sub = route.sub or ""
        for d in self.denials:
            if (
                d.verb in (verb, "*")
                and d.group == route.group
                and d.resource == route.plural
                and d.subresource == sub
                and (d.namespace is None or d.namespace == route.namespace)
            ):
                resource = route.plural + (f"/{sub}" if sub else "")
                target = f"{route.plural}.{route.group}" if route.group else route.plural
                where = (
                    f' in the namespace "{route.namespace}"' if route.namespace else " at the cluster scope"
                )
                named = f' "{route.name}"' if route.name else ""
                raise ApiError(
                    403,
                    f'{target}{named} is forbidden: User "{SERVICE_ACCOUNT}" cannot {verb} resource '
                    f'"{resource}" in API group "{route.group}"{where}',
                    details={"name": route.name or "", "group": route.group, "kind": route.plural},
                )

    def _review(self, body: Any) -> JSON:
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise ApiError(400, "SelfSubjectAccessReview needs a spec")
        attrs = body["spec"].get("resourceAttributes") or {}
        verb, group, resource = attrs.get("verb", ""), attrs.get("group", ""), attrs.get("resource", "")
        ns, sub = attrs.get("namespace") or None, attrs.get("subresource", "")
        denied = any(
            d.verb in (verb, "*")
            and d.group == group
            and d.resource == resource
            and d.subresource == sub
            and (d.namespace is None or ns is None or d.namespace == ns)
            for d in self.denials
        )
        out = copy.deepcopy(body)
        out.setdefault("apiVersion", "authorization.k8s.io/v1")
        out.setdefault("kind", "SelfSubjectAccessReview")
        out.setdefault("metadata", {})
        out["status"] = {"allowed": not denied}
        if denied:
            out["status"]["reason"] = "denied by the emulator's deny-list"
        return out

    # ---------------------------------------------------------------- store operations
    def _key(self, route: Route, name: str | None = None) -> Key:
        return (route.group, route.version, route.plural, route.namespace, name or route.name or "")

    def _stored(self, route: Route) -> JSON:
        obj = self.store.get(self._key(route))
        if obj is None:
            resource = f"{route.plural}.{route.group}" if route.group else route.plural
            raise ApiError(
                404,
                f'{resource} "{route.name}" not found',
                details={"name": route.name, "group": route.group, "kind": route.plural},
            )
        return obj

    def _read(self, route: Route, query: dict[str, str]) -> JSON:
        if route.name is not None:
            obj = self._stored(route)
            return _scale_view(route, obj) if route.sub == "scale" else copy.deepcopy(obj)
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), route.plural)
        items = [
            copy.deepcopy(obj)
            for (g, v, p, ns, _n), obj in sorted(
                self.store.items(), key=lambda kv: tuple(str(x) for x in kv[0])
            )
            if (g, v, p) == (route.group, route.version, route.plural)
            and (route.namespace is None or ns == route.namespace)
            and labels(obj.get("metadata", {}).get("labels") or {})
            and fields(obj)
        ]
        return {
            "kind": f"{route.kind}List",
            "apiVersion": route.api_version,
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def _create(self, route: Route, body: JSON, dry_run: bool) -> JSON:
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(422, f"{route.kind}.{route.group} is invalid: metadata.name: Required value")
        if route.namespaced:
            if meta.get("namespace") not in (None, route.namespace):
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = route.namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(422, "resourceVersion should not be set on objects to be created")
        key = self._key(route, meta["name"])
        if key in self.store:
            resource = f"{route.plural}.{route.group}" if route.group else route.plural
            raise ApiError(
                409,
                f'{resource} "{meta["name"]}" already exists',
                reason="AlreadyExists",
                details={"name": meta["name"], "group": route.group, "kind": route.plural},
            )
        body["apiVersion"] = route.api_version
        body["kind"] = route.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["generation"] = 1
        meta["resourceVersion"] = str(self.rv + 1)
        if not dry_run:
            self.rv += 1
            self.store[key] = copy.deepcopy(body)
            self._record("ADDED", key, body, None)
        return body

    def _write(self, route: Route, current: JSON, change: Callable[[JSON], Any], dry_run: bool) -> JSON:
        """PUT/PATCH on a deep copy; the result's rv must match the stored one (optimistic concurrency)."""
        view = _scale_view(route, current) if route.sub == "scale" else copy.deepcopy(current)
        new = change(view)
        if not isinstance(new, dict):
            raise ApiError(422, "the patched object is not a JSON object")
        new_meta: JSON = new["metadata"] if isinstance(new.get("metadata"), dict) else {}
        sent_rv = new_meta.get("resourceVersion")
        stored_rv = current["metadata"]["resourceVersion"]
        if sent_rv not in (None, "") and str(sent_rv) != stored_rv:
            resource = f"{route.plural}.{route.group}" if route.group else route.plural
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {resource} "{route.name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                details={"name": route.name, "group": route.group, "kind": route.plural},
            )
        if new_meta.get("name") not in (None, route.name):
            raise ApiError(400, "the name of the object does not match the name on the URL")
        if route.sub == "scale":
            result = copy.deepcopy(current)
            replicas = (new.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(
                    422, f"Scale.autoscaling is invalid: spec.replicas: Invalid value: {replicas!r}"
                )
            result.setdefault("spec", {})["replicas"] = replicas
        elif route.sub == "status":
            result = copy.deepcopy(current)
            result["status"] = new.get("status")
        else:
            # status is owned by the status subresource: writes to the main resource leave it as stored
            result = new
            result.pop("status", None)
            if "status" in current:
                result["status"] = copy.deepcopy(current["status"])
        meta = result.setdefault("metadata", {})
        for immutable in ("uid", "creationTimestamp", "namespace"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
        meta["name"] = route.name
        result["apiVersion"], result["kind"] = route.api_version, route.kind
        generation = int(current["metadata"].get("generation", 1))
        meta["generation"] = generation + 1 if result.get("spec") != current.get("spec") else generation
        meta["resourceVersion"] = str(self.rv + 1)
        if not dry_run:
            self.rv += 1
            self.store[self._key(route)] = copy.deepcopy(result)
            self._record("MODIFIED", self._key(route), result, current)
        return _scale_view(route, result) if route.sub == "scale" else copy.deepcopy(result)

    def _record(self, kind: str, key: Key, obj: JSON, prev: JSON | None) -> None:
        """Append one persisted write (at ``self.rv``) to the bounded history and wake the watchers."""
        if len(self.history) >= self.history_size:
            self.history_floor = self.history.popleft().rv
        self.history.append(Change(self.rv, kind, key, copy.deepcopy(obj), prev))
        self._changed.notify_all()

    def _open_watch(self, route: Route, query: dict[str, str]) -> WatchStream:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), route.plural)
        gvp = (route.group, route.version, route.plural)

        def matches(key: Key, obj: JSON) -> bool:
            return (
                key[:3] == gvp
                and (route.namespace is None or key[3] == route.namespace)
                and labels(obj.get("metadata", {}).get("labels") or {})
                and fields(obj)
            )

        timeout = query.get("timeoutSeconds")
        try:
            seconds = float(timeout) if timeout else self.watch_timeout_s
        except ValueError:
            raise ApiError(400, f"invalid timeoutSeconds {timeout!r}") from None
        raw_rv = query.get("resourceVersion", "")
        stream = WatchStream(
            self,
            route,
            matches,
            cursor=self.rv,
            deadline=time.monotonic() + seconds,
            bookmarks=query.get("allowWatchBookmarks") in ("true", "1"),
            epoch=self.epoch,
        )
        if raw_rv in ("", "0"):  # "get state and start at most recent": the current objects, as ADDED
            stream.initial = [
                {"type": "ADDED", "object": copy.deepcopy(obj)}
                for key, obj in sorted(self.store.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
                if matches(key, obj)
            ]
            return stream
        if not raw_rv.isdigit():
            raise ApiError(400, f"invalid resource version {raw_rv!r}")
        stream.cursor = int(raw_rv)
        if stream.cursor < self.history_floor:
            stream.initial = [{"type": "ERROR", "object": _expired(stream.cursor, self.history_floor)}]
        return stream

    def _delete(self, route: Route, dry_run: bool) -> JSON:
        obj = self._stored(route)
        if not dry_run:
            self.rv += 1
            del self.store[self._key(route)]
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._record("DELETED", self._key(route), gone, None)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": route.name,
                "group": route.group,
                "kind": route.plural,
                "uid": obj["metadata"]["uid"],
            },
        }


def _is_watch(query: dict[str, str]) -> bool:
    return query.get("watch", "") not in ("", "false", "0")


def _expired(rv: int, oldest: int) -> JSON:
    return ApiError(410, f"too old resource version: {rv} ({oldest})", reason="Expired").status()


@dataclass
class WatchStream:
    """One open watch: what it matches, where it is in the history, when it ends."""

    emu: Emulator
    route: Route
    matches: Callable[[Key, JSON], bool]
    cursor: int
    deadline: float
    bookmarks: bool
    epoch: int
    initial: list[JSON] = field(default_factory=list)

    def _event(self, change: Change) -> JSON | None:
        """The event this watcher sees for one change (selectors can turn MODIFIED into ADDED/DELETED)."""
        now_ok = self.matches(change.key, change.obj)
        if change.type == "MODIFIED":
            was_ok = change.prev is not None and self.matches(change.key, change.prev)
            kind = {(True, True): "MODIFIED", (False, True): "ADDED", (True, False): "DELETED"}.get(
                (was_ok, now_ok)
            )
        else:
            kind = change.type if now_ok else None
        return None if kind is None else {"type": kind, "object": copy.deepcopy(change.obj)}

    def _bookmark(self) -> JSON:
        return {
            "type": "BOOKMARK",
            "object": {
                "kind": self.route.kind,
                "apiVersion": self.route.api_version,
                "metadata": {"resourceVersion": str(self.cursor)},
            },
        }

    def events(self) -> Iterator[JSON | None]:
        """Events until the deadline (then the stream ends); ``None`` means drop the connection."""
        emu = self.emu
        yield from self.initial
        if any(e["type"] == "ERROR" for e in self.initial):
            return
        last_sent = time.monotonic()
        while True:
            out: list[JSON] = []
            drop = expired = False
            with emu._changed:
                if self.epoch != emu.epoch:
                    drop = True
                elif self.cursor < emu.history_floor:
                    expired = True  # fell behind the history window
                else:
                    for change in emu.history:
                        if change.rv > self.cursor:
                            event = self._event(change)
                            if event is not None:
                                out.append(event)
                            self.cursor = change.rv
                    self.cursor = max(self.cursor, emu.rv)
                    now = time.monotonic()
                    if not out and now < self.deadline:
                        next_mark = last_sent + emu.bookmark_interval_s if self.bookmarks else self.deadline
                        wait = min(self.deadline, next_mark) - now
                        if wait > 0:
                            emu._changed.wait(wait)
                            continue
            if drop:
                yield None
                return
            if expired:
                yield {"type": "ERROR", "object": _expired(self.cursor, emu.history_floor)}
                return
            now = time.monotonic()
            if out:
                yield from out
                last_sent = now
            elif self.bookmarks and (now >= self.deadline or now - last_sent >= emu.bookmark_interval_s):
                yield self._bookmark()
                last_sent = now
            if now >= self.deadline:
                return


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _apply_patch(ctype: str | None, view: JSON, body: Any) -> Any:
    if ctype == "application/json-patch+json":
        if not isinstance(body, list):
            raise ApiError(400, "json patch must be a list of operations")
        try:
            return jsonpatch.apply_patch(view, body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise ApiError(422, f"the server rejected our request due to an error in our request: {e}") from e
    if ctype == "application/merge-patch+json":
        return merge_patch(view, body)
    if ctype == "application/strategic-merge-patch+json":
        return strategic_merge_patch(view, body)
    if ctype == "application/apply-patch+yaml":
        raise ApiError(415, "server-side apply is not emulated")
    raise ApiError(415, f"the body of the request was in an unknown format: {ctype}")


def _scale_view(route: Route, obj: JSON) -> JSON:
    """The autoscaling/v1 Scale the API server derives from a Deployment/StatefulSet/ReplicaSet."""
    meta = obj["metadata"]
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(match.items())),
        },
    }
