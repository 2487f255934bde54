"""``open_liquibase``: the liquibase_runner setting names the driver."""
from __future__ import annotations

import pytest

from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.container import ContainerLiquibase
from appliance.liquibase_runners.host import LiquibaseCli
from appliance.liquibase_runners.select import open_liquibase
from appliance.settings import Settings
from tests.support.recording import RecordingRunner


@pytest.mark.parametrize("setting, driver", [("host", LiquibaseCli), ("docker", ContainerLiquibase)])
def test_open_liquibase_picks_the_driver_the_liquibase_runner_setting_names(setting, driver):
    opened = open_liquibase(Settings(liquibase_runner=setting), RecordingRunner(), Sandbox(False))
    assert type(opened) is driver
