"""``doctor``: is this installation ready to serve? Each check returns rows of pass / warn / fail.

Only the checks that matter for the chosen backend run: on the simulator, Python dependencies, the policy
and the audit file (and Prometheus when one is given); on Kubernetes, also credentials, every RBAC
permission the backend needs (one SelfSubjectAccessReview each) and the KEDA / Karpenter CRDs. Checks never
raise: a failure is a FAIL row whose detail says what to fix. Nothing here writes to the cluster or to the
audit log (writability is probed with a temporary file next to it).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import tempfile
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, Field

from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.models import ActionKind, AutoscalerKind, PoolState
from mcp_autoscale.policy import Policy

DISTRIBUTION = "mcp-autoscale"
CHECKED_PACKAGES: dict[str, str] = {
    "mcp": "mcp",
    "kubernetes": "kubernetes",
    "httpx": "httpx",
    "pydantic": "pydantic",
    "prometheus-api-client": "prometheus_api_client",
    "structlog": "structlog",
}
"""Distribution -> import name. Minimum versions come from this package's own metadata (pyproject)."""
FALLBACK_SPECS: dict[str, str] = {"mcp": ">=2.3,<3", "pydantic": ">=2.7,<3"}
KEDA_CRD = "scaledobjects.keda.sh"
NODEPOOL_CRD = "nodepools.karpenter.sh"
CRD_HINTS = {KEDA_CRD: "install KEDA", NODEPOOL_CRD: "install Karpenter v1"}
CRD_UNUSED = {
    KEDA_CRD: "not installed; nothing here relies on it (no pool is KEDA-managed)",
    NODEPOOL_CRD: "not installed; nothing here relies on it (no pool names a NodePool, the policy "
    "allows no request_gpu_nodes)",
    "nodeclaims.karpenter.sh": "not installed: node counts fall back to NodePool status",
}
"""A missing CRD is a warning unless a pool or the policy relies on it (then a FAIL, see ``crd_dependents``)."""


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Check(BaseModel):
    group: str = Field(description="deps | policy | audit | runbooks | prometheus | kubernetes | rbac | crds")
    name: str
    status: Status
    detail: str


class DoctorReport(BaseModel):
    backend: str
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for c in self.checks if c.status is s) for s in Status}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------------
# Python dependencies
# --------------------------------------------------------------------------------------------------


def declared_specs() -> dict[str, str]:
    """Version specifiers this package declares for the checked dependencies (from installed metadata)."""
    specs = dict(FALLBACK_SPECS)
    try:
        for line in md.requires(DISTRIBUTION) or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None and req.name in CHECKED_PACKAGES:
                specs[req.name] = str(req.specifier)
    except md.PackageNotFoundError:
        pass
    return specs


def check_dependencies(
    packages: dict[str, str] | None = None, specs: dict[str, str] | None = None
) -> list[Check]:
    """Each dependency importable, with its version inside the declared range."""
    packages = packages if packages is not None else CHECKED_PACKAGES
    specs = specs if specs is not None else declared_specs()
    out: list[Check] = []
    for dist, module in packages.items():
        spec = specs.get(dist, "")
        try:
            importlib.import_module(module)
            version = md.version(dist)
        except (ImportError, md.PackageNotFoundError) as err:
            out.append(Check(group="deps", name=dist, status=Status.FAIL, detail=f"not importable: {err}"))
            continue
        try:
            req = Requirement(f"{dist}{spec}")
            ok = req.specifier.contains(version, prereleases=True)
        except InvalidRequirement:
            ok = True
        if ok:
            out.append(
                Check(group="deps", name=dist, status=Status.PASS, detail=f"{version} ({spec or 'any'})")
            )
        else:
            detail = f"{version} installed, {spec} required: pip install '{dist}{spec}'"
            out.append(Check(group="deps", name=dist, status=Status.FAIL, detail=detail))
    return out


# --------------------------------------------------------------------------------------------------
# Policy and audit
# --------------------------------------------------------------------------------------------------


