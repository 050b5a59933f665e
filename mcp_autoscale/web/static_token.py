"""The static bearer token (``MCP_AUTOSCALE_HTTP_TOKEN``) behind the SDK's token-verifier protocol, so a
request's identity is always the credential that was verified, whichever way it was verified."""

from __future__ import annotations

import hashlib
import hmac

from mcp.server.auth.provider import AccessToken

from mcp_autoscale.web.scopes import READ, WRITE


def token_fingerprint(token: str) -> str:
    """Names a static token in the audit without revealing it."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


class StaticTokenVerifier:
    """Accepts exactly one token (constant-time compare); its holder may read and propose/apply, not approve."""

    def __init__(self, token: str, scopes: tuple[str, ...] = (READ, WRITE)) -> None:
        self._token = token.encode()
        self._scopes = list(scopes)

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token or not hmac.compare_digest(token.strip().encode(), self._token):
            return None
        name = token_fingerprint(token.strip())
        return AccessToken(
            token=token, client_id=name, scopes=self._scopes, subject=name, claims={"kind": "static"}
        )
