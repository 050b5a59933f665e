"""The ``gitops:`` block of a policy file: where each pool's manifests live in a Git checkout.

It sits in the policy (not in Settings) because it belongs next to the rules that choose
``execution: gitops``: one reviewed file says both what may change and where the change is written.
Paths are relative to the repository root and may use ``{namespace}``, ``{deployment}`` and ``{node_pool}``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_autoscale.models import PoolRef

DEFAULT_AUTHOR = "mcp-autoscale <mcp-autoscale@localhost>"
Execution = Literal["direct", "gitops", "refuse"]
"""How a rule's allowed actions are carried out: patch the cluster, commit to Git, or not at all."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetMatch(_Strict):
    """Which pool (namespace + deployment globs) or GPU node pool a mapping covers."""

    namespace: str | None = Field(default=None, description="Namespace glob")
    deployment: str | None = Field(default=None, description="Deployment glob")
    node_pool: str | None = Field(default=None, description="Karpenter NodePool glob (request_gpu_nodes)")

    @model_validator(mode="after")
    def _one_kind(self) -> TargetMatch:
        if self.node_pool is not None and (self.namespace is not None or self.deployment is not None):
            raise ValueError("match either a pool (namespace/deployment) or a node_pool, not both")
        if self.node_pool is None and self.namespace is None and self.deployment is None:
            raise ValueError("match needs namespace and/or deployment, or node_pool")
        return self

    def covers_pool(self, ref: PoolRef) -> bool:
        if self.node_pool is not None:
            return False
        ns_ok = self.namespace is None or fnmatchcase(ref.namespace, self.namespace)
        return ns_ok and (self.deployment is None or fnmatchcase(ref.name, self.deployment))

    def covers_node_pool(self, name: str) -> bool:
        return self.node_pool is not None and fnmatchcase(name, self.node_pool)


def _relative(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"{path!r}: give a path inside the repository (relative, no '..')")
    return str(p)


class GitTarget(_Strict):
    """One mapping: the manifest file(s) holding a pool's objects, or a kustomization to add a patch to."""

    match: TargetMatch
    paths: list[str] = Field(
        default_factory=list,
        description="Manifest files (multi-document allowed) with the Deployment/ScaledObject/HPA/NodePool",
    )
    path: str | None = Field(default=None, description="Shorthand for a single entry in paths")
    kustomization: str | None = Field(
        default=None,
        description="kustomization.yaml to which a patch file is added instead of editing the manifests",
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [_relative(v) for v in value]

    @field_validator("path", "kustomization")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _relative(value)

    @model_validator(mode="after")
    def _some_file(self) -> GitTarget:
        if not self.paths and self.path is None and self.kustomization is None:
            raise ValueError("a target needs path, paths or kustomization")
        return self

    def files(self, values: dict[str, str]) -> list[str]:
        """The manifest paths with ``{namespace}``/``{deployment}``/``{node_pool}`` filled in."""
        raw = ([self.path] if self.path else []) + list(self.paths)
        return [p.format_map(_Fill(values)) for p in raw]

    def kustomization_file(self, values: dict[str, str]) -> str | None:
        return self.kustomization.format_map(_Fill(values)) if self.kustomization else None


class _Fill(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise ValueError(f"unknown placeholder {{{key}}} (use namespace, deployment or node_pool)")


class GitOpsConfig(_Strict):
    """Where gitops-mode actions are written, and how the commits look."""

    repo: str = Field(description="Path of a local Git checkout (or bare repository)")
    base: str = Field(default="HEAD", description="Commit-ish new branches start from, e.g. 'main'")
    branch_prefix: str = Field(default="mcp-autoscale/", description="Branch = prefix + action id")
    author: str = Field(default=DEFAULT_AUTHOR, description="'Name <email>' for the commits")
    targets: list[GitTarget] = Field(default_factory=list)

    @field_validator("base", "branch_prefix")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not value or value.startswith("-") or any(ch.isspace() or ch in "~^:?*[\\" for ch in value):
            raise ValueError(f"{value!r} is not a usable Git ref name")
        return value

    @field_validator("author")
    @classmethod
    def _author(cls, value: str) -> str:
        name, sep, rest = value.partition("<")
        if not sep or not name.strip() or not rest.endswith(">") or "@" not in rest:
            raise ValueError(f"author must look like 'Name <email@host>', not {value!r}")
        return value

    def author_parts(self) -> tuple[str, str]:
        name, _, rest = self.author.partition("<")
        return name.strip(), rest[:-1].strip()

    def target_for_pool(self, ref: PoolRef) -> GitTarget | None:
        return next((t for t in self.targets if t.match.covers_pool(ref)), None)

    def target_for_node_pool(self, name: str) -> GitTarget | None:
        return next((t for t in self.targets if t.match.covers_node_pool(name)), None)
