"""Edit one field of one Kubernetes object in a (multi-document) YAML file, keeping everything else.

``ruamel.yaml`` (round-trip mode) parses the file and finds the object (by kind, name and namespace) and the
field's exact line and column. A value that already exists is then replaced in the text itself, token for
token (quotes kept), so the diff is that one value and comments, order, indentation and blank lines stay
byte-identical. Only a field that does not exist yet (or must be removed) goes through a round-trip dump
of that one document, with its indentation guessed from the document. Every edit is read back and checked.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from mcp_autoscale.errors import InvalidInput, NotFound

Value = int | str | None
_SEPARATOR = re.compile(r"^(---|\.\.\.)(\s.*)?$")
_TOKEN = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^\s#][^#\n]*?(?=[ \t]+#|[ \t]*$)")


@dataclass(frozen=True)
class FieldEdit:
    """Set ``path`` (keys from the document root) to ``value``; ``None`` removes the key."""

    path: tuple[str, ...]
    value: Value
    quoted: bool = False  # write as a string (annotations); ints are written plain

    @property
    def label(self) -> str:
        return "".join(
            f"[{p}]" if "." in p or "/" in p else (f".{p}" if i else p) for i, p in enumerate(self.path)
        )


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: Value
    after: Value


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    return y


def _plain(value: Any) -> Value:
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, int):
        return int(value)
    return str(value) if isinstance(value, str | float) else None


def split_documents(text: str) -> list[str]:
    """Chunks of the file, each starting at a document separator line (``---``) except the first."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if _SEPARATOR.match(line.rstrip("\r\n")) and chunks[-1]:
            chunks.append([])
        chunks[-1].append(line)
    return ["".join(c) for c in chunks]


def _header(chunk: str) -> tuple[str, str]:
    """(separator line or '', the document body)."""
    first, _, rest = chunk.partition("\n")
    if _SEPARATOR.match(first.rstrip("\r")):
        return first + "\n", rest
    return "", chunk


def _load(body: str, where: str) -> Any:
    try:
        return _yaml().load(body)
    except YAMLError as err:
        raise InvalidInput(f"{where}: not valid YAML: {str(err).splitlines()[0]}") from None


def _is_object(doc: Any, kind: str, name: str, namespace: str | None) -> bool:
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        return False
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or meta.get("name") != name:
        return False
    ns = meta.get("namespace")
    return ns is None or namespace is None or ns == namespace


def find_document(text: str, kind: str, name: str, namespace: str | None, where: str) -> int | None:
    """Index (in ``split_documents``) of the document holding the object, or None."""
    for i, chunk in enumerate(split_documents(text)):
        _, body = _header(chunk)
        if body.strip() and _is_object(_load(body, where), kind, name, namespace):
            return i
    return None


def load_object(text: str, kind: str, name: str, namespace: str | None, where: str) -> Any | None:
    """The parsed document of the object (round-trip types), or None when the file does not hold it."""
    index = find_document(text, kind, name, namespace, where)
    return None if index is None else _load(_header(split_documents(text)[index])[1], where)


def read_field(doc: Any, path: tuple[str, ...]) -> Value:
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return _plain(node)


