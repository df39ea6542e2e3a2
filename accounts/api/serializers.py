"""Request and response shapes of the auth endpoints.

Input is strict: strings must be JSON strings and booleans JSON booleans (DRF would turn 123
into "123" and "yes" into True), and a field the endpoint does not know is a 400 naming it.
"""

from __future__ import annotations

from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from accounts.models import User
from videoplatform.api.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictInputSerializer,
)

PASSWORD_MAX_LENGTH = 256  # hashing cost does not grow with length, but a body should stay small


def _no_at_sign(value: str) -> None:
    # A username containing "@" could equal another account's email, and login accepts both.
    if "@" in value:
        raise serializers.ValidationError("A username cannot contain '@'.")


class RegisterSerializer(StrictInputSerializer):
    username = StrictCharField(max_length=150, validators=[UnicodeUsernameValidator(), _no_at_sign])
    email = StrictEmailField(max_length=254)
    password = StrictCharField(
        max_length=PASSWORD_MAX_LENGTH,
        write_only=True,
        trim_whitespace=False,
        style={"input_type": "password"},
    )
    display_name = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    show_adult_content = StrictBooleanField(required=False, default=False)


class LoginSerializer(StrictInputSerializer):
    username = StrictCharField(max_length=254, help_text="A username or an email address.")
    password = StrictCharField(
        max_length=PASSWORD_MAX_LENGTH,
        write_only=True,
        trim_whitespace=False,
        style={"input_type": "password"},
    )


class UserUpdateSerializer(StrictInputSerializer):
    display_name = StrictCharField(max_length=100, required=False, allow_blank=True)
    show_adult_content = StrictBooleanField(required=False)


class UserSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """The signed-in user. Every field is in the token snapshot: rendering it costs no query."""

    class Meta:
        model = User
        fields = ["id", "username", "email", "display_name", "show_adult_content", "is_staff", "created_at"]
        read_only_fields = fields


class AuthTokenSerializer(serializers.Serializer):  # type: ignore[type-arg]
    token = serializers.CharField(help_text="Shown once. Send as `Authorization: Bearer <token>`.")
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_at = serializers.DateTimeField()
    user = UserSerializer()
