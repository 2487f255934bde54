"""What ``update-sql`` prints, parsed into changesets (no Liquibase runs here)."""
from __future__ import annotations

import json

from appliance.planning.liquibase.update_sql import changelog_tables_sql, parse_update_sql


def test_output_without_a_changelog_row_is_keyed_by_its_sql():
    (changeset,) = parse_update_sql("-- Changeset a.sql::1::me\nSET SEARCH_PATH TO public;\n\ncreate table t (i int);\n")
    assert changeset.checksum is None and changeset.key.startswith("sql:") and changeset.sql == "create table t (i int);"


def test_a_recorded_comment_keeps_its_commas_quotes_and_line_breaks():
    (changeset,) = parse_update_sql(
        "-- Changeset a.xml::1::me\ncreate table t (i int);\nINSERT INTO public.databasechangelog (ID, AUTHOR, "
        "FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, COMMENTS, DEPLOYMENT_ID) VALUES ('1', 'me', 'a.xml', NOW(), "
        "7, '9:ab', 'one, it''s\ntwo', '123');\n")
    assert json.loads(changeset.recorded) == {"ID": "1", "AUTHOR": "me", "FILENAME": "a.xml", "MD5SUM": "9:ab",
                                              "COMMENTS": "one, it's\ntwo"}


PREAMBLE = """SET SEARCH_PATH TO public, "$user","public";

-- Create Database Lock Table
CREATE TABLE public.databasechangeloglock (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP \
WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (ID));

-- Initialize Database Lock Table
DELETE FROM public.databasechangeloglock;

INSERT INTO public.databasechangeloglock (ID, LOCKED) VALUES (1, FALSE);

-- Lock Database
UPDATE public.databasechangeloglock SET LOCKED = TRUE, LOCKEDBY = 'host', LOCKGRANTED = NOW() WHERE ID = 1;

-- Create Database Change Log Table
CREATE TABLE public.databasechangelog (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, MD5SUM VARCHAR(35));

-- Changeset a.sql::1::me
CREATE TABLE public.databasechangelog_copy (i int);
"""


def test_the_changelog_tables_are_created_as_liquibase_prints_them_and_nothing_else():
    assert changelog_tables_sql(PREAMBLE).splitlines() == [
        "CREATE TABLE public.databasechangeloglock (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED "
        "TIMESTAMP WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (ID));",
        "INSERT INTO public.databasechangeloglock (ID, LOCKED) VALUES (1, FALSE);",
        "CREATE TABLE public.databasechangelog (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, "
        "MD5SUM VARCHAR(35));"]


def test_no_changelog_tables_when_liquibase_did_not_print_all_of_them():
    assert changelog_tables_sql(PREAMBLE.replace("CREATE TABLE public.databasechangelog (", "-- (")) is None
    assert changelog_tables_sql("-- Changeset a.sql::1::me\ncreate table t (i int);\n") is None
