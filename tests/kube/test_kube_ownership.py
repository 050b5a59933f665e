"""Pure discovery rules: GPU names, model inference, node constraints, ownership precedence."""

from __future__ import annotations

import pytest
from kube_objects import deployment, hpa, scaled_object

from mcp_autoscale.cluster import kube_ownership as ko


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("l4", "L4"),
        ("a10g", "A10G"),
        ("NVIDIA-H100-80GB-HBM3", "H100"),
        ("NVIDIA-A100-SXM4-80GB", "A100-80"),
        ("NVIDIA-A100-SXM4-40GB", "A100-40"),
        ("nvidia-l40s", "L40S"),
        ("nvidia-tesla-l4", "L4"),
        ("h200", "H200"),
        (None, None),
    ],
)
def test_normalize_gpu(raw: str | None, want: str | None) -> None:
    assert ko.normalize_gpu(raw) == want


def test_model_from_args_forms() -> None:
    def spec(*argv: str) -> dict:  # type: ignore[type-arg]
        return {"containers": [{"name": "c", "args": list(argv)}]}

    assert ko.model_from_args(spec("--model", "a/b")) == "a/b"
    assert ko.model_from_args(spec("--model=c/d", "--port", "1")) == "c/d"
    assert (
        ko.model_from_args({"containers": [{"command": ["vllm", "serve", "e/f"], "args": ["--tp", "4"]}]})
        == "e/f"
    )
    assert ko.model_from_args(spec("--port", "8000")) is None


def test_affinity_counts_as_node_constraint() -> None:
    d = deployment("chat", "x", model="m/x", gpus=2)
    d["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L40S"]}
                        ]
                    }
                ]
            }
        }
    }
    pool = ko.pool_state(d, None, [], {})
    assert (pool.gpu_type, pool.gpus_per_replica, pool.model) == ("L40S", 2, "m/x")


def test_scaled_object_wins_over_its_hpa_and_plain_hpa() -> None:
    so = scaled_object("chat", "so", "web", min_replicas=1, max_replicas=3)
    keda_hpa = hpa("chat", "keda-hpa-so", "web", min_replicas=1, max_replicas=3)
    plain = hpa("chat", "other", "api", min_replicas=2, max_replicas=5)
    assert ko.find_owner("web", [so], [keda_hpa, plain]) is so
    assert ko.find_owner("api", [so], [keda_hpa, plain]) is plain
    assert ko.find_owner("web", [], [keda_hpa]) is keda_hpa  # KEDA gone: the HPA is what is left
    assert ko.find_owner("nobody", [so], [keda_hpa, plain]) is None
    paused = scaled_object("chat", "so", "web", min_replicas=1, max_replicas=3, paused=True)
    assert ko.autoscaler_of(paused).paused and ko.autoscaler_of(paused).managed_hpa == "keda-hpa-so"


def test_balloon_replicas() -> None:
    assert [ko.balloon_replicas(g, 8) for g in (1, 8, 9, 16)] == [1, 1, 2, 2]
