"""Which GitOps controller (Argo CD, Flux) reconciles a Kubernetes object, from its labels and annotations.

Pure functions over plain JSON dicts, shared by the Kubernetes discovery (``kube_ownership``) and the gate.
Why it matters: a controller with self-heal reverts a direct patch within minutes, and one without it
leaves the cluster drifting from Git; either way the change belongs in Git.

What is read, most specific first:
- Argo CD annotation tracking: ``argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<ns>/<name>``; the
  app part is ``<namespace>_<app>`` for Applications outside Argo CD's own namespace.
- Argo CD label tracking with a custom key: ``argocd.argoproj.io/instance: <app>``.
- Argo CD's legacy default label ``app.kubernetes.io/instance``, but only when
  ``app.kubernetes.io/managed-by`` is not ``Helm``: a plain ``helm install`` sets the same label, and
  calling it Argo CD would be a guess.
- Flux: ``kustomize.toolkit.fluxcd.io/name`` + ``/namespace`` (Kustomization) and
  ``helm.toolkit.fluxcd.io/name`` + ``/namespace`` (HelmRelease).
"""

from __future__ import annotations

from typing import Any

from mcp_autoscale.models import GitOpsManager

JSON = dict[str, Any]

ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE = "argocd.argoproj.io/instance"
ARGO_LEGACY_INSTANCE = "app.kubernetes.io/instance"
MANAGED_BY = "app.kubernetes.io/managed-by"
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
FLUX_HELM = "helm.toolkit.fluxcd.io"

TOOL_NAMES = {"argocd": "Argo CD", "flux": "Flux"}


def _meta(obj: JSON) -> JSON:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def manager_of(obj: JSON) -> GitOpsManager | None:
    """The GitOps controller managing ``obj``, or None when no tracking label/annotation is present."""
    m = _meta(obj)
    lb: dict[str, str] = dict(m.get("labels") or {})
    an: dict[str, str] = dict(m.get("annotations") or {})
    tracking = an.get(ARGO_TRACKING)
    if tracking:
        app = tracking.split(":", 1)[0]
        ns, sep, name = app.partition("_")
        return GitOpsManager(
            tool="argocd",
            app=name if sep else app,
            namespace=ns if sep else None,
            kind="Application",
            via=f"annotation {ARGO_TRACKING}",
        )
    for key in (ARGO_INSTANCE, ARGO_LEGACY_INSTANCE):
        if lb.get(key) and (key != ARGO_LEGACY_INSTANCE or lb.get(MANAGED_BY, "").lower() != "helm"):
            return GitOpsManager(tool="argocd", app=lb[key], kind="Application", via=f"label {key}")
    for prefix, kind in ((FLUX_KUSTOMIZE, "Kustomization"), (FLUX_HELM, "HelmRelease")):
        flux_name = lb.get(f"{prefix}/name")
        if flux_name:
            return GitOpsManager(
                tool="flux",
                app=flux_name,
                namespace=lb.get(f"{prefix}/namespace"),
                kind=kind,
                via=f"label {prefix}/name",
            )
    return None


def manager_label(manager: GitOpsManager) -> str:
    """'Argo CD app 'inference'' or 'Flux Kustomization 'flux-system/apps''."""
    tool = TOOL_NAMES[manager.tool]
    name = f"{manager.namespace}/{manager.app}" if manager.namespace else manager.app
    noun = "app" if manager.tool == "argocd" else (manager.kind or "Kustomization")
    return f"{tool} {noun} '{name}'"


def consequence(manager: GitOpsManager) -> str:
    """What a direct patch leads to under this controller (the reason not to fight it)."""
    if manager.tool == "argocd":
        return "self-heal reverts direct patches; without self-heal the app goes OutOfSync"
    return "the next reconciliation (spec.interval) reverts direct patches"


def describe(object_label: str, manager: GitOpsManager) -> str:
    """'chat/llama-8b ScaledObject llama-8b is managed by Argo CD app 'inference' (self-heal reverts ...)'."""
    return f"{object_label} is managed by {manager_label(manager)} ({consequence(manager)})"
