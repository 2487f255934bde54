"""Finding a row by its full id or a unique prefix, inside the caller's org only."""
from __future__ import annotations

import peewee as pw

from ..errors import InvalidArgument, NotFound

MIN_PREFIX = 8


def by_id_or_prefix(model: type[pw.Model], id_field: pw.Field, org: str, ref: str, what: str) -> pw.Model | None:
    """The row whose id is ``ref``, or the only one whose id starts with it (8+ characters).

    Another org's rows are invisible: they answer exactly like ids that do not exist."""
    in_org = model.org == org
    row = model.get_or_none(in_org & (id_field == ref))
    if row is None and len(ref) >= MIN_PREFIX:
        # distinct ids: a state has a row per host holding a copy, and that is one state
        ids = [getattr(r, id_field.name) for r in
               model.select(id_field).where(in_org & id_field.startswith(ref.lower())).distinct().limit(2)]
        if len(ids) > 1:
            raise InvalidArgument(f"{what} prefix {ref} is ambiguous")
        row = model.get_or_none(in_org & (id_field == ids[0])) if ids else None
    return row


def require(row: pw.Model | None, what: str, ref: str) -> pw.Model:
    if row is None:
        raise NotFound(f"{what} {ref} not found")
    return row
