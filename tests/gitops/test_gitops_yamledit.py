"""The YAML editor: one field changes, everything else stays byte-identical."""

from __future__ import annotations

import difflib

import pytest
from gitops_fakes import LLAMA_8B, LLAMA_70B

from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.gitops.config import GitOpsConfig, GitTarget
from mcp_autoscale.gitops.yamledit import FieldEdit, add_kustomize_patch, edit_object, split_documents
from mcp_autoscale.models import PoolRef


def diff(a: str, b: str) -> list[str]:
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
    return [ln for ln in lines if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_finds_the_object_by_kind_and_name_in_a_multi_document_file() -> None:
    new, changes = edit_object(
        LLAMA_8B, "Deployment", "llama-8b", "chat", [FieldEdit(("spec", "replicas"), 3)], "f.yaml"
    )
    assert diff(LLAMA_8B, new) == [
        "-  replicas: 2 # KEDA owns this after the first sync",
        "+  replicas: 3 # KEDA owns this after the first sync",
    ]
    assert [(c.label, c.before, c.after) for c in changes] == [("spec.replicas", 2, 3)]
    assert len(split_documents(new)) == 2


def test_same_name_other_kind_or_namespace_is_not_confused() -> None:
    with pytest.raises(NotFound, match="no ScaledObject named 'llama-8b'"):
        edit_object(
            LLAMA_8B, "ScaledObject", "llama-8b", "batch", [FieldEdit(("spec", "maxReplicaCount"), 3)], "f"
        )
    with pytest.raises(NotFound):
        edit_object(LLAMA_70B, "HorizontalPodAutoscaler", "llama-70b-decode", "chat", [], "f")


def test_quotes_and_flow_style_parents() -> None:
    text = 'kind: NodePool\nmetadata: {name: a}\nspec:\n  limits: {nvidia.com/gpu: "8", cpu: 100}  # flow\n'
    new, _ = edit_object(
        text, "NodePool", "a", None, [FieldEdit(("spec", "limits", "nvidia.com/gpu"), 16)], "f"
    )
    assert new.splitlines()[3].startswith("  limits: {nvidia.com/gpu: 16, cpu: 100}")  # round-trip (flow map)
    assert new.startswith("kind: NodePool\nmetadata: {name: a}\n")  # untouched lines stay as they were


def test_value_already_there_changes_nothing() -> None:
    new, changes = edit_object(
        LLAMA_70B,
        "ScaledObject",
        "llama-70b-decode",
        "chat",
        [FieldEdit(("spec", "maxReplicaCount"), 6)],
        "f",
    )
    assert new == LLAMA_70B and changes == []


def test_invalid_yaml_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match=r"f\.yaml: not valid YAML"):
        edit_object("kind: [unclosed\n", "Deployment", "x", None, [], "f.yaml")


def test_kustomize_patch_entry_added_once() -> None:
    text = "resources:\n  - base\n"
    once = add_kustomize_patch(text, "p.yaml", "k")
    assert once == "resources:\n  - base\npatches:\n- path: p.yaml\n"
    assert add_kustomize_patch(once, "p.yaml", "k") == once
    with_list = "resources:\n  - base\npatches:\n  - path: other.yaml\n"
    assert add_kustomize_patch(with_list, "p.yaml", "k") == with_list + "  - path: p.yaml\n"


def test_mapping_config_validation_and_templating() -> None:
    cfg = GitOpsConfig.model_validate(
        {
            "repo": "/srv/fleet",
            "targets": [
                {"match": {"namespace": "chat"}, "path": "apps/{namespace}/{deployment}.yaml"},
                {"match": {"node_pool": "gpu-*"}, "paths": ["infra/{node_pool}.yaml"]},
            ],
        }
    )
    t = cfg.target_for_pool(PoolRef(namespace="chat", name="llama-8b"))
    assert t is not None and t.files({"namespace": "chat", "deployment": "llama-8b"}) == [
        "apps/chat/llama-8b.yaml"
    ]
    assert cfg.target_for_pool(PoolRef(namespace="dev", name="x")) is None
    assert cfg.target_for_node_pool("gpu-h100") is not None and cfg.author_parts() == (
        "mcp-autoscale",
        "mcp-autoscale@localhost",
    )
    with pytest.raises(ValueError, match="inside the repository"):
        GitTarget.model_validate({"match": {"namespace": "a"}, "path": "../etc/passwd"})
    with pytest.raises(ValueError, match="path, paths or kustomization"):
        GitTarget.model_validate({"match": {"namespace": "a"}})
    with pytest.raises(ValueError, match="not both"):
        GitTarget.model_validate({"match": {"namespace": "a", "node_pool": "b"}, "path": "x"})
    with pytest.raises(ValueError, match="Name <email@host>"):
        GitOpsConfig.model_validate({"repo": "/r", "author": "nobody"})
    with pytest.raises(ValueError, match="usable Git ref"):
        GitOpsConfig.model_validate({"repo": "/r", "base": "--output=/tmp/x"})