def check_policy(settings: Settings) -> list[Check]:
    """The policy the server would load: the file given, or the backend's built-in default."""
    from mcp_autoscale.policy import builtin_policy, default_policy_name, load_policy

    try:
        if settings.policy_file is not None:
            policy = load_policy(Path(settings.policy_file))
            source = str(settings.policy_file)
        else:
            name = default_policy_name(settings.backend, settings.sim_scenario)
            policy = builtin_policy(name)
            source = f"builtin:{name}"
    except AutoscaleError as err:
        return [Check(group="policy", name="policy", status=Status.FAIL, detail=str(err))]
    except OSError as err:
        return [
            Check(group="policy", name="policy", status=Status.FAIL, detail=f"{settings.policy_file}: {err}")
        ]
    rules = len(policy.rules)
    detail = f"{source}: valid, {rules} rule{'s' if rules != 1 else ''}"
    status = Status.PASS
    if rules == 0:
        detail += " (read-only: every mutating call will be denied)"
        status = (
            Status.WARN if settings.policy_file is None and settings.backend == "kubernetes" else Status.PASS
        )
    return [Check(group="policy", name="policy", status=status, detail=detail)]


def check_runbooks(settings: Settings) -> list[Check]:
    """The shipped runbooks and the team's folder (``--runbooks``) parse, as the server will load them."""
    from mcp_autoscale.runbooks import default_runbooks, load_runbooks

    try:
        shipped = {r.slug for r in default_runbooks()}
        team = {r.slug for r in load_runbooks(settings.runbooks_dir)} if settings.runbooks_dir else set()
    except AutoscaleError as err:
        return [Check(group="runbooks", name="runbooks", status=Status.FAIL, detail=_first_line(err))]
    detail = f"{len(shipped | team)} runbooks ({len(shipped)} shipped"
    if settings.runbooks_dir is not None:
        detail += f"; {settings.runbooks_dir}: {len(team - shipped)} added, {len(team & shipped)} replaced"
    return [Check(group="runbooks", name="runbooks", status=Status.PASS, detail=detail + ")")]


def _writable_dir(directory: Path) -> str | None:
    """None when a file can be created in ``directory`` (created if missing), else why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-", delete=True):
            pass
    except OSError as err:
        return f"{directory}: {err.strerror or _first_line(err)}"
    return None


def check_state(settings: Settings) -> list[Check]:
    """The shared state database: reachable, schema at this server's version, chain head (and intact)."""
    from mcp_autoscale.audit.verify import verify_records
    from mcp_autoscale.state import hmac_key_of, open_store

    try:
        store = open_store(settings)
    except AutoscaleError as err:
        return [Check(group="state", name="connection", status=Status.FAIL, detail=_first_line(err))]
    try:
        rows = [
            Check(group="state", name=c.name, status=Status.PASS if c.ok else Status.FAIL, detail=c.detail)
            for c in store.checks()
        ]
        if all(c.ok for c in store.checks()):
            with store.snapshot() as (head, lines):
                report = verify_records(((x[:-1], True) for x in lines), hmac_key_of(settings), marker=head)
            status = Status.PASS if report.ok else Status.FAIL
            if report.ok and report.signatures_unchecked:
                status = Status.WARN
            rows.append(
                Check(group="state", name="chain", status=status, detail=report.summary(store.audit.where))
            )
    except AutoscaleError as err:
        rows = [Check(group="state", name="connection", status=Status.FAIL, detail=_first_line(err))]
    finally:
        store.close()
    return rows


def check_audit(settings: Settings) -> list[Check]:
    """The audit log's directory is writable, the file (if any) appendable, and its hash chain intact."""
    from mcp_autoscale.audit import verify_file

    if settings.state_url is not None:
        return check_state(settings)

    path = Path(settings.resolved_audit_file)
    problem = _writable_dir(path.parent)
    if problem is None and path.exists():
        try:
            with path.open("ab"):
                pass
        except OSError as err:
            problem = f"{path}: {err.strerror or _first_line(err)}"
    if problem is not None:
        return [
            Check(
                group="audit",
                name="writable",
                status=Status.FAIL,
                detail=f"cannot write the audit log: {problem}",
            )
        ]
    rows = [Check(group="audit", name="writable", status=Status.PASS, detail=str(path))]
    if not path.exists():
        rows.append(
            Check(group="audit", name="chain", status=Status.PASS, detail="new log (created on first record)")
        )
        return rows
    key = settings.audit_hmac_key.get_secret_value().encode() if settings.audit_hmac_key else None
    try:
        report = verify_file(path, hmac_key=key)
    except (AutoscaleError, OSError) as err:
        rows.append(Check(group="audit", name="chain", status=Status.FAIL, detail=_first_line(err)))
        return rows
    status = Status.PASS if report.ok else Status.FAIL
    if report.ok and report.signatures_unchecked:
        status = Status.WARN
    rows.append(Check(group="audit", name="chain", status=status, detail=report.summary(path)))
    return rows


