"""Human rendering: states as a tree by parent, delete results with their blocking reasons."""
from __future__ import annotations

from appliance.cli.output import delete_tree_lines, instance_status, short, state_tree_lines


def state(state_id: str, parent: str | None, created: str, summary: str) -> dict:
    return {"state_id": state_id, "parent_state_id": parent, "image_id": "postgres:15", "prepare_kind": "psql",
            "summary": summary, "size_bytes": 2048, "created_at": created, "refcount": 1}


A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)


def test_children_are_drawn_under_their_parent():
    lines = state_tree_lines([state(A, None, "1", "-f a.sql"), state(B, A, "2", "-f b.sql"),
                              state(C, B, "3", "-f c.sql")])
    prefixes = ["a" * 12 + "  ", "└── " + "b" * 12 + "  ", "    └── " + "c" * 12 + "  "]
    assert [line.startswith(prefix) for line, prefix in zip(lines, prefixes)] == [True, True, True]


def test_siblings_share_a_branch_and_the_last_one_closes_it():
    lines = state_tree_lines([state(A, None, "1", "x"), state(B, A, "2", "y"), state(C, A, "3", "z")])
    assert lines[1].startswith("├── " + "b" * 12) and lines[2].startswith("└── " + "c" * 12)


def test_a_state_whose_parent_is_not_listed_is_a_root_showing_its_image():
    lines = state_tree_lines([state(B, A, "2", "-f b.sql")])
    assert lines == ["b" * 12 + "  [postgres:15]  -f b.sql  2.0 KiB  refs=1"]


def test_long_shows_full_ids():
    lines = state_tree_lines([state(A, None, "1", "x"), state(B, A, "2", "y")], long=True)
    assert lines[0].startswith(A) and lines[1] == "└── " + B + "  y  2.0 KiB  refs=1"


def test_roots_are_ordered_by_creation_time():
    lines = state_tree_lines([state(D, None, "2", "later"), state(C, None, "1", "earlier")])
    assert [line[:12] for line in lines] == ["c" * 12, "d" * 12]


def test_a_blocked_delete_shows_the_reason_on_the_blocking_node():
    root = {"kind": "state", "id": A, "blocked": None, "children": [
        {"kind": "instance", "id": B, "blocked": "active_connections", "connections": 2, "children": []}]}
    assert delete_tree_lines(root) == [
        "state " + "a" * 12, "└── instance " + "b" * 12 + "  connections=2  BLOCKED: active_connections"]


def test_short_ids_keep_twelve_characters_and_a_missing_id_is_a_dash():
    assert (short(A), short(None)) == ("a" * 12, "-")


def test_an_instance_whose_teardown_failed_shows_why_and_that_it_is_retried():
    row = {"status": "deleting", "teardown_attempts": 2,
           "teardown_error": "btrfs exited with 1: ERROR: Could not destroy subvolume: Operation not permitted\nmore"}
    assert instance_status(row) == ("deleting (failed 2x, retrying: btrfs exited with 1: ERROR: Could not destroy "
                                    "subvolume: Operation not permitted)")
