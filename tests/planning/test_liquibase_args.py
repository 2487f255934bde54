"""Liquibase arguments: the update family only, no connection or classpath of the caller's,
and one normal form however Liquibase's options are spelled."""
from __future__ import annotations

import pytest

from appliance.errors import InvalidArgument
from appliance.planning.liquibase.args import parse_liquibase_args


def test_spellings_of_the_same_request_normalise_to_one_command():
    forms = [["update", "--changelog-file", "db/changelog.xml", "--contexts", "dev"],
             ["--changeLogFile=db/changelog.xml", "update", "--context-filter=dev"],
             ["--changelog-file=db/./changelog.xml", "--contexts=dev", "Update"]]
    assert len({parse_liquibase_args(f) for f in forms}) == 1


@pytest.mark.parametrize("option", ["--url=jdbc:postgresql://evil/db", "--username=x", "--password=y",
                                    "--classpath=/tmp/x.jar", "--driver=org.x.Driver", "--defaults-file=x.properties",
                                    "--referenceUrl=jdbc:x"])
def test_the_connection_and_the_classpath_are_the_appliances_to_supply(option):
    with pytest.raises(InvalidArgument, match="not allowed: the appliance supplies"):
        parse_liquibase_args(["update", "--changelog-file=c.xml", option])


@pytest.mark.parametrize("command", ["rollback", "drop-all", "update-sql", "changelog-sync", "execute-sql"])
def test_only_the_update_family_is_accepted(command):
    with pytest.raises(InvalidArgument, match="is not allowed"):
        parse_liquibase_args([command, "--changelog-file=c.xml"])


def test_an_option_not_on_the_list_is_refused_and_the_list_is_named():
    with pytest.raises(InvalidArgument) as error:
        parse_liquibase_args(["update", "--changelog-file=c.xml", "--log-file=/etc/passwd"])
    assert "--changelog-file" in error.value.details["allowed"]


@pytest.mark.parametrize("path", ["/etc/changelog.xml", "../outside.xml", "db/../../x.xml", ""])
def test_the_changelog_must_lie_inside_the_bundle(path):
    with pytest.raises(InvalidArgument, match="relative path inside the source bundle"):
        parse_liquibase_args(["update", f"--changelog-file={path}"])


def test_update_count_needs_a_positive_count_and_update_takes_none():
    assert parse_liquibase_args(["update-count", "--count=3", "--changelog-file=c.xml"]).count == 3
    for bad in (["update-count", "--changelog-file=c.xml"], ["update-count", "--count=0", "--changelog-file=c.xml"],
                ["update", "--count=2", "--changelog-file=c.xml"]):
        with pytest.raises(InvalidArgument, match="count"):
            parse_liquibase_args(bad)


def test_changelog_parameters_are_kept_sorted_and_part_of_the_key():
    command = parse_liquibase_args(["update", "-Dschema=app", "-Downer=me", "--changelog-file=c.xml"])
    assert command.parameters == (("owner", "me"), ("schema", "app"))
    assert ("parameter", "schema=app") in command.key_parts()
    assert command.argv()[1:] == ["update", "-Downer=me", "-Dschema=app"]  # after the command: 4.x wants them there


def test_the_context_and_label_filters_choose_changesets_but_key_none():
    dev = parse_liquibase_args(["update", "--changelog-file=c.xml", "--contexts=dev", "--labels=a"])
    prod = parse_liquibase_args(["update", "--changelog-file=c.xml", "--contexts=prod"])
    assert dev.key_parts() == prod.key_parts() == ()


def test_the_planning_argv_asks_for_the_sql_twin_and_never_a_connection():
    argv = parse_liquibase_args(["update", "--changelog-file=db/c.xml", "--labels=a"]).argv(sql_only=True)
    assert argv == ["--changelog-file=db/c.xml", "update-sql", "--label-filter=a"]