# --------------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------------


def _prometheus_get(settings: Settings, path: str, params: dict[str, str] | None = None) -> Any:
    import requests

    headers = {}
    if settings.prometheus_token is not None:
        headers["Authorization"] = f"Bearer {settings.prometheus_token.get_secret_value()}"
    auth = None
    if settings.prometheus_username:
        pw = settings.prometheus_password.get_secret_value() if settings.prometheus_password else ""
        auth = (settings.prometheus_username, pw)
    verify: bool | str = str(settings.prometheus_ca_file) if settings.prometheus_ca_file else True
    url = str(settings.prometheus_url).rstrip("/") + path
    timeout = settings.prometheus_timeout_s
    return requests.get(
        url, params=params, headers=headers, auth=auth, verify=verify, timeout=(timeout, timeout)
    )


def dialects_seen(series_names: Iterable[str]) -> list[str]:
    """Every known engine dialect whose marker series are all present (several engines may coexist)."""
    from mcp_autoscale.signals.dialects import DIALECTS

    present = set(series_names)
    return [name for name, d in DIALECTS.items() if all(m in present for m in d.markers)]


def check_prometheus(settings: Settings) -> list[Check]:
    """Prometheus answers ``/-/ready`` and which engine metric dialects it has series for."""
    import requests

    from mcp_autoscale.signals.dialects import marker_names
    from mcp_autoscale.signals.promql import regex_any

    url = settings.prometheus_url
    try:
        resp = _prometheus_get(settings, "/-/ready")
    except requests.RequestException as err:
        cause = "connection refused" if "refused" in str(err).lower() else _first_line(err)
        return [Check(group="prometheus", name="reachable", status=Status.FAIL, detail=f"{url}: {cause}")]
    if resp.status_code != 200:
        detail = f"{url}/-/ready answered HTTP {resp.status_code}"
        if resp.status_code in (401, 403):
            detail += " (check MCP_AUTOSCALE_PROMETHEUS_TOKEN or username/password)"
        return [Check(group="prometheus", name="reachable", status=Status.FAIL, detail=detail)]
    rows = [Check(group="prometheus", name="reachable", status=Status.PASS, detail=f"{url} ready")]
    query = f"group by (__name__) ({{__name__=~{regex_any(marker_names())}}})"
    try:
        answer = _prometheus_get(settings, "/api/v1/query", {"query": query})
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise ValueError(body.get("error") or f"HTTP {answer.status_code}")
        names = {row["metric"].get("__name__", "") for row in body["data"]["result"]}
    except (requests.RequestException, ValueError, KeyError, TypeError) as err:
        rows.append(
            Check(group="prometheus", name="dialects", status=Status.FAIL, detail=f"query failed: {err}")
        )
        return rows
    seen = dialects_seen(names)
    if seen:
        rows.append(Check(group="prometheus", name="dialects", status=Status.PASS, detail=", ".join(seen)))
    else:
        detail = "no engine metrics found (vLLM, SGLang, TGI, Triton, Dynamo): is the fleet scraped?"
        rows.append(Check(group="prometheus", name="dialects", status=Status.WARN, detail=detail))
    if settings.prometheus_recording_rules and seen:
        rows.append(check_recording_rules(settings, seen))
    return rows


