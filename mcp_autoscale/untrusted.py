"""Showing untrusted text (the agent's rationale, strings derived from tool arguments) safely.

The model writes the rationale; whatever it writes is stored as given (the audit keeps the evidence) but
must never steer what a person sees: no terminal escape sequences that erase or rewrite lines, no
newlines that fake a "Policy:" or "approve prop-..." line, no Slack markup that pings a channel. Every
place that shows such text (terminal, webhook, chat prompt, Kubernetes Event) goes through this module.
Pure functions, no I/O.
"""

from __future__ import annotations

import unicodedata

# Characters that move the cursor, break lines, or reorder what is displayed: C0/C1 controls (ESC,
# CR, LF, TAB, DEL, CSI...), Unicode line/paragraph separators, bidi embeddings/overrides/isolates.
_INVISIBLE_FORMAT = {
    0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
    0x2060, 0x2066, 0x2067, 0x2068, 0x2069, 0xFEFF,
}  # fmt: skip
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

AGENT_LABEL = "the agent's words, unverified"


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _unsafe(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F or code in _INVISIBLE_FORMAT:
        return True
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")


def neutralise(text: str, *, max_len: int | None = None) -> str:
    """One printable line: every control/format character becomes a visible escape (``\\e[1A``, ``\\n``).

    A backslash is doubled first, so the output cannot be mistaken for an escape the server wrote.
    ``max_len`` cuts the result (marked with an ellipsis) so a long text cannot push the real lines off
    screen.
    """
    out = "".join(_escape(ch) if _unsafe(ch) else ch for ch in text.replace("\\", "\\\\"))
    if max_len is not None and len(out) > max_len:
        out = out[: max(0, max_len - 1)] + "…"
    return out


def quoted(text: str, *, label: str = AGENT_LABEL, max_len: int | None = 500) -> str:
    """Untrusted text, neutralised and visibly set apart: ``(<label>) «...»``."""
    return f"({label}) «{neutralise(text, max_len=max_len)}»"


def slack_escape(text: str) -> str:
    """Slack's own escaping (``&``, ``<``, ``>``), so ``<!channel>`` or ``<url|label>`` stay plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_quoted(text: str, *, label: str = AGENT_LABEL, max_len: int | None = 500) -> str:
    """Untrusted text for a Slack message: neutralised to one line, markup escaped, set apart."""
    return slack_escape(quoted(text, label=label, max_len=max_len))


def lines(text: str) -> list[str]:
    """Multi-line text the server composed but that may embed untrusted parts: each line neutralised."""
    return [neutralise(line) for line in text.splitlines()]
