"""The code a bench compares against: an earlier revision of this repository, run in the same
process tree as today's, so "before" and "after" are measured in one run on one machine.

``checkout(rev, into)`` extracts the revision's packages (``git archive``; no work tree is
touched). A process started with :func:`env` imports them first: the appliance (``python -m
appliance.service.main``), its workers, and the CLI (:func:`cli_command`). :func:`venv_cli`
instead installs a revision's package (or today's tree) into a virtual environment of its own, as
a user's machine has the ``sqlrs`` command: from a wheel, not from a checkout.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("appliance", "jobs", "sqlrs_client")  # those a revision has (the client came later)


def checkout(rev: str, into: Path) -> Path:
    """The packages of ``rev`` under ``into/<rev>``; returns that directory."""
    tree = into / f"rev-{rev}"
    tree.mkdir(parents=True)
    present = [p for p in PACKAGES
               if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{rev}:{p}"], capture_output=True).returncode == 0]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *present], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    tree.chmod(0o755)
    return tree


def env(tree: Path) -> dict[str, str]:
    """Environment entries that make a Python process import ``tree``'s packages before the
    installed ones (the search path is read before installed finders are asked), and before the
    working directory's: ``python -m`` started in this checkout would otherwise import today's."""
    return {"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}


def cli_command(tree: Path) -> list[str]:
    """A command that runs ``tree``'s ``sqlrs`` as its console script would."""
    launcher = tree / "sqlrs"
    launcher.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(tree)!r})\n"
                        "from appliance.cli.main import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    return [str(launcher)]


def venv_cli(rev: str | None, into: Path) -> list[str]:
    """``sqlrs`` of ``rev`` (today's tree for None), installed with its dependencies (pinned by
    today's constraints.txt) into a virtual environment under ``into``: what ``pip install`` or the
    Ansible role gives a user, without this checkout's editable finder or the site's start-up hooks."""
    name = rev or "tree"
    source = ROOT
    if rev is not None:
        source = into / f"src-{rev}"
        source.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(source, filter="data")
    venv = into / f"venv-{name}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-c", str(ROOT / "constraints.txt"), str(source)], check=True, capture_output=True,
                   env={**os.environ, "PIP_NO_CACHE_DIR": "0"})
    return [str(venv / "bin" / "sqlrs")]