def _surgical(body: str, doc: Any, edit: FieldEdit) -> str | None:
    """Replace the existing scalar's token in the text; None when that is not possible (missing, flow)."""
    parent = doc
    for key in edit.path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    leaf = edit.path[-1]
    if not isinstance(parent, CommentedMap) or leaf not in parent or edit.value is None:
        return None
    if isinstance(parent[leaf], dict | list) or parent.fa.flow_style():
        return None
    line_no, col = parent.lc.value(leaf)
    lines = body.splitlines(keepends=True)
    line = lines[line_no]
    m = _TOKEN.match(line, col)
    if m is None:
        return None
    token = m.group(0)
    if token.startswith(("|", ">", "&", "*", "!")):
        return None
    text = str(edit.value)
    if token.startswith('"') or (edit.quoted and not token.startswith("'")):
        new = f'"{text}"'
    elif token.startswith("'"):
        new = f"'{text}'"
    else:
        new = text
    lines[line_no] = line[: m.start()] + new + line[m.end() :]
    return "".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _dumper(body: str) -> YAML:
    """A round-trip dumper using the document's own indentation (mapping step, dash offset)."""
    lines = [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping_steps, offset = [], 0
    for a, b in itertools.pairwise(lines):
        step = _indent(b) - _indent(a)
        if b.lstrip().startswith("- "):
            if a.rstrip().endswith(":") and not offset:
                offset = max(0, step)
        elif step > 0:
            mapping_steps.append(step)
    y = _yaml()
    y.indent(mapping=min(mapping_steps, default=2), sequence=offset + 2, offset=offset)
    return y


def _roundtrip(body: str, edit: FieldEdit, where: str) -> str:
    """Insert or remove a key by dumping this one document, with its own indentation style."""
    doc = _load(body, where)
    node = doc
    trail: list[tuple[Any, str]] = []
    for key in edit.path[:-1]:
        if key not in node or not isinstance(node[key], dict):
            if edit.value is None:
                return body
            node[key] = CommentedMap()
        trail.append((node, key))
        node = node[key]
    leaf = edit.path[-1]
    if edit.value is None:
        node.pop(leaf, None)
        for parent, key in reversed(trail):  # drop maps the removal left empty (annotations: {})
            if parent[key]:
                break
            del parent[key]
    else:
        node[leaf] = DoubleQuotedScalarString(str(edit.value)) if edit.quoted else edit.value
    out = io.StringIO()
    _dumper(body).dump(doc, out)
    return out.getvalue()


def edit_object(
    text: str, kind: str, name: str, namespace: str | None, edits: list[FieldEdit], where: str
) -> tuple[str, list[FieldChange]]:
    """Apply ``edits`` to the object in ``text``; returns the new text and the changed fields."""
    index = find_document(text, kind, name, namespace, where)
    if index is None:
        raise NotFound(f"{where} has no {kind} named {name!r}")
    chunks = split_documents(text)
    sep, body = _header(chunks[index])
    changes: list[FieldChange] = []
    for edit in edits:
        doc = _load(body, where)
        before = read_field(doc, edit.path)
        wanted = _plain(edit.value)
        if before == wanted or (before is not None and wanted is not None and str(before) == str(wanted)):
            continue
        new_body = _surgical(body, doc, edit)
        if new_body is None:
            new_body = _roundtrip(body, edit, where)
        after = read_field(_load(new_body, where), edit.path)
        if str(after) != str(wanted):
            raise InvalidInput(f"{where}: could not set {kind} {name} {edit.label} to {edit.value!r}")
        body = new_body
        changes.append(FieldChange(label=edit.label, before=before, after=after))
    chunks[index] = sep + body
    return "".join(chunks), changes


def new_object(api_version: str, kind: str, name: str, namespace: str | None, edits: list[FieldEdit]) -> str:
    """A minimal manifest carrying only the edited fields (a kustomize strategic-merge patch)."""
    meta = CommentedMap(name=name)
    if namespace:
        meta["namespace"] = namespace
    doc = CommentedMap(apiVersion=api_version, kind=kind, metadata=meta)
    for edit in edits:
        node = doc
        for key in edit.path[:-1]:
            node = node.setdefault(key, CommentedMap())
        node[edit.path[-1]] = DoubleQuotedScalarString(str(edit.value)) if edit.quoted else edit.value
    doc.yaml_set_start_comment(
        "Patch written by mcp-autoscale through its policy gate; see the commit message."
    )
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def add_kustomize_patch(text: str, patch_path: str, where: str) -> str:
    """``text`` of a kustomization with ``patches: [{path: patch_path}]`` present (added at the end)."""
    if re.search(rf"^\s*-\s*(path:\s*)?['\"]?{re.escape(patch_path)}['\"]?\s*$", text, re.MULTILINE):
        return text
    doc = _load(text, where)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: not a kustomization (expected a mapping)")
    entry = f"- path: {patch_path}\n"
    if "patches" not in doc:
        return text + ("" if text.endswith("\n") or not text else "\n") + "patches:\n" + entry
    patches = doc["patches"]
    if not isinstance(patches, list):
        raise InvalidInput(f"{where}: 'patches' is not a list")
    patches.append(CommentedMap(path=patch_path))
    out = io.StringIO()
    _dumper(text).dump(doc, out)
    return out.getvalue()
