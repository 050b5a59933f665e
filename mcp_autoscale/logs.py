"""structlog set-up. Everything goes to stderr: in stdio mode stdout is the MCP protocol.

URLs in logs keep only scheme and host: a webhook URL's path *is* its credential (Slack), and httpx logs
every request URL at INFO. ``redact_urls`` is applied to httpx's own log records and to our messages
that carry an HTTP error.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

import structlog

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s\"'<>?#]+)[^\s\"'<>]*")


def _cut(m: re.Match[str]) -> str:
    scheme, _, host = m.group(1).partition("://")
    if "@" in host:  # user:password@host
        host = "…@" + host.rsplit("@", 1)[1]
    return f"{scheme}://{host}" + ("/…" if len(m.group(0)) > len(m.group(1)) else "")


def redact_urls(text: str) -> str:
    """Every URL cut to scheme://host[:port]/…: paths, queries and user info can hold tokens."""
    return _URL.sub(_cut, text)


class RedactUrls(logging.Filter):
    """Rewrites a record's message with ``redact_urls`` (installed on the httpx and httpcore loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_urls(record.getMessage()), None
        return True


def _redact_http_loggers() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUrls) for f in logger.filters):
            logger.addFilter(RedactUrls())


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time, not the one of configure time (which a test
    runner or an embedding program may have replaced and closed since)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(level: str = "info", json: bool = False) -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(handlers=[_StderrHandler()], level=lvl, format="%(message)s", force=True)
    _redact_http_loggers()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


# Safe default on import: nothing may reach stdout (the MCP protocol in stdio mode) before the CLI
# configures logging properly.
configure_logging("warning")
