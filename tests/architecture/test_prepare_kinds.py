"""Prepare kinds are one family with two faces: admission (``appliance.orchestrator.kinds``) and
the worker side (``appliance.build.steps``). Each kind has both, under one name."""
from __future__ import annotations

import pytest

from appliance.build.steps import KINDS as STEP_KINDS
from appliance.errors import InvalidArgument
from appliance.orchestrator.kinds import KINDS as ADMISSION_KINDS
from appliance.orchestrator.kinds import kind_of


def test_every_kind_admission_accepts_has_a_worker_side_and_no_other():
    assert list(ADMISSION_KINDS) == list(STEP_KINDS) == ["psql", "lb"]


def test_an_unknown_kind_is_refused_with_the_known_ones_named():
    with pytest.raises(InvalidArgument, match="unknown prepare_kind 'flyway'; expected 'psql' or 'lb'"):
        kind_of("flyway")


def test_a_kind_that_is_not_a_string_is_refused_as_unknown():
    with pytest.raises(InvalidArgument, match="unknown prepare_kind"):
        kind_of(["psql"])
