"""The container image definition: slim base, project installed with pip, non-root, HTTP entrypoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_both_stages_use_python_311_slim() -> None:
    froms = [args for word, args in _instructions() if word == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)


def test_project_is_installed_with_pip_from_its_own_source() -> None:
    ins = _instructions()
    copies = [a for w, a in ins if w == "COPY"]
    assert any("pyproject.toml" in c for c in copies) and any(c.startswith("mcp_autoscale") for c in copies)
    assert any("setup.py" in c for c in copies) and any(c.startswith("runbooks") for c in copies)
    runs = " ".join(a for w, a in ins if w == "RUN")
    assert "pip wheel" in runs and "pip install /wheels/" in runs
    for _, source in (c.split()[:2] for c in copies if not c.startswith("--from")):
        assert (ROOT / source.rstrip("/")).exists() or source.startswith("README"), source


def test_final_user_is_numeric_and_not_root() -> None:
    ins = _instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    users = [a for w, a in ins[last_from:] if w == "USER"]
    assert users, "runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    deployment = yaml.safe_load((ROOT / "deploy/kustomize/base/deployment.yaml").read_text(encoding="utf-8"))
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_entrypoint_and_cmd_serve_http_with_the_kubernetes_backend() -> None:
    ins = dict((w, a) for w, a in _instructions() if w in {"ENTRYPOINT", "CMD", "EXPOSE"})
    assert json.loads(ins["ENTRYPOINT"]) == ["mcp-autoscale"]
    cmd = json.loads(ins["CMD"])
    assert cmd == [
        "serve",
        "--transport",
        "http",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--backend",
        "kubernetes",
    ]
    assert ins["EXPOSE"] == "8080"
    deployment = yaml.safe_load((ROOT / "deploy/kustomize/base/deployment.yaml").read_text(encoding="utf-8"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == cmd


def test_state_dir_exists_and_belongs_to_the_runtime_user() -> None:
    runs = " ".join(a for w, a in _instructions() if w == "RUN")
    assert re.search(r"install -d -o 10001 -g 10001 .*?/var/lib/mcp-autoscale", runs)
    envs = " ".join(a for w, a in _instructions() if w == "ENV")
    assert "MCP_AUTOSCALE_STATE_DIR=/var/lib/mcp-autoscale" in envs
