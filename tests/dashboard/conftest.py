"""One gateway with tenant traffic shared by the dashboard's API and browser tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.dashboard.rig import Rig, dashboard_rig


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    async with dashboard_rig(tmp_path_factory.mktemp("dashboard")) as running:
        yield running
