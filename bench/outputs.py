"""Where every benchmark leaves its results: a markdown table, a chart and the raw samples."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def write_outputs(out: Path, stem: str, text: str, *, chart: Callable[[Path], None] | None = None,
                  samples: Sequence[Any] | None = None) -> None:
    """Write ``<stem>.md`` (and ``<stem>.png``, ``<stem>.json``) to ``out`` and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{stem}.md"]
    written[0].write_text(text)
    if chart is not None:
        written.append(out / f"{stem}.png")
        chart(written[-1])
    if samples is not None:
        written.append(out / f"{stem}.json")
        written[-1].write_text(json.dumps([dataclasses.asdict(s) if dataclasses.is_dataclass(s) else s
                                           for s in samples], indent=1))
    print("\n" + text)
    print("wrote " + ", ".join(p.name for p in written) + f" to {out}")


def start_run(prefix: str, why_root: str) -> Path | None:
    """What every bench does first: insist on root (it mounts stores and runs Postgres as another
    user), turn SIGTERM into KeyboardInterrupt so its cleanup runs, and make a scratch directory
    the unprivileged Postgres user can traverse. None (after saying why) when not root."""
    import os
    import signal
    import sys
    import tempfile
    if os.geteuid() != 0:
        print(f"the bench runs as root: {why_root}", file=sys.stderr)
        return None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    return base
