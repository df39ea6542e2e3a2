from typing import Any

import pytest

from tests.conftest import login_client
from tests.jobs.conftest import probe, redis_broker  # noqa: F401 - shared fixtures


@pytest.fixture
def login() -> Any:
    return login_client
