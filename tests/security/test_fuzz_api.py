"""Bad input over every operation of /api/schema (Schemathesis), anonymous and with a bearer token.

The schema is read from the running application, so a new endpoint is fuzzed as soon as it is
routed. Every answer must be a non-5xx that matches the schema: its status is documented, its body
and headers conform, and input that breaks the schema is refused. bench/fuzz.py runs the same
against a live gunicorn with many more examples.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Small enough for CI on two cores; bench/fuzz.py goes further.
MAX_EXAMPLES = 12


def _load_schema() -> Any:
    # Read from the application itself at collection time (no request touches the database).
    loaded = schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application())
    loaded.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    return loaded


schema = _load_schema()
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(autouse=True)
def _private_media(media_storage: Any) -> None:
    """Whatever a fuzzed upload manages to store lands in a folder of the test's own."""


@pytest.fixture(autouse=True)
def _keep_test_connection() -> Any:
    """As Django's test client does: a request must not close the test's transaction's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_user(db: Any) -> Any:
    return UserFactory()


@schema.parametrize()
@FUZZ_SETTINGS
def test_anonymous_requests_get_documented_answers(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_authenticated_requests_get_documented_answers(case: Any, fuzz_user: Any) -> None:
    # A fresh real token per case: a fuzzed POST /api/auth/logout revokes the one it is sent with.
    token = services.token_issue(user=fuzz_user).token
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
