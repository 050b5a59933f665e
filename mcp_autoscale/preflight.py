"""Start-up checks of what a user can type: URLs and paths, each refused with one line that names the
option and shows the fix (``InvalidInput``, exit 2), before a server starts, a lock is taken or a file is
half written. A typo must never become a traceback, a hang on a lock in ``/proc``, or a silent "partial"
snapshot hours later.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from mcp_autoscale.errors import InvalidInput

_SCHEMES = ("http", "https")


def check_url(value: str, option: str) -> str:
    """An http(s) URL with a host (and a valid port when given); the message suggests the fix."""
    text = value.strip()
    if "://" not in text:
        raise InvalidInput(
            f"{option} {value!r} is not a URL (no scheme); did you mean http://{text or 'HOST:PORT'}"
        )
    parts = urlsplit(text)
    if parts.scheme.lower() not in _SCHEMES:
        rest = text.split("://", 1)[1]
        raise InvalidInput(
            f"{option} {value!r}: scheme {parts.scheme!r} is not supported; use http://{rest} "
            f"or https://{rest}"
        )
    if not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise InvalidInput(f"{option} {value!r} has no valid host: e.g. http://127.0.0.1:9090")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{option} {value!r}: the port must be a number in 1-65535") from None
    if port == 0:
        raise InvalidInput(f"{option} {value!r}: the port must be a number in 1-65535")
    return text


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _why_not_dir(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a directory we write in; None when it can."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
    else:
        base = _existing_ancestor(path)
        if not base.is_dir():
            return f"{base} is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".mcp-autoscale-probe-", dir=path)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        return f"cannot write in {path}: {err.strerror or err}"
    return None


def _guard(option: str, path: Path, err: OSError) -> InvalidInput:
    return InvalidInput(f"{option} {path}: {err.strerror or err}")


def writable_dir(path: Path, option: str) -> Path:
    """A directory we can create files in (created when missing)."""
    try:
        why = _why_not_dir(Path(path))
    except OSError as err:
        raise _guard(option, path, err) from None
    if why is not None:
        raise InvalidInput(f"{option} {path}: {why}")
    return Path(path)


def writable_file(path: Path, option: str) -> Path:
    """A file we can create or append to, in a directory we can write (its lock file lives there too)."""
    try:
        return _writable_file(Path(path), option)
    except OSError as err:
        raise _guard(option, path, err) from None


def _writable_file(path: Path, option: str) -> Path:
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a directory; give a file path, e.g. {path / 'audit.jsonl'}")
    if path.name in ("", ".", ".."):
        raise InvalidInput(f"{option} {path}: give a file path")
    why = _why_not_dir(path.parent)
    if why is not None:
        raise InvalidInput(f"{option} {path}: {why}")
    if path.exists():
        if not path.is_file():
            raise InvalidInput(f"{option} {path}: not a regular file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise InvalidInput(f"{option} {path}: not readable and writable by this user")
    return path


def readable_file(path: Path, option: str, *, must_exist: bool = True) -> Path:
    """A regular file we can read (``must_exist=False``: absent is fine, e.g. an empty audit log)."""
    try:
        return _readable_file(Path(path), option, must_exist)
    except OSError as err:
        raise _guard(option, path, err) from None


def _readable_file(path: Path, option: str, must_exist: bool) -> Path:
    if not path.exists():
        if must_exist:
            raise InvalidInput(f"{option} {path}: no such file")
        return path
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a directory, not a file")
    if not path.is_file():
        raise InvalidInput(f"{option} {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"{option} {path}: not readable by this user")
    return path
