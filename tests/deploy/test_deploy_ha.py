"""The HA component (two replicas on PostgreSQL state) rendered by a real ``kubectl kustomize`` on top of
the production overlay: two replicas rolled one at a time, a PodDisruptionBudget, the state URL from a
Secret, no audit PVC (the state lives in the database), and settings that the server reads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_deploy_rendered import KUSTOMIZE, Doc, container, kubectl, one

from mcp_autoscale.config import Settings


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> tuple[Doc, ...]:
    overlay = tmp_path_factory.mktemp("ha")
    rel = Path(os.path.relpath(KUSTOMIZE, overlay))
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel / 'overlays' / 'production'}]\ncomponents: [{rel / 'components' / 'ha'}]\n"
    )
    out = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def test_two_replicas_rolled_one_at_a_time_with_a_pdb(ha: tuple[Doc, ...]) -> None:
    deploy = one(ha, "Deployment", "mcp-autoscale")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pdb = one(ha, "PodDisruptionBudget", "mcp-autoscale")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
    spread = deploy["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"


def test_state_url_from_a_secret_and_no_audit_volume(ha: tuple[Doc, ...]) -> None:
    env = {e["name"]: e for e in container(ha)["env"]}
    ref = env["MCP_AUTOSCALE_STATE_URL"]["valueFrom"]["secretKeyRef"]
    assert (
        ref == {"name": "mcp-autoscale-state", "key": "url"} and "value" not in env["MCP_AUTOSCALE_STATE_URL"]
    )
    assert not [o for o in ha if o["kind"] == "PersistentVolumeClaim"]
    volumes = {
        v["name"]: v for v in one(ha, "Deployment", "mcp-autoscale")["spec"]["template"]["spec"]["volumes"]
    }
    assert "emptyDir" in volumes["state"] and "persistentVolumeClaim" not in volumes["state"]
    assert "state_url" in Settings.model_fields  # the variable is one the server reads
