"""Counters in the Control DB: a batch adds up what its block counted and writes it at the end."""
from __future__ import annotations

import pytest

from appliance.control import counters
from appliance.control.db import write_transaction


def values() -> dict:
    return {(name, tuple(sorted(labels.items()))): value
            for name, rows in counters.read_all().items() for labels, value in rows}


def count_everything(times: int) -> None:
    for _ in range(times):
        counters.increment("sqlrs_test_a", {"x": "1"})
        counters.observe("sqlrs_test_seconds", 0.02, {"kind": "k"})
    counters.increment("sqlrs_test_b", amount=2.5)


def test_a_batch_counts_what_the_same_increments_count_one_by_one(ctx):
    count_everything(3)
    one_by_one = values()
    with write_transaction(ctx.db), counters.batched():
        count_everything(3)
    assert values() == {key: 2 * value for key, value in one_by_one.items()}


def test_a_batch_writes_nothing_until_its_block_ends(ctx):
    with write_transaction(ctx.db), counters.batched():
        count_everything(2)
        assert values() == {}
    assert values()[("sqlrs_test_a", (("x", "1"),))] == 2


def test_a_batch_whose_block_fails_counts_nothing(ctx):
    with pytest.raises(RuntimeError), write_transaction(ctx.db), counters.batched():
        count_everything(2)
        raise RuntimeError("the events were not recorded")
    assert values() == {}
    counters.increment("sqlrs_test_a")
    assert values() == {("sqlrs_test_a", ()): 1}


def test_a_batch_inside_a_batch_is_written_once_by_the_outer_one(ctx):
    with write_transaction(ctx.db), counters.batched():
        with counters.batched():
            counters.increment("sqlrs_test_a")
        assert values() == {}
    assert values() == {("sqlrs_test_a", ()): 1}