def check_recording_rules(settings: Settings, dialect_names: Iterable[str]) -> Check:
    """With ``prometheus_recording_rules`` on, the recorded series the source reads exist in Prometheus.

    None of them: the rules are not loaded (or use another window or pool label), and every recorded
    signal would come back missing. Some: a metric the fleet does not expose has nothing to record.
    """
    import requests

    from mcp_autoscale.signals.dialects import DIALECTS
    from mcp_autoscale.signals.promql import PoolGrouping, regex_any
    from mcp_autoscale.signals.rules import recording_rules

    grouping = PoolGrouping(settings.pool_label)
    wanted = {
        r["record"]
        for r in recording_rules([DIALECTS[n] for n in dialect_names], grouping, settings.rate_window)
    }
    fix = f"mcp-autoscale signals rules --window {settings.rate_window}"
    fix += f" --pool-label {settings.pool_label}" if settings.pool_label else ""
    query = f"group by (__name__) ({{__name__=~{regex_any(wanted)}}})"
    try:
        answer = _prometheus_get(settings, "/api/v1/query", {"query": query})
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise ValueError(body.get("error") or f"HTTP {answer.status_code}")
        present = {row["metric"].get("__name__", "") for row in body["data"]["result"]} & wanted
    except (requests.RequestException, ValueError, KeyError, TypeError) as err:
        return Check(
            group="prometheus", name="recording-rules", status=Status.FAIL, detail=f"query failed: {err}"
        )
    missing = sorted(wanted - present)
    if not present:
        detail = (
            f"none of the {len(wanted)} recorded series exist: load the rules of `{fix}` into Prometheus, "
            "or set MCP_AUTOSCALE_PROMETHEUS_RECORDING_RULES=false"
        )
        return Check(group="prometheus", name="recording-rules", status=Status.FAIL, detail=detail)
    if missing:
        detail = (
            f"{len(present)} of {len(wanted)} recorded series exist; absent: {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            + f" (a metric the fleet does not expose, or rules older than `{fix}`)"
        )
        return Check(group="prometheus", name="recording-rules", status=Status.WARN, detail=detail)
    return Check(
        group="prometheus",
        name="recording-rules",
        status=Status.PASS,
        detail=f"all {len(wanted)} recorded series present (window {settings.rate_window})",
    )


# --------------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------------


def _policy_or_none(settings: Settings) -> Policy | None:
    """The policy the server would load (``check_policy`` reports why when it cannot be loaded)."""
    from mcp_autoscale.app import resolve_policy

    try:
        return resolve_policy(settings)[0]
    except (AutoscaleError, OSError):
        return None


def crd_dependents(
    pools: Iterable[PoolState], policy: Policy | None, keda_hpas: Iterable[str] = ()
) -> dict[str, list[str]]:
    """Why each CRD is needed: pools it owns or places, HPAs KEDA manages, and what the policy allows.

    Pure. A CRD with no entry is optional here, so its absence is only a warning.
    """
    out: dict[str, list[str]] = {KEDA_CRD: [], NODEPOOL_CRD: []}
    for pool in pools:
        if pool.autoscaler is not None and pool.autoscaler.kind is AutoscalerKind.KEDA:
            out[KEDA_CRD].append(f"pool {pool.ref.key} is KEDA-managed")
        if pool.node_pool:
            out[NODEPOOL_CRD].append(f"pool {pool.ref.key} runs on NodePool {pool.node_pool}")
    out[KEDA_CRD] += [f"HPA {name} is managed by a KEDA ScaledObject" for name in keda_hpas]
    if policy is not None:
        if ActionKind.REQUEST_GPU_NODES in policy.tools:
            out[NODEPOOL_CRD].append(f"policy {policy.name!r} allows request_gpu_nodes")
        elif policy.node_pools:
            out[NODEPOOL_CRD].append(f"policy {policy.name!r} names node pools {policy.node_pools}")
    return {crd: reasons for crd, reasons in out.items() if reasons}


