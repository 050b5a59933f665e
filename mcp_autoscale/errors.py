"""Errors with messages written for the reader who has to act on them (a model or a person)."""

from __future__ import annotations


class AutoscaleError(Exception):
    """Base class. ``str(err)`` is safe to show to the client: it never carries credentials."""

    attempts: int = 1
    """Write attempts made before the error (conflict retries), for the audit record."""


class InvalidInput(AutoscaleError):
    """The caller asked for something malformed or impossible (maps to exit code 2 / a tool error)."""


class ConfigError(InvalidInput):
    """A configuration or policy file is invalid. The message names file, line and field."""


class NotFound(AutoscaleError):
    """The pool, node pool or object does not exist."""


class Conflict(AutoscaleError):
    """The object changed under us (HTTP 409): re-read and retry."""


class Forbidden(AutoscaleError):
    """RBAC denied the request. The message names verb, resource and namespace."""


class BackendUnavailable(AutoscaleError):
    """The cluster or the metrics backend could not be reached in time."""


class AuditUnavailable(AutoscaleError):
    """The audit record could not be written (full disk, torn file, database down): nothing was changed."""


class RateLimited(AutoscaleError):
    """The caller wrote audit records faster than the configured rate: nothing was done or recorded."""
