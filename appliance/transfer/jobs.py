"""Running one export or import (a ``Transfer`` row) on the worker of the host it was placed on.

The worker claims the row (``queued`` -> ``running``, once), streams with a ``Progress`` that
a side thread records every ``transfer_progress_seconds`` (``bytes_done`` and the heartbeat in
one small update, never from the streaming thread), and records the end: ``succeeded`` with
the manifest, or ``failed`` with the error's code and message. A worker killed midway leaves
the row ``running`` with a stale heartbeat: the reconciler fails it (``worker_lost``).

May import: what ``transfer`` may (``context`` and below).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.control.db import retry_while_unavailable, write_transaction
from appliance.control.models import Transfer, utcnow
from appliance.errors import ApplianceError, InternalError
from appliance.logs import log_context
from appliance.transfer.manifest import Manifest
from appliance.transfer.streams import Progress, export_state, import_state, read_manifest

if TYPE_CHECKING:
    from appliance.context import AppContext

log = logging.getLogger(__name__)


class RecordedProgress(Progress):
    """Counts in the streaming thread; ``flush`` (the side thread) writes what changed."""

    def __init__(self, transfer_id: str) -> None:
        self.transfer_id = transfer_id
        self.done, self.expected = 0, None  # type: int, int | None
        self._written: tuple[int, int | None] | None = None
        self._lock = threading.Lock()

    def total(self, nbytes: int) -> None:
        with self._lock:
            self.expected = nbytes

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes

    def flush(self) -> None:
        with self._lock:
            now = (self.done if self.expected is None else min(self.done, self.expected), self.expected)
        values: dict = {"heartbeat_at": utcnow()}
        if now != self._written:
            values.update(bytes_done=now[0], bytes_total=now[1])
        Transfer.update(**values).where((Transfer.transfer_id == self.transfer_id)
                                        & (Transfer.status == "running")).execute()
        self._written = now


@dataclass(frozen=True)
class Outcome:
    status: str
    seconds: float
    stream_bytes: int | None  # what went to or came from the object store
    raw_bytes: int | None  # before compression


def run_transfer(ctx: AppContext, transfer_id: str) -> Outcome | None:
    """Run a queued transfer to its end; None when it was not queued (taken, or over)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    now = utcnow()
    with write_transaction(ctx.db):
        claimed = Transfer.update(status="running", started_at=now, heartbeat_at=now, worker=worker).where(
            (Transfer.transfer_id == transfer_id) & (Transfer.status == "queued")).execute()
    if not claimed:
        log.info("transfer %s is not queued any more: nothing to do", transfer_id)
        return None
    transfer = Transfer.get_by_id(transfer_id)
    with log_context(org=transfer.org):
        return _run(ctx, transfer)


def _run(ctx: AppContext, transfer: Transfer) -> Outcome:
    progress = RecordedProgress(transfer.transfer_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ctx.settings.transfer_progress_seconds):
            try:
                progress.flush()
            except Exception as exc:  # never let the heartbeat die silently
                log.warning("progress of transfer %s not recorded: %s", transfer.transfer_id, exc)
    side = threading.Thread(target=beat, daemon=True, name=f"transfer-{transfer.transfer_id[:8]}")
    side.start()
    started = time.monotonic()
    manifest: Manifest | None = None
    error: ApplianceError | None = None
    try:
        if transfer.kind == "export":
            manifest = export_state(ctx, transfer.org, transfer.state_id, progress)
        else:
            import_state(ctx, transfer.org, transfer.state_id, progress)
            manifest = read_manifest(ctx.objects, transfer.org, transfer.state_id)
    except ApplianceError as exc:
        error = exc
    except Exception as exc:  # a bug or an unexpected platform failure: say so, keep details out
        log.exception("transfer %s failed unexpectedly", transfer.transfer_id)
        error = InternalError(f"internal error: {type(exc).__name__}: {exc}")
    finally:
        stop.set()
        side.join(timeout=5)
    seconds = time.monotonic() - started
    retry_while_unavailable(lambda: _finish(ctx, transfer, progress, manifest, error),
                            what=f"recording the end of transfer {transfer.transfer_id}",
                            give_up_after=ctx.settings.control_db_retry_seconds)
    if error is not None:
        log.warning("transfer %s (%s of state %s) failed: %s: %s", transfer.transfer_id, transfer.kind,
                    transfer.state_id, error.code, error.message)
        return Outcome("failed", seconds, None, None)
    log.info("transfer %s (%s of state %s) succeeded in %.1f s", transfer.transfer_id, transfer.kind,
             transfer.state_id, seconds)
    return Outcome("succeeded", seconds, manifest.stream_bytes if manifest else None,
                   manifest.uncompressed_bytes if manifest else None)


def _finish(ctx: AppContext, transfer: Transfer, progress: RecordedProgress, manifest: Manifest | None,
            error: ApplianceError | None) -> None:
    values: dict = {"finished_at": utcnow(), "heartbeat_at": utcnow()}
    if error is None:
        total = progress.expected if progress.expected is not None else progress.done
        if transfer.kind == "export":
            total = progress.done  # the estimate (the state's size) gives way to what was streamed
        values.update(status="succeeded", bytes_done=total, bytes_total=total,
                      manifest_json=json.dumps(manifest.to_dict()) if manifest else None)
    else:
        values.update(status="failed", error_code=error.code, error_message=error.message,
                      bytes_done=progress.done)
    with write_transaction(ctx.db):
        Transfer.update(**values).where((Transfer.transfer_id == transfer.transfer_id)
                                        & (Transfer.status == "running")).execute()


def measure_export(ctx: AppContext, org: str, state_id: str) -> Outcome:
    """Export one state here and say how long it took and how big it came out (for a
    benchmark): no queue, no row."""
    started = time.monotonic()
    manifest = export_state(ctx, org, state_id)
    return Outcome("succeeded", time.monotonic() - started, manifest.stream_bytes, manifest.uncompressed_bytes)