def check_kubernetes(settings: Settings, api_client: Any = None) -> list[Check]:
    """Credentials, every RBAC permission (SelfSubjectAccessReview), the CRDs, and the pools it can see."""
    from mcp_autoscale.cluster.kubernetes import REQUIRED_CRDS, REQUIRED_PERMISSIONS, KubernetesBackend

    try:
        backend = KubernetesBackend(settings, api_client=api_client)
    except AutoscaleError as err:
        return [Check(group="kubernetes", name="credentials", status=Status.FAIL, detail=str(err))]
    host = getattr(backend.api_client.configuration, "host", "?")
    rows = [Check(group="kubernetes", name="credentials", status=Status.PASS, detail=f"API server {host}")]
    try:
        perms = backend.check_permissions()
    except AutoscaleError as err:
        rows.append(Check(group="kubernetes", name="reachable", status=Status.FAIL, detail=_first_line(err)))
        return rows
    why = {(p.group, p.resource): p.why for p in REQUIRED_PERMISSIONS}
    for perm in perms:
        resource = f"{perm.resource}.{perm.group}" if perm.group else perm.resource
        where = f" in {perm.namespace}" if perm.namespace else " (cluster-wide)"
        name = f"{perm.verb} {resource}{where}"
        purpose = why.get((perm.group, perm.resource), "")
        if perm.allowed:
            rows.append(Check(group="rbac", name=name, status=Status.PASS, detail=purpose))
        else:
            detail = f"denied; needed for: {purpose}. Apply deploy/rbac (least-privilege ClusterRole)"
            rows.append(Check(group="rbac", name=name, status=Status.FAIL, detail=detail))
    pools_err: AutoscaleError | None = None
    try:
        pools = backend.list_pools()
        keda_hpas = backend.keda_managed_hpas()
    except AutoscaleError as err:
        pools, keda_hpas, pools_err = [], [], err
    try:
        crds = backend.installed_crds()
    except AutoscaleError as err:
        rows.append(Check(group="crds", name="crds", status=Status.FAIL, detail=_first_line(err)))
        crds = {}
    needed = crd_dependents(pools, _policy_or_none(settings), keda_hpas)
    for crd in REQUIRED_CRDS:
        if crd not in crds:
            continue
        if crds[crd]:
            rows.append(Check(group="crds", name=crd, status=Status.PASS, detail="installed"))
        elif needed.get(crd):
            because = "; ".join(needed[crd][:3]) + (" ..." if len(needed[crd]) > 3 else "")
            detail = f"not installed but relied on ({because}): {CRD_HINTS.get(crd, 'install it')}"
            rows.append(Check(group="crds", name=crd, status=Status.FAIL, detail=detail))
        else:
            rows.append(Check(group="crds", name=crd, status=Status.WARN, detail=CRD_UNUSED[crd]))
    if pools_err is not None:
        rows.append(
            Check(group="kubernetes", name="pools", status=Status.FAIL, detail=_first_line(pools_err))
        )
        return rows
    selector = settings.pool_selector
    if pools:
        names = ", ".join(p.ref.key for p in pools[:6]) + (" ..." if len(pools) > 6 else "")
        rows.append(
            Check(group="kubernetes", name="pools", status=Status.PASS, detail=f"{len(pools)}: {names}")
        )
    else:
        detail = f"no Deployments match the pool selector {selector!r}: label your model Deployments"
        rows.append(Check(group="kubernetes", name="pools", status=Status.WARN, detail=detail))
    return rows


# --------------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------------


def run_checks(settings: Settings, *, kube_api_client: Any = None) -> DoctorReport:
    """Every check relevant to ``settings.backend``, in reading order."""
    steps: list[Callable[[], list[Check]]] = [
        check_dependencies,
        lambda: check_policy(settings),
        lambda: check_audit(settings),
        lambda: check_runbooks(settings),
    ]
    if settings.prometheus_url:
        steps.append(lambda: check_prometheus(settings))
    elif settings.backend == "kubernetes":
        detail = "no --prometheus: signals come from scraping pods' /metrics directly"
        steps.append(
            lambda: [Check(group="prometheus", name="configured", status=Status.WARN, detail=detail)]
        )
    if settings.backend == "kubernetes":
        steps.append(lambda: check_kubernetes(settings, kube_api_client))
    checks: list[Check] = []
    for step in steps:
        checks.extend(step())
    return DoctorReport(backend=settings.backend, checks=checks)


def render_table(report: DoctorReport) -> str:
    """A plain-text table: readable in a terminal and in CI logs."""
    label = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL"}
    rows = [(label[c.status], c.group, c.name, c.detail) for c in report.checks]
    w0 = 6
    w1 = max([len("check"), *(len(r[1]) for r in rows)])
    w2 = max([len("item"), *(len(r[2]) for r in rows)])
    lines = [
        f"{'status':<{w0}}  {'check':<{w1}}  {'item':<{w2}}  detail",
        f"{'-' * w0}  {'-' * w1}  {'-' * w2}  ------",
    ]
    lines += [f"{s:<{w0}}  {g:<{w1}}  {n:<{w2}}  {d}" for s, g, n, d in rows]
    c = report.counts()
    verdict = "FAILED" if report.failed else "OK"
    tally = f"{c['pass']} passed, {c['warn']} warnings, {c['fail']} failed"
    lines.append(f"\n{verdict}: {tally} ({report.backend} backend)")
    return "\n".join(lines)
