"""The entry layer's own modules: where a request starts before any app runs.

``videoplatform/{urls,wsgi,asgi,celery}.py`` keep their fixed names beside this package; they and
the modules here may import the apps and the foundation. Nothing in an app or in the foundation
imports them (tests/test_architecture.py).
"""
