"""``sqlrs``: the command-line client of the appliance. Every request goes through the Python
client, ``sqlrs_client`` (no second HTTP layer); this package is the command line around it:
verbs, config, progress views, output and exit codes.

May import: ``sqlrs_client``, the foundation (``errors``, ``ids``, ``logs``) and the pure
``planning`` layer; nothing that runs on the server.
"""


def main() -> None:
    """The ``sqlrs`` command. ``sqlrs --version`` answers before the command line parser and the
    HTTP library are loaded (scripts call it to check what is installed); everything else goes
    to :mod:`appliance.cli.main`."""
    import sys

    _skip_unused_imports()
    if sys.argv[1:] == ["--version"]:
        from appliance import __version__
        sys.stdout.write(f"sqlrs, version {__version__}\n")
        return
    from appliance.cli.main import main as run_command
    run_command()


# Modules the HTTP library imports if they are installed, which this synchronous command never
# uses, and which cost more to import than the rest of it: httpx's own command-line tool
# (httpx._main: click, rich, pygments; see encode/httpx#3547), the async backends httpcore
# probes for (trio, anyio) and its HTTP/2 protocol (h2, installed for the API server; the
# command speaks HTTP/1.1). Marked absent, they make those libraries take their documented
# fallbacks. Only the ``sqlrs`` process does this, never a program importing this package.
UNUSED_IN_THE_COMMAND = ("httpx._main", "trio", "anyio", "h2")


def _skip_unused_imports() -> None:
    import sys

    for name in UNUSED_IN_THE_COMMAND:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
