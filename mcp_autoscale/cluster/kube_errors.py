"""Kubernetes API failures -> the project's errors, with messages a model or a person can act on.

A 403 names the verb, the resource (group/resource), the namespace and the RBAC rule that would allow it; a
404 names the object; a 422 carries the server's own message. Connection failures and timeouts become
``BackendUnavailable``. No message ever includes credentials or request headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from mcp_autoscale.errors import (
    AutoscaleError,
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from mcp_autoscale.metrics import kube_api_error

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,  # MaxRetryError, timeouts, protocol errors, NewConnectionError
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class Target:
    """What a request was about, for messages: verb, API group, resource (with /subresource), object."""

    verb: str
    group: str
    resource: str
    kind: str
    name: str | None = None
    namespace: str | None = None

    @property
    def object(self) -> str:
        where = (
            f"{self.namespace}/{self.name}"
            if self.namespace and self.name
            else (self.name or self.namespace or "")
        )
        return f"{self.kind} {where}".strip()

    @property
    def group_resource(self) -> str:
        return f"{self.group or 'core'}/{self.resource}"


def server_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status body, or the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return str(exc.reason or f"HTTP {exc.status}")


def rbac_rule(target: Target) -> str:
    """The YAML rule (for a ClusterRole, or a Role in the namespace) that allows the request."""
    group = f'"{target.group}"' if target.group else '""'
    scope = (
        f"a Role in namespace {target.namespace} (or the ClusterRole)"
        if target.namespace
        else "the ClusterRole (cluster-scoped resource)"
    )
    return (
        f"Add to {scope} bound to the server's ServiceAccount:\n"
        f"- apiGroups: [{group}]\n"
        f'  resources: ["{target.resource}"]\n'
        f'  verbs: ["{target.verb}"]'
    )


def map_api_error(exc: ApiException, target: Target, attempts: int = 1) -> AutoscaleError:
    status = exc.status or 0
    kube_api_error(status)
    msg = server_message(exc)
    if status == 403:
        where = f"in namespace {target.namespace}" if target.namespace else "at cluster scope"
        return Forbidden(
            f"RBAC denied '{target.verb}' on {target.group_resource} {where} ({target.object}): {msg}\n"
            + rbac_rule(target)
        )
    if status == 401:
        return Forbidden(
            "the Kubernetes API rejected the credentials (401 Unauthorized); check the kubeconfig"
        )
    if status == 404:
        if target.verb == "create":  # the collection is missing: namespace or resource type
            return NotFound(f"cannot create {target.object}: {msg}")
        return NotFound(f"{target.object} not found")
    if status == 409:
        return Conflict(
            f"{target.object} was modified concurrently; gave up after {attempts} attempt(s) "
            f"(HTTP 409: {msg})"
        )
    if status in (400, 422):
        return InvalidInput(f"the API server rejected {target.verb} of {target.object}: {msg}")
    if status == 0 or status == 429 or status >= 500:
        return BackendUnavailable(
            f"Kubernetes API unavailable during {target.verb} of {target.object}: {msg}"
        )
    return AutoscaleError(f"{target.verb} of {target.object} failed (HTTP {status}): {msg}")


def map_transport_error(exc: BaseException, target: Target, timeout_s: float) -> BackendUnavailable:
    kube_api_error("transport")
    kind = type(exc).__name__
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        kind = type(exc.reason).__name__
    return BackendUnavailable(
        f"Kubernetes API unreachable during {target.verb} of {target.object} "
        f"({kind}; timeout {timeout_s:g} s)"
    )
