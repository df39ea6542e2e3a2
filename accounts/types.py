"""Names other apps use for the people who make requests."""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth.models import AnonymousUser

from .models import User

# Whoever makes a request: a signed-in user or an anonymous visitor (``request.user``).
Viewer: TypeAlias = User | AnonymousUser
