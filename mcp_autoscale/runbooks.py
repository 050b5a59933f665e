"""Field runbooks: load the shipped markdown files (plus a team's folder) and find the right one by symptom.

The runbooks live at the top of the repository in ``runbooks/`` (beside ``policies/``), where a team edits
them; the build copies them into the wheel as ``mcp_autoscale/data/runbooks`` (setup.py), so one source of
truth serves a source checkout, an editable install and an installed wheel. ``--runbooks DIR`` merges a
team's folder on top: its runbooks are added, and one with a shipped slug replaces the shipped one.

A runbook is a markdown file with YAML front matter (title, slug, symptoms, signals, severity) and a
body whose ```` ```mcp ```` fenced blocks hold the exact tool calls that fix the problem, one Python-style
call per line (``patch_hpa(namespace="chat", ...)``). Those calls are parsed at load time, so a runbook that
names a tool the server does not have, or a call that does not parse, fails at start-up, not in front of a
user at 3 a.m.

Search is deliberately simple and deterministic (no embeddings): the query and every runbook are
normalised the same way (domain phrases folded to one token, e.g. "time to first token" -> ``ttft``;
light suffix stemming; a few synonyms such as "old" -> ``stale``), then each query term scores by the most
important field it appears in (symptoms > title > signals > body), weighted by how rare the term is across
runbooks, with a bonus for every symptom phrase the query covers completely.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mcp_autoscale.errors import ConfigError, InvalidInput
from mcp_autoscale.models import SIGNAL_NAMES

Severity = Literal["critical", "high", "medium", "low"]

SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

KNOWN_TOOLS: frozenset[str] = frozenset(
    {
        "get_slo_snapshot",
        "patch_hpa",
        "scale_deployment",
        "request_gpu_nodes",
        "estimate_cost",
        "recommend_scaling",
        "explain_pool",
        "check_policy",
        "find_runbook",
        "list_pools",
        "rollback_action",
    }
)
"""Tool names a runbook may call; a call to anything else is a broken runbook."""

MUTATING_TOOLS: frozenset[str] = frozenset(
    {"patch_hpa", "scale_deployment", "request_gpu_nodes", "rollback_action"}
)
"""Tools that go through the gate: a runbook must always show them with a rationale and ``dry_run``."""

_SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_MCP_BLOCK = re.compile(r"^```mcp[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t]*$", re.MULTILINE)


class ToolCall(BaseModel):
    """One tool call a runbook prescribes, with literal keyword arguments."""

    model_config = ConfigDict(frozen=True)

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Runbook(BaseModel):
    """One runbook: front matter fields plus the markdown body (without the front matter)."""

    model_config = ConfigDict(frozen=True)

    slug: str = Field(pattern=_SLUG, max_length=63)
    title: str = Field(min_length=1, max_length=200)
    symptoms: list[str] = Field(min_length=1)
    signals: list[str] = Field(default_factory=list)
    severity: Severity
    body: str = Field(min_length=1)
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Calls parsed from ```mcp blocks")

    @field_validator("symptoms")
    @classmethod
    def _non_empty_symptoms(cls, value: list[str]) -> list[str]:
        cleaned = [s.strip() for s in value]
        if any(not s for s in cleaned):
            raise ValueError("symptoms must be non-empty strings")
        return cleaned

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SIGNAL_NAMES]
        if unknown:
            raise ValueError(f"unknown signal(s) {unknown}; known: {', '.join(SIGNAL_NAMES)}")
        return value

    @property
    def summary(self) -> str:
        """First sentence of the introduction: what a search result shows on one line."""
        return _summary(self.body) or self.title

    def sections(self) -> dict[str, str]:
        """``## Heading`` -> text up to the next ``##`` heading."""
        marks = list(_HEADING.finditer(self.body))
        out: dict[str, str] = {}
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(self.body)
            out[mark.group(1)] = self.body[mark.end() : end].strip()
        return out


class RunbookMatch(BaseModel):
    """A search hit: enough for a model to decide whether to read the whole runbook."""

    slug: str
    title: str
    severity: Severity
    score: float
    matched_terms: list[str]
    summary: str


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def packaged_runbook_dir() -> Traversable:
    """The shipped runbooks: the wheel's copy when installed, else ``runbooks/`` of the source checkout
    (an editable install or a plain checkout: the package sits next to it)."""
    wheel_copy = files("mcp_autoscale").joinpath("data", "runbooks")
    if wheel_copy.is_dir():
        return wheel_copy
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "runbooks").is_dir():
        return checkout / "runbooks"
    raise ConfigError(
        "the shipped runbooks are missing: neither mcp_autoscale/data/runbooks (wheel) nor runbooks/ "
        "(source checkout) exists; reinstall the package"
    )


