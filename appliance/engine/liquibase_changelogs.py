"""Which changesets may never be cached: ``runAlways`` and ``runOnChange`` ones.

``update-sql`` does not say, so the changeset's own file is read (XML, YAML, JSON or formatted
SQL). A changeset whose file cannot be read or whose entry cannot be found is treated as
volatile too: guessing "cacheable" could hand out a state that Liquibase would have changed.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import yaml

from .liquibase import Changeset

_VOLATILE_KEYS = ("runAlways", "runOnChange")
_SQL_CHANGESET = re.compile(r"^\s*--\s*changeset\s+(?P<author>[^:\s]+):(?P<id>\S+)(?P<attrs>.*)$", re.M | re.I)


def is_volatile(roots: list[Path], changeset: Changeset) -> bool:
    path = next((root / changeset.path for root in roots if (root / changeset.path).is_file()), None)
    if path is None:
        return True
    try:
        attrs = _attributes(path, changeset.id, changeset.author)
    except (OSError, ValueError, ElementTree.ParseError, yaml.YAMLError):
        return True
    return attrs is None or any(str(attrs.get(key, "")).lower() == "true" for key in _VOLATILE_KEYS)


def _attributes(path: Path, id_: str, author: str) -> dict | None:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        for element in ElementTree.fromstring(text).iter():
            if element.tag.rsplit("}", 1)[-1] == "changeSet" and element.get("id") == id_ \
                    and element.get("author") == author:
                return dict(element.attrib)
        return None
    if suffix in (".yaml", ".yml", ".json"):
        document = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        for entry in (document or {}).get("databaseChangeLog") or []:
            changeset = entry.get("changeSet") if isinstance(entry, dict) else None
            if isinstance(changeset, dict) and str(changeset.get("id")) == id_ and changeset.get("author") == author:
                return changeset
        return None
    if suffix == ".sql":
        for match in _SQL_CHANGESET.finditer(text):
            if match["id"] == id_ and match["author"] == author:
                return dict(re.findall(r"(\w+):(\S+)", match["attrs"]))
        return None
    raise ValueError(f"unknown changelog format {suffix}")
