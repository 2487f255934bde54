"""The command line itself: usage errors and their exit codes, decided before any appliance is needed."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import exit_codes
from appliance.cli.main import cli


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke `sqlrs` in an empty directory with no config file and no SQLRS_* environment."""
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "SQLRS_URL": None, "SQLRS_TOKEN": None,
           "SQLRS_TOKEN_FILE": None, "SQLRS_OUTPUT": None}

    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, list(args), env=env, input=input)
    return invoke


def closed_port_url() -> str:
    """A loopback URL nothing listens on: the port was just bound and released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_help_documents_the_exit_codes(run):
    result = run("--help")
    assert result.exit_code == 0 and "Exit codes:" in result.output and "4  a delete was blocked" in result.output


def test_every_verb_is_listed_in_help(run):
    output = run("--help").output
    assert all(verb in output for verb in ("prepare:psql", "plan:psql", "run:psql", "watch", "ls", "rm",
                                            "status", "cancel", "extend"))


def test_a_missing_local_file_is_a_usage_error_naming_the_file(run):
    result = run("--url", closed_port_url(), "prepare:psql", "--", "-f", "missing.sql")
    assert result.exit_code == exit_codes.USAGE and "missing.sql" in result.output


def test_connection_flags_in_prepare_args_are_a_usage_error(run):
    result = run("--url", closed_port_url(), "prepare:psql", "--", "-h", "elsewhere", "-c", "select 1")
    assert result.exit_code == exit_codes.USAGE and "error: invalid_argument:" in result.output


def test_prepare_without_psql_args_is_a_usage_error(run):
    assert run("prepare:psql").exit_code == exit_codes.USAGE


def test_an_unreachable_appliance_exits_3_and_names_the_url(run):
    url = closed_port_url()
    result = run("--url", url, "ls")
    assert result.exit_code == exit_codes.UNAVAILABLE and url in result.output


def test_a_short_rm_prefix_is_rejected_before_contacting_the_appliance(run):
    result = run("--url", closed_port_url(), "rm", "abc")
    assert result.exit_code == exit_codes.USAGE and "too short" in result.output


def test_run_psql_rejects_a_host_flag_before_contacting_the_appliance(run):
    result = run("--url", closed_port_url(), "run:psql", "--", "-h", "elsewhere")
    assert result.exit_code == exit_codes.USAGE and "--host" in result.output


def test_an_explicit_config_file_that_does_not_exist_is_a_usage_error(run, tmp_path: Path):
    result = run("--config", str(tmp_path / "nope.toml"), "ls")
    assert result.exit_code == exit_codes.USAGE and "does not exist" in result.output


def test_the_config_file_url_is_used_when_no_flag_or_env_gives_one(run, tmp_path: Path):
    url = closed_port_url()
    (tmp_path / "config" / "sqlrs").mkdir(parents=True)
    (tmp_path / "config" / "sqlrs" / "config.toml").write_text(f'url = "{url}"\n')
    result = run("ls")
    assert result.exit_code == exit_codes.UNAVAILABLE and url in result.output


def test_an_unknown_output_format_is_a_usage_error(run):
    assert run("--output", "yaml", "ls").exit_code == exit_codes.USAGE


def test_verb_options_given_before_the_verb_are_rejected(run):
    assert run("--recurse", "rm", "abcdef00").exit_code == exit_codes.USAGE


def test_extend_requires_a_ttl(run):
    assert run("extend", "abcdef00").exit_code == exit_codes.USAGE


def test_the_sqlrs_process_loads_none_of_the_http_librarys_unused_parts(tmp_path: Path):
    """httpx and httpcore import these when installed (h2 is, for the API server); the command
    never uses them, and they cost more to import than the rest of a prepare."""
    (tmp_path / "schema.sql").write_text("create table t (i int);\n")
    probe = ("import sys, appliance.cli as c; sys.argv = ['sqlrs', 'prepare:psql', '--', '-f', 'schema.sql']\n"
             "try:\n    c.main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print(sorted(m for m in ('h2', 'trio', 'anyio', 'httpx._main', 'click', 'httpx') if sys.modules.get(m)))\n"
             "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SQLRS_URL": closed_port_url(), "SQLRS_TOKEN": "x"})
    assert done.returncode == exit_codes.UNAVAILABLE, done.stderr
    assert done.stdout.strip() == "['click', 'httpx']"


def test_global_options_may_follow_the_verb(run):
    url = closed_port_url()
    result = run("ls", "--output", "json", "--url", url)
    assert result.exit_code == exit_codes.UNAVAILABLE and url in result.output  # parsed, then no appliance


def test_a_global_option_after_the_verb_wins_over_the_same_one_before_it(run):
    before, after = closed_port_url(), closed_port_url()
    result = run("--url", before, "status", "--url", after)
    assert after in result.output and before not in result.output


def test_global_options_after_a_verb_of_a_sub_group_are_taken_too(run):
    url = closed_port_url()
    assert url in run("cache", "status", "--url", url).output


def test_global_options_after_the_psql_arguments_are_psql_arguments(run):
    result = run("--url", closed_port_url(), "plan:psql", "--", "-c", "select 1", "--url", "x")
    assert result.exit_code == exit_codes.USAGE  # psql has no --url: refused when the args are read