def load_runbooks(directory: Path | None = None) -> list[Runbook]:
    """Every ``*.md`` runbook in ``directory`` (default: the packaged ones), sorted by slug.

    Raises ConfigError naming the file (and line or field) for a malformed runbook or a duplicate slug.
    """
    source: Traversable = directory if directory is not None else packaged_runbook_dir()
    if directory is not None and not directory.is_dir():
        raise ConfigError(f"{directory}: runbook directory does not exist")
    entries = sorted(
        (e for e in source.iterdir() if e.name.endswith(".md") and e.is_file()), key=lambda e: e.name
    )
    runbooks: list[Runbook] = []
    seen: dict[str, str] = {}
    for entry in entries:
        label = str(entry) if directory is not None else f"runbooks/{entry.name}"
        runbook = parse_runbook(entry.read_text(encoding="utf-8"), label)
        if runbook.slug in seen:
            raise ConfigError(
                f"{label}: field 'slug': duplicate slug {runbook.slug!r} (also in {seen[runbook.slug]})"
            )
        seen[runbook.slug] = label
        runbooks.append(runbook)
    return sorted(runbooks, key=lambda r: r.slug)


@lru_cache(maxsize=1)
def _packaged() -> tuple[Runbook, ...]:
    return tuple(load_runbooks())


def default_runbooks() -> list[Runbook]:
    """The packaged runbooks, parsed once per process (they are read-only package data)."""
    return list(_packaged())


def merged_runbooks(team_dir: Path | None) -> list[Runbook]:
    """The shipped runbooks plus a team's folder; a team runbook with a shipped slug replaces it.

    Raises ConfigError (naming the file) for a malformed team runbook or a slug used twice in the folder.
    """
    shipped = {r.slug: r for r in default_runbooks()}
    if team_dir is None:
        return sorted(shipped.values(), key=lambda r: r.slug)
    team = {r.slug: r for r in load_runbooks(team_dir)}
    return sorted({**shipped, **team}.values(), key=lambda r: r.slug)


def parse_runbook(text: str, source: str) -> Runbook:
    """Parse one runbook file's text. ``source`` names the file in error messages."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ConfigError(f"{source}:1: runbook must start with a '---' YAML front matter block")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ConfigError(f"{source}:1: front matter is not closed with a '---' line")
    try:
        meta = yaml.safe_load("".join(lines[1:end]))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 2}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: front matter is not valid YAML: {err}") from err
    if not isinstance(meta, dict):
        raise ConfigError(f"{source}:2: front matter must be a YAML mapping (title, slug, symptoms, ...)")
    if "body" in meta or "tool_calls" in meta:
        raise ConfigError(
            f"{source}: field 'body'/'tool_calls' is derived from the markdown, not front matter"
        )
    raw_body = "".join(lines[end + 1 :])
    body = raw_body.strip() + "\n"
    stem = Path(source).name.removesuffix(".md")
    calls = _parse_tool_calls(raw_body, source, body_line=end + 2)
    try:
        runbook = Runbook(**meta, body=body, tool_calls=calls)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "front matter"
        raise ConfigError(f"{source}: field '{field}': {first['msg']}") from err
    if runbook.slug != stem:
        raise ConfigError(f"{source}: field 'slug': {runbook.slug!r} does not match the file name {stem!r}")
    return runbook


def _parse_tool_calls(body: str, source: str, body_line: int) -> list[ToolCall]:
    """Tool calls from ```mcp blocks; each line must be ``tool(kw=literal, ...)`` naming a known tool."""
    calls: list[ToolCall] = []
    for block in _MCP_BLOCK.finditer(body):
        first_line = body_line + body.count("\n", 0, block.start(1))
        for offset, raw in enumerate(block.group(1).splitlines()):
            line = raw.strip()
            if not line:
                continue
            where = f"{source}:{first_line + offset}"
            calls.append(_parse_call(line, where))
    return calls


def _parse_call(line: str, where: str) -> ToolCall:
    try:
        node = ast.parse(line, mode="eval").body
    except SyntaxError as err:
        raise ConfigError(f"{where}: tool call does not parse: {err.msg}") from err
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ConfigError(f"{where}: expected one tool call like patch_hpa(namespace=..., ...)")
    tool = node.func.id
    if tool not in KNOWN_TOOLS:
        raise ConfigError(f"{where}: unknown tool {tool!r}; known: {', '.join(sorted(KNOWN_TOOLS))}")
    if node.args:
        raise ConfigError(f"{where}: {tool}: use keyword arguments only")
    arguments: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ConfigError(f"{where}: {tool}: '**' arguments are not allowed")
        try:
            arguments[kw.arg] = ast.literal_eval(kw.value)
        except ValueError as err:
            raise ConfigError(f"{where}: {tool}: argument {kw.arg!r} must be a literal") from err
    if tool in MUTATING_TOOLS:
        rationale = arguments.get("rationale")
        if not isinstance(rationale, str) or not rationale.strip():
            raise ConfigError(f"{where}: {tool}: a mutating call needs a non-empty rationale")
        if not isinstance(arguments.get("dry_run"), bool):
            raise ConfigError(f"{where}: {tool}: a mutating call must say dry_run=True or dry_run=False")
    return ToolCall(tool=tool, arguments=arguments)


def _summary(body: str) -> str:
    """First sentence of the first plain paragraph (skipping headings)."""
    for para in re.split(r"\n\s*\n", body):
        text = " ".join(para.split())
        if not text or text.startswith(("#", "-", "```", "|")):
            continue
        sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
        return sentence if len(sentence) <= 240 else sentence[:237].rstrip() + "..."
    return ""


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------

