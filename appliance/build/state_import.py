"""Importing states another host exported, when that beats building them here.

Asked once per job, at the first step this host lacks. A failed import is not a failed job:
the steps are built instead, and the job's log says why.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appliance.control.models import Task
from appliance.errors import Cancelled
from appliance.orchestrator import parking
from appliance.orchestrator.locks import build_lock
from appliance.orchestrator.placement import import_choice
from appliance.transfer.streams import import_state

if TYPE_CHECKING:
    from appliance.build.job import JobRun

log = logging.getLogger(__name__)


def import_if_cheaper(run: JobRun, first_missing: Task) -> None:
    chain = [t.output_state_id for t in Task.select(Task.output_state_id)
             .where((Task.job == run.job) & (Task.type == "state_execute")
                    & (Task.position >= first_missing.position)).order_by(Task.position)]
    choice = import_choice(run.ctx, run.org, chain)
    if choice is None:
        return
    built = "unknown" if choice.build_seconds is None else f"{choice.build_seconds:.1f} s"
    estimate = f"estimated {choice.import_seconds:.1f} s; building them took {built}"
    if not choice.cheaper:
        run.note(first_missing, f"rebuilding {choice.steps} exported state(s): faster than importing ({estimate})")
        return
    run.note(first_missing, f"import: {choice.steps} state(s) up to {choice.state_id[:12]} from the object store "
                            f"({estimate})")
    try:
        with run.locks.hold(build_lock("state", run.ctx.host, run.org, choice.state_id), cancelled=run.cancelled):
            import_state(run.ctx, run.org, choice.state_id)
    except (Cancelled, parking.Parked):
        raise
    except Exception as exc:  # the object store is away, a stream is corrupt, ...: build instead
        log.warning("job %s: import of state %s failed: %s", run.job.job_id, choice.state_id, exc)
        run.note(first_missing, f"import failed ({getattr(exc, 'message', exc)}); building the steps instead")
