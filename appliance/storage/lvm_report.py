"""Parsing of ``lvs --reportformat json`` output, as lvm2 2.03.16 (Debian 12) prints it.

That version has no ``json_std``: every value is a string (``"lv_size":"53687091200"``), a
percentage is ``"12.34"`` and is ``""`` when the LV is inactive, tags are one comma-separated
string. Sizes are only plain integers when the report was asked for with
``--units b --nosuffix``, so the argv that does that lives here too, next to the parser.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# The columns every report of ours asks for; ``LvRecord`` reads exactly these.
REPORT_FIELDS = ("lv_name", "vg_name", "lv_attr", "lv_size", "pool_lv", "origin", "data_percent",
                 "metadata_percent", "lv_tags")


def lvs_argv(targets: Iterable[str], fields: Iterable[str] = REPORT_FIELDS) -> list[str]:
    """``lvs`` asking for machine-readable sizes in bytes for ``targets`` (``vg/lv`` or ``@tag``)."""
    return ["lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
            "-o", ",".join(fields), *targets]


class ReportFormatError(ValueError):
    """The report is not what lvm2 2.03.16 prints; never guess a size from it."""


@dataclass(frozen=True)
class LvRecord:
    """One row of an ``lvs`` report, with the strings turned into what they mean."""

    name: str
    vg: str
    attr: str
    size_bytes: int
    pool: str
    origin: str
    data_percent: Decimal | None  # None: inactive, lvm2 cannot know
    metadata_percent: Decimal | None
    tags: tuple[str, ...]

    @property
    def is_thin_volume(self) -> bool:
        return self.attr[:1] == "V"

    @property
    def is_thin_pool(self) -> bool:
        return self.attr[:1] == "t"

    @property
    def is_active(self) -> bool:
        return len(self.attr) >= 5 and self.attr[4] == "a"

    @property
    def skips_activation(self) -> bool:
        """The ``k`` flag lvm2 puts on new thin snapshots: plain ``-ay`` will not activate it."""
        return len(self.attr) >= 10 and self.attr[9] == "k"

    @property
    def pool_out_of_data_space(self) -> bool:
        return len(self.attr) >= 9 and self.attr[8] == "D"

    def used_bytes(self) -> int | None:
        """Bytes of the pool this LV maps (size x Data%), or None when lvm2 reports no Data%."""
        if self.data_percent is None:
            return None
        return int(self.size_bytes * self.data_percent / 100)


def parse_lvs_json(text: str) -> list[LvRecord]:
    """All LV rows of a report; raises :class:`ReportFormatError` on any other shape."""
    try:
        document = json.loads(text)
        sections = document["report"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ReportFormatError(f"not an lvs json report: {text[:200]!r}") from exc
    if not isinstance(sections, list):
        raise ReportFormatError("'report' is not a list")
    records = []
    for section in sections:
        for row in section.get("lv", []) if isinstance(section, dict) else []:
            records.append(_record(row))
    return records


def _record(row: object) -> LvRecord:
    if not isinstance(row, dict):
        raise ReportFormatError(f"an lv row is not an object: {row!r}")
    missing = [f for f in REPORT_FIELDS if f not in row]
    if missing:
        raise ReportFormatError(f"lv row lacks {missing}: {row!r}")
    not_strings = [f for f in REPORT_FIELDS if not isinstance(row[f], str)]
    if not_strings:
        raise ReportFormatError(f"lvm2 2.03.16 json has string values only; {not_strings} are not: {row!r}")
    return LvRecord(
        name=row["lv_name"],
        vg=row["vg_name"],
        attr=row["lv_attr"],
        size_bytes=_bytes(row["lv_size"], row),
        pool=row["pool_lv"],
        origin=row["origin"],
        data_percent=_percent(row["data_percent"], row),
        metadata_percent=_percent(row["metadata_percent"], row),
        tags=tuple(t for t in row["lv_tags"].split(",") if t),
    )


def _bytes(value: str, row: dict) -> int:
    if not value.isdigit():
        raise ReportFormatError(f"lv_size {value!r} is not a byte count (was --units b --nosuffix "
                                f"given?): {row!r}")
    return int(value)


def _percent(value: str, row: dict) -> Decimal | None:
    if value == "":
        return None
    try:
        percent = Decimal(value)
    except InvalidOperation as exc:
        raise ReportFormatError(f"{value!r} is not a percentage: {row!r}") from exc
    if not Decimal(0) <= percent <= Decimal(100):
        raise ReportFormatError(f"{value!r} is not a percentage: {row!r}")
    return percent
