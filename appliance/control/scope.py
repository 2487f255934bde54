"""The data-access layer the API reads through: every query already filtered by one org.

Routes get an ``OrgScope`` for the caller's org and never query a tenant model directly (a test
holds them to it), so no route can forget the org: another org's rows are simply absent, and a
lookup of one answers exactly like an id that does not exist.
"""
from __future__ import annotations

from typing import Any

import peewee as pw

from appliance.control.models import PrepareJob, State, Task
from appliance.errors import InvalidArgument, NotFound

MIN_PREFIX = 8


class OrgScope:
    def __init__(self, org: str):
        self.org = org

    def select(self, model: type[pw.Model], *fields: Any) -> pw.ModelSelect:
        return model.select(*fields).where(model.org == self.org)

    def shared_states(self) -> pw.ModelSelect:
        """Other orgs' copies of the states they shared with this org (read-only)."""
        from appliance.control.sharing import shared_with
        shared = shared_with(self.org)
        owners = sorted(set(shared.values()))
        query = State.select().where(State.state_id.in_(list(shared)) & State.org.in_(owners))
        return query if owners else query.where(False)

    def tasks(self, *fields: Any) -> pw.ModelSelect:
        """Tasks carry no org of their own: they are the org's through their job."""
        return Task.select(*(fields or (Task,))).join(PrepareJob).where(PrepareJob.org == self.org)

    def get(self, model: type[pw.Model], what: str, ref: str, *conditions: Any) -> pw.Model:
        row = self.select(model).where(*conditions).first() if conditions else None
        if row is None:
            raise NotFound(f"{what} {ref} not found")
        return row

    def by_id_or_prefix(self, model: type[pw.Model], id_field: pw.Field, ref: str, what: str) -> pw.Model:
        """The row whose id is ``ref``, or the only one whose id starts with it (8+ characters).
        Ids are compared distinct: a state has a row per host holding a copy, and is one state."""
        row = self.select(model).where(id_field == ref).first()
        if row is None and len(ref) >= MIN_PREFIX:
            ids = [getattr(r, id_field.name) for r in
                   self.select(model, id_field).where(id_field.startswith(ref.lower())).distinct().limit(2)]
            if len(ids) > 1:
                raise InvalidArgument(f"{what} prefix {ref} is ambiguous")
            row = self.select(model).where(id_field == ids[0]).first() if ids else None
        if row is None:
            raise NotFound(f"{what} {ref} not found")
        return row
