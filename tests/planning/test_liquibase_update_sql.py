"""What ``update-sql`` prints, parsed into changesets (no Liquibase runs here)."""
from __future__ import annotations

import json

from appliance.planning.liquibase.update_sql import parse_update_sql


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
