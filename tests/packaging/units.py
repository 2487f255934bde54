"""The systemd units under systemd/, read as systemd reads them, and a root to verify them in."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
UNITS = sorted(p.name for p in UNIT_DIR.iterdir() if p.suffix in (".service", ".target"))
HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
VENV_BIN = "/opt/sqlrs/venv/bin"


def directives(unit: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> every value assigned, in order (systemd keys may repeat)."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in (UNIT_DIR / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault((section, key.strip()), []).append(value.strip())
    return found


def value(unit: str, section: str, key: str) -> str | None:
    values = directives(unit).get((section, key))
    return values[-1] if values else None


def words(unit: str, section: str, key: str) -> set[str]:
    return {w for v in directives(unit).get((section, key), []) for w in v.split()}


def make_root(tmp: Path) -> Path:
    """A root for `systemd-analyze --root`: the host's own units (sysinit.target, network-online.target,
    ...), ours where an admin installs them, and the appliance's real console script where the
    venv puts it, so verify checks ExecStart= against a file that exists."""
    host_units = next((d for d in HOST_UNIT_DIRS if (d / "sysinit.target").is_file()), None)
    assert host_units is not None, "no systemd unit directory on this host: install the `systemd` package"
    shutil.copytree(host_units, tmp / "usr/lib/systemd/system", symlinks=True)
    installed = tmp / "etc/systemd/system"
    installed.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(UNIT_DIR / unit, installed / unit)
    script = Path(sys.executable).parent / "sqlrs-appliance"
    assert script.is_file(), f"{script} missing: the package is not installed (scripts/install-deps)"
    (tmp / VENV_BIN.lstrip("/")).mkdir(parents=True)
    shutil.copy(script, tmp / VENV_BIN.lstrip("/") / "sqlrs-appliance")
    return tmp


def instance(unit: str) -> str:
    """A loadable name: templates need an instance to be verified."""
    return unit.replace("@.", "@1.")
