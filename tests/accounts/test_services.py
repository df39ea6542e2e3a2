"""Service behaviour that the API tests cannot reach directly."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from accounts import services
from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [("racer", "TAKEN@example.com", "email"), ("TAKEN", "racer@example.com", "username")],
)
def test_a_registration_that_loses_a_race_gets_the_field_error(
    monkeypatch: Any, username: str, email: str, field: str
) -> None:
    """Two registrations for one address at once: the database constraint decides, the loser gets a 400."""
    UserFactory(username="taken", email="taken@example.com")
    # The other registration commits between this one's check and its insert.
    monkeypatch.setattr(services, "user_identity_taken", lambda **kwargs: set())

    with pytest.raises(ValidationError) as caught:
        services.user_register(username=username, email=email, password="plum-orbit-lantern-42")

    assert set(caught.value.detail) == {field}  # type: ignore[arg-type]
    assert User.objects.count() == 1
