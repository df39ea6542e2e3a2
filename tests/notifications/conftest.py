from tests.jobs.conftest import probe, redis_broker  # noqa: F401 - shared fixtures
