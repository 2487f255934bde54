"""Shell completion as bash runs it: the script ``sqlrs completion bash`` prints, sourced in a
real bash, asked for the word under the cursor the way bash asks (its words split at ``:``)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli.completion import script
from appliance.cli.main import cli


@pytest.fixture
def sqlrs_on_path(tmp_path: Path) -> str:
    shim = tmp_path / "sqlrs"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m appliance.cli.main \"$@\"\n")
    shim.chmod(0o755)
    return str(tmp_path)


def complete(path: str, line: str, *bash_words: str) -> list[str]:
    """COMPREPLY for ``line`` with the cursor at its end; ``bash_words`` as bash split them."""
    words = " ".join(f"'{w}'" for w in bash_words)
    program = (f'eval "$(sqlrs completion bash)"\nCOMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n'
               f"COMP_WORDS=({words}); COMP_CWORD={len(bash_words) - 1}\n"
               '_sqlrs_completion sqlrs; printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, check=True,
                         env={"PATH": f"{path}:/usr/bin:/bin", "HOME": "/nonexistent"}).stdout
    return [w for w in out.splitlines() if w]


def test_a_verb_with_a_colon_completes_after_the_colon_bash_split_it_at(sqlrs_on_path):
    assert complete(sqlrs_on_path, "sqlrs prepare:p", "sqlrs", "prepare", ":", "p") == ["psql"]


def test_a_verb_prefix_offers_the_whole_verbs(sqlrs_on_path):
    assert complete(sqlrs_on_path, "sqlrs prep", "sqlrs", "prep") == ["prepare:lb", "prepare:psql"]


def test_a_verb_option_completes_after_the_verb(sqlrs_on_path):
    assert "--states" in complete(sqlrs_on_path, "sqlrs ls --st", "sqlrs", "ls", "--st")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_shell_gets_a_script_that_asks_sqlrs(shell):
    assert f"_SQLRS_COMPLETE={shell}_complete" in script(shell, cli)


def test_the_bash_script_is_valid_bash():
    assert shutil.which("bash")
    subprocess.run(["bash", "-n"], input=script("bash", cli), text=True, check=True)