_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"time[\s_-]+to[\s_-]+first[\s_-]+token", " ttft "),
        (r"first[\s_-]+token", " ttft "),
        (r"time[\s_-]+per[\s_-]+output[\s_-]+token", " itl "),
        (r"inter[\s_-]*token([\s_-]+latency)?", " itl "),
        (r"\btpot\b", " itl "),
        (r"key[\s_-]+value", " kv "),
        (r"\bkv[\s_-]*cache\b", " kv cache "),
        (r"\bcold[\s_-]*start", " coldstart "),
        (r"\bstart[\s_-]*up\b", " startup "),
        (r"\bscale[\s_-]+to[\s_-]+zero\b", " scaletozero "),
    )
)

_STOPWORDS: frozenset[str] = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "too",
        "up",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "very",
        "all",
        "any",
        "can",
        "get",
        "got",
        "keep",
        "keeps",
    }
)

_SYNONYMS: dict[str, str] = {
    "old": "stale",
    "outdat": "stale",
    "lagg": "lag",
    "delay": "lag",
    "bill": "cost",
    "spend": "cost",
    "expens": "cost",
    "money": "cost",
    "price": "cost",
    "dollar": "cost",
    "backlog": "queue",
    "queu": "queue",
    "unschedul": "pend",
    "unschedulable": "pend",
    "flap": "flap",
    "boot": "startup",
    "latenc": "latency",
    "gpus": "gpu",
    "evict": "preempt",
    "swap": "preempt",
    "retract": "preempt",
}


def _stem(word: str) -> str:
    """Light suffix stripping: enough to make 'preemptions', 'preempted' and 'preempt' meet."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, repl in (("ies", "y"), ("sses", "ss")):
        if word.endswith(suffix):
            word = word[: -len(suffix)] + repl
            break
    else:
        if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
            word = word[:-1]
    for _ in range(2):  # 'provisioning' -> 'provision' -> 'provis', same as 'provision'
        for suffix in ("ation", "ing", "ion", "ed", "er", "ly"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        else:
            break
    return word


def _terms_with_words(text: str) -> list[tuple[str, str]]:
    """(normalised term, word as written after phrase folding) for every meaningful word in ``text``."""
    folded = text.lower()
    for pattern, repl in _PHRASES:
        folded = pattern.sub(repl, folded)
    out: list[tuple[str, str]] = []
    for word in re.findall(r"[a-z0-9]+", folded):
        if word in _STOPWORDS or len(word) < 2:
            continue
        stem = _stem(word)
        out.append((_SYNONYMS.get(stem, _SYNONYMS.get(word, stem)), word))
    return out


def normalise(text: str) -> list[str]:
    """The search terms of ``text`` (also used for the runbooks, so both sides meet)."""
    return [term for term, _ in _terms_with_words(text)]


_FIELD_WEIGHTS = {"symptoms": 3.0, "title": 2.5, "signals": 1.5, "body": 1.0}
_PHRASE_BONUS = 1.5


class _Index(BaseModel):
    """Per-runbook term sets by field, so a search only normalises the query."""

    model_config = ConfigDict(frozen=True)

    symptoms: frozenset[str]
    title: frozenset[str]
    signals: frozenset[str]
    body: dict[str, int]
    phrases: tuple[frozenset[str], ...]


def _index(runbook: Runbook) -> _Index:
    return _index_of(
        runbook.slug, runbook.title, tuple(runbook.symptoms), tuple(runbook.signals), runbook.body
    )


@lru_cache(maxsize=256)
def _index_of(
    slug: str, title: str, symptoms: tuple[str, ...], signals: tuple[str, ...], body: str
) -> _Index:
    """Cached on the runbook's content (runbooks are immutable), so repeated searches cost only the query."""
    body_counts: dict[str, int] = {}
    for term in normalise(body):
        body_counts[term] = body_counts.get(term, 0) + 1
    phrases = [frozenset(normalise(s)) for s in symptoms]
    return _Index(
        symptoms=frozenset().union(*phrases),
        title=frozenset(normalise(title)) | frozenset(normalise(slug)),
        signals=frozenset(normalise(" ".join(signals))),
        body=body_counts,
        phrases=tuple(p for p in phrases if p),
    )


