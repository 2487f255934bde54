"""States made directly on a store and recorded in the Control DB, for tests that need one
without running a build."""
from __future__ import annotations

from appliance.control.models import State

ORG = "default"


def make_state(ctx, state_id: str = "s1") -> None:
    """A committed state holding one file, ``data`` = ``hello``, recorded on ``ctx``'s host."""
    volume = ctx.store.create_volume(ORG, "v1")
    (volume / "data").write_text("hello")
    size = ctx.store.commit_state(ORG, "v1", state_id)
    ctx.store.destroy_volume(ORG, "v1")
    State.create(org=ORG, state_id=state_id, image_id="postgres:15", prepare_kind="psql", task_hash="h",
                 size_bytes=size, host=ctx.host)
