"""Shell completion for bash, zsh and fish: ``sqlrs completion SHELL`` prints the script; the
shell then asks ``sqlrs`` itself (``_SQLRS_COMPLETE=<shell>_complete``) what may come next.

bash splits the word being completed at every ``:`` (``COMP_WORDBREAKS``), so ``prepare:p``
reaches a completion function as ``prepare``, ``:``, ``p``. The bash script here reads the
command line itself (up to the cursor) instead of bash's words, and hands back each candidate
without the part before the last ``:`` of the word, which bash keeps in place. zsh and fish see
the whole word; click's own scripts serve them (zsh's escapes the ``:`` its menus use).
"""
from __future__ import annotations

from click.shell_completion import BashComplete, add_completion_class

SHELLS = ("bash", "zsh", "fish")

_BASH = r"""%(complete_func)s() {
    local IFS=$'\n'
    local line=${COMP_LINE:0:COMP_POINT}
    local cur=${line##*[[:space:]]}
    local -a words
    read -r -d '' -a words <<< "${line// /$'\n'}"
    local cword=${#words[@]}
    [[ -n $cur ]] && cword=$((cword - 1))
    local keep=""
    [[ $COMP_WORDBREAKS == *:* && $cur == *:* ]] && keep=${cur%%"${cur##*:}"}
    local response completion type value
    response=$(env COMP_WORDS="$line" COMP_CWORD=$cword %(complete_var)s=bash_complete "$1")
    COMPREPLY=()
    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"
        if [[ $type == dir ]]; then
            COMPREPLY=(); compopt -o dirnames; return 0
        elif [[ $type == file ]]; then
            COMPREPLY=(); compopt -o default; return 0
        elif [[ $type == plain ]]; then
            COMPREPLY+=("${value#"$keep"}")
        fi
    done
    return 0
}

complete -o nosort -F %(complete_func)s %(prog_name)s
"""


class ColonSafeBash(BashComplete):
    """Click's bash completion, with the word under the cursor read from the command line."""

    source_template = _BASH


def register() -> None:
    add_completion_class(ColonSafeBash, "bash")


def script(shell: str, cli, prog_name: str = "sqlrs") -> str:
    """The completion script for ``shell``, to source from the shell's start-up file."""
    from click.shell_completion import get_completion_class
    register()
    cls = get_completion_class(shell)
    assert cls is not None
    return cls(cli, {}, prog_name, f"_{prog_name.upper()}_COMPLETE").source()