def _term_weight(term: str, idx: _Index) -> float:
    weight = 0.0
    if term in idx.symptoms:
        weight = _FIELD_WEIGHTS["symptoms"]
    elif term in idx.title:
        weight = _FIELD_WEIGHTS["title"]
    elif term in idx.signals:
        weight = _FIELD_WEIGHTS["signals"]
    if term in idx.body:
        # A term the body mentions often matters more than a passing mention, capped so long runbooks
        # do not win on length.
        weight += _FIELD_WEIGHTS["body"] * min(idx.body[term], 6) / 6
    return weight


def find_runbooks(
    query: str, runbooks: Sequence[Runbook] | None = None, limit: int = 3
) -> list[RunbookMatch]:
    """Runbooks ranked by how well they match a free-text symptom description, best first.

    Only runbooks with a positive score are returned. Raises InvalidInput for an empty query or a limit < 1.
    """
    if limit < 1:
        raise InvalidInput(f"limit must be >= 1, not {limit}")
    pairs = _terms_with_words(query)
    if not pairs:
        raise InvalidInput("query has no searchable words; describe the symptom, e.g. 'TTFT p90 above SLO'")
    pool = list(runbooks) if runbooks is not None else default_runbooks()
    indexes = [_index(r) for r in pool]
    query_terms = list(dict.fromkeys(term for term, _ in pairs))
    written = {term: word for term, word in reversed(pairs)}
    n = len(pool)

    def idf(term: str) -> float:
        df = sum(1 for ix in indexes if term in ix.symptoms or term in ix.title or term in ix.body)
        return math.log(1.0 + n / df) if df else 0.0

    weights = {term: idf(term) for term in query_terms}
    query_set = set(query_terms)
    matches: list[RunbookMatch] = []
    for runbook, ix in zip(pool, indexes, strict=True):
        score = 0.0
        matched: list[str] = []
        for term in query_terms:
            w = _term_weight(term, ix)
            if w > 0:
                score += w * weights[term]
                matched.append(written[term])
        score += _PHRASE_BONUS * sum(1 for phrase in ix.phrases if phrase <= query_set)
        if score > 0:
            matches.append(
                RunbookMatch(
                    slug=runbook.slug,
                    title=runbook.title,
                    severity=runbook.severity,
                    score=round(score, 3),
                    matched_terms=matched,
                    summary=runbook.summary,
                )
            )
    matches.sort(key=lambda m: (-m.score, SEVERITY_RANK[m.severity], m.slug))
    return matches[:limit]


def runbook_for_signal(signal: str, runbooks: Iterable[Runbook] | None = None) -> list[Runbook]:
    """Runbooks that list ``signal`` (e.g. ``kv_usage``), most specific first.

    Order: where the signal sits in the runbook's own list (first = primary), then whether the runbook's
    title or symptoms talk about it (``queue_depth`` -> "queue"), then severity.
    Raises InvalidInput for a name that is not a signal the snapshot can carry.
    """
    if signal not in SIGNAL_NAMES:
        raise InvalidInput(f"unknown signal {signal!r}; known: {', '.join(SIGNAL_NAMES)}")
    pool = list(runbooks) if runbooks is not None else default_runbooks()
    topic = normalise(signal)[0]

    def key(r: Runbook) -> tuple[int, int, int, str]:
        spoken = set(normalise(r.title + " " + " ".join(r.symptoms)))
        return (r.signals.index(signal), 0 if topic in spoken else 1, SEVERITY_RANK[r.severity], r.slug)

    return sorted((r for r in pool if signal in r.signals), key=key)
