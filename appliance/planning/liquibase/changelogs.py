"""What ``update-sql`` does not say about a changeset, read from the changeset's own file
(XML, YAML, JSON or formatted SQL):

* whether it is ``runAlways`` or ``runOnChange``: such a changeset may never be cached;
* its preconditions (and those of its changelog), which decide whether it runs or is only
  marked ran, yet are not part of Liquibase's checksum: they are part of its state's key.

A changeset whose file cannot be read or whose entry cannot be found is treated as volatile:
guessing "cacheable" could hand out a state that Liquibase would have changed.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.planning.liquibase.update_sql import Changeset

_VOLATILE_KEYS = ("runAlways", "runOnChange")
_SQL_CHANGESET = re.compile(r"^\s*--\s*changeset\s+(?P<author>[^:\s]+):(?P<id>\S+)(?P<attrs>.*)$", re.M | re.I)
_SQL_PRECONDITION = re.compile(r"^\s*--\s*precondition[^\n]*$", re.M | re.I)


@dataclass(frozen=True)
class Entry:
    volatile: bool
    preconditions: str  # canonical text of the changelog's and the changeset's preconditions; "" if none


_UNKNOWN = Entry(True, "")


def read_entry(roots: list[Path], changeset: Changeset) -> Entry:
    path = next((root / changeset.path for root in roots if (root / changeset.path).is_file()), None)
    if path is None:
        return _UNKNOWN
    try:
        found = _find(path, changeset.id, changeset.author)
    except (OSError, ValueError, ElementTree.ParseError, yaml.YAMLError):
        return _UNKNOWN
    if found is None:
        return _UNKNOWN
    attrs, preconditions = found
    return Entry(any(str(attrs.get(key, "")).lower() == "true" for key in _VOLATILE_KEYS), preconditions)


def _find(path: Path, id_: str, author: str) -> tuple[dict[str, Any], str] | None:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return _find_xml(ElementTree.fromstring(text), id_, author)
    if suffix in (".yaml", ".yml", ".json"):
        return _find_document(json.loads(text) if suffix == ".json" else yaml.safe_load(text), id_, author)
    if suffix == ".sql":
        return _find_sql(text, id_, author)
    raise ValueError(f"unknown changelog format {suffix}")


def _local(element: ElementTree.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _canonical_xml(element: ElementTree.Element | None) -> list[Any] | None:
    """An element as nested [tag, sorted attributes, text, children]: layout and comments drop out."""
    if element is None:
        return None
    return [_local(element), sorted(element.attrib.items()), (element.text or "").strip(),
            [_canonical_xml(child) for child in element]]


def _find_xml(root: ElementTree.Element, id_: str, author: str) -> tuple[dict[str, Any], str] | None:
    outer = _canonical_xml(next((c for c in root if _local(c) == "preConditions"), None))
    for element in root.iter():
        if _local(element) == "changeSet" and element.get("id") == id_ and element.get("author") == author:
            inner = _canonical_xml(next((c for c in element if _local(c) == "preConditions"), None))
            return dict(element.attrib), _joined(outer, inner)
    return None


def _find_document(document: Any, id_: str, author: str) -> tuple[dict[str, Any], str] | None:
    entries = (document or {}).get("databaseChangeLog") or []
    outer = next((e["preConditions"] for e in entries if isinstance(e, dict) and "preConditions" in e), None)
    for entry in entries:
        changeset = entry.get("changeSet") if isinstance(entry, dict) else None
        if isinstance(changeset, dict) and str(changeset.get("id")) == id_ and changeset.get("author") == author:
            return changeset, _joined(outer, changeset.get("preConditions"))
    return None


def _find_sql(text: str, id_: str, author: str) -> tuple[dict[str, Any], str] | None:
    headers = list(_SQL_CHANGESET.finditer(text))
    for n, match in enumerate(headers):
        if match["id"] == id_ and match["author"] == author:
            end = headers[n + 1].start() if n + 1 < len(headers) else len(text)
            lines = [line.strip() for line in _SQL_PRECONDITION.findall(text, match.end(), end)]
            return dict(re.findall(r"(\w+):(\S+)", match["attrs"])), _joined(None, lines or None)
    return None


def _joined(outer: Any, inner: Any) -> str:
    """The changelog's and the changeset's preconditions as canonical JSON; "" when neither has any."""
    if outer is None and inner is None:
        return ""
    return json.dumps([outer, inner], sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
