"""Who is calling, for the audit log: the bearer token's fingerprint over HTTP, the local user on stdio.

The HTTP middleware has already rejected requests without the right token before a tool runs, so the
fingerprint of the presented token names a verified credential (never the token itself). Locally, the
user is the one the operating system says owns the process (the effective uid), not ``$USER`` or
``$LOGNAME``, which anyone can set.
"""

from __future__ import annotations

import hashlib
import os
import pwd
from typing import Any


def os_user() -> str:
    """The effective user's login name from the password database (``uid-N`` when it has none)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def local_user() -> str:
    return f"local:{os_user()}"


def token_subject(token: str) -> str:
    return "http:token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def caller_for(ctx: Any) -> str:
    """``ctx`` is an MCP ``Context`` (or None outside a request)."""
    headers = None
    if ctx is not None:
        try:
            headers = ctx.headers
        except (ValueError, AttributeError):
            headers = None
    if headers:
        auth = headers.get("authorization") or headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return token_subject(auth[7:].strip())
        return "http:anonymous-loopback"
    return local_user()
