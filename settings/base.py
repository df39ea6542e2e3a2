"""Every setting of the platform, read from the environment with safe defaults.

This is the one module that reads the environment. ``dev``, ``test`` and ``prod``
only override. With no variable set the platform runs on its embedded default:
SQLite, in-process caches and a Celery broker on the local filesystem.
docs/configuration.md lists every variable.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_urls(name: str) -> list[str]:
    """A comma-separated list of URLs, where one URL may itself list hosts with commas
    (``postgres://u@h1:5432,h2:5432/db``): a piece without ``://`` belongs to the URL before it."""
    urls: list[str] = []
    for item in env_list(name):
        if "://" not in item and urls:
            urls[-1] = f"{urls[-1]},{item}"
        else:
            urls.append(item)
    return urls


def env_networks(name: str, default: str = "") -> list[str]:
    """A comma-separated list of addresses or CIDR networks; a typo stops the start."""
    networks = env_list(name, default)
    for item in networks:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network") from exc
    return networks


# --- Core -------------------------------------------------------------------
INSECURE_SECRET_KEY = "insecure-dev-key-change-me"  # noqa: S105 - refused by settings.prod
SECRET_KEY = env_str("SECRET_KEY", INSECURE_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "health_check",
    "videoplatform",
    "videoplatform.db",
    "videoplatform.jobs",
    "accounts",
    "videos",
    "subscriptions",
    "streaming",
    "streaming.live",
    "webhooks",
]

MIDDLEWARE = [
    "videoplatform.entry.middleware.MetricsMiddleware",
    "videoplatform.entry.middleware.ProbeMiddleware",
    # What a read request will ask Redis for, in one round trip (docs/performance.md).
    "videoplatform.cache.middleware.PrefetchMiddleware",
    # Read routing (read-your-writes pins) and the per-request database figures.
    "videoplatform.db.middleware.DataLayerMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "videoplatform.entry.middleware.CompressionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "videoplatform.entry.middleware.ApiErrorMiddleware",
]

ROOT_URLCONF = "videoplatform.urls"
WSGI_APPLICATION = "videoplatform.wsgi.application"
ASGI_APPLICATION = "videoplatform.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases ----------------------------------------------------------------
# The data layer (docs/data-layer.md): DATABASE_URL is the primary ("default"), possibly
# through PgBouncer in transaction mode (DATABASE_POOLED); DATABASE_DIRECT_URL is the same
# database without the pooler ("direct": migrations, advisory locks); DATABASE_REPLICA_URLS
# are read replicas ("replica1", ...); DATABASE_SHARD_URLS hold the user-sharded data
# ("shard0", ...; none means one shard: the primary). videoplatform.db routes between them.
DATABASE_POOLED = env_bool("DATABASE_POOLED", False)
# Through the pooler a client connection is cheap to keep and costly to reopen (a round trip
# and authentication); the pooler itself recycles the server connections behind it.
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 600 if DATABASE_POOLED else 60)
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 3)
DEFAULT_SQLITE_URL = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
REPLICA_ENGINE = "videoplatform.db.replica_backend"


def parse_database_url(url: str) -> dict[str, Any]:
    """dj_database_url's parse, plus libpq's multi-host form for PostgreSQL.

    ``postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write`` becomes HOST
    ``"h1,h2"`` and PORT ``"5432,5433"``, which Django hands to libpq as they are: a new
    connection tries the hosts in turn and keeps the first that accepts writes, so the app follows
    a promoted standby without a restart (docs/reliability.md, "Primary failover").
    """
    netloc = urlsplit(url).netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return dict(dj_database_url.parse(url, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True))
    entries = [urlsplit(f"//{entry}") for entry in hosts.split(",")]
    first = url.replace(netloc, f"{userinfo}{at}{hosts.split(',')[0]}", 1)
    config = dict(dj_database_url.parse(first, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True))
    config["HOST"] = ",".join(entry.hostname or "" for entry in entries)
    ports = [entry.port for entry in entries]
    # libpq wants one port for all hosts or one per host.
    config["PORT"] = ",".join(str(port or 5432) for port in ports) if any(ports) else ""
    return config


def database_config(url: str, *, pooled: bool = False, replica: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = parse_database_url(url)
    if config["ENGINE"] == "django.db.backends.postgresql":
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
        options.setdefault("application_name", "videoplatform")
        if pooled:
            # Transaction pooling: a cursor or a prepared statement must not outlive its
            # transaction, since the next one may run on another server connection.
            config["DISABLE_SERVER_SIDE_CURSORS"] = True
            options["prepare_threshold"] = None
        if replica:
            # A replica that cannot be reached hands the read to the primary (no error).
            config["ENGINE"] = REPLICA_ENGINE
    elif config["ENGINE"] == "django.db.backends.sqlite3":
        # A writer waits for a lock instead of failing at once (web and worker share the file).
        config.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    return config


DATABASE_URL = env_str("DATABASE_URL", DEFAULT_SQLITE_URL)
if DATABASE_URL == DEFAULT_SQLITE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_DIRECT_URL = env_str("DATABASE_DIRECT_URL")
DATABASE_REPLICA_URLS = env_urls("DATABASE_REPLICA_URLS")
DATABASE_SHARD_URLS = env_urls("DATABASE_SHARD_URLS")
DATABASES: dict[str, dict[str, Any]] = {"default": database_config(DATABASE_URL, pooled=DATABASE_POOLED)}
if DATABASE_DIRECT_URL:
    DATABASES["direct"] = database_config(DATABASE_DIRECT_URL)
    # Used now and then (migrations, locks): a real server connection is not kept idle.
    DATABASES["direct"]["CONN_MAX_AGE"] = 0
    DATABASES["direct"]["TEST"] = {"MIRROR": "default"}
for _index, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _replica = database_config(_url, pooled=DATABASE_POOLED, replica=True)
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica{_index}"] = _replica
for _index, _url in enumerate(DATABASE_SHARD_URLS):
    DATABASES[f"shard{_index}"] = database_config(_url, pooled=DATABASE_POOLED)
REPLICA_DATABASES = [alias for alias in DATABASES if alias.startswith("replica")]
# Shard i is SHARD_DATABASES[i]; a user's shard is md5(user_id)[:8] % SHARD_COUNT.
SHARD_DATABASES = [alias for alias in DATABASES if alias.startswith("shard")] or ["default"]
SHARD_COUNT = len(SHARD_DATABASES)
# Per-user, high-volume models stored by shard: "app_label.model_name" -> the shard-key field.
SHARDED_MODELS = {"streaming.watchevent": "user_id"}
DATABASE_ROUTERS = ["videoplatform.db.router.DataLayerRouter"]
# A replica lagging more than this (seconds, measured on the replica) leaves the rotation.
DB_REPLICA_MAX_LAG = float(env_str("DB_REPLICA_MAX_LAG", "10"))
# How often each process re-measures a replica (seconds); between checks the state is cached.
DB_REPLICA_CHECK_INTERVAL = float(env_str("DB_REPLICA_CHECK_INTERVAL", "5"))
# After a write, the client's reads need a replica that has replayed it (else the primary) for
# this many seconds: the life of its pin. Longer than DB_REPLICA_MAX_LAG + DB_REPLICA_CHECK_INTERVAL,
# after which the lag bound alone keeps lagging replicas away (docs/data-layer.md).
DB_READ_YOUR_WRITES_WINDOW = env_int("DB_READ_YOUR_WRITES_WINDOW", 30)
# The data layer's app: management commands, system checks, Celery and connection hooks.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, sessions ------------------------------------------------------------
# REDIS_URL set: caches, sessions, tokens and throttles live in Redis and are shared by
# every process (no session affinity). Unset: in-process memory (one process, demo use).
REDIS_URL = env_str("REDIS_URL")
REDIS_SOCKET_TIMEOUT = float(env_str("REDIS_SOCKET_TIMEOUT", "0.25"))


def redis_cache(db_suffix: str) -> dict[str, Any]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"vp:{db_suffix}",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            # The database answers when Redis does not; errors are logged, not raised.
            "IGNORE_EXCEPTIONS": db_suffix != "sessions",
        },
    }


if REDIS_URL:
    CACHES: dict[str, dict[str, Any]] = {
        "default": redis_cache("default"),
        "sessions": redis_cache("sessions"),
        "tokens": redis_cache("tokens"),
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    SESSION_CACHE_ALIAS = "sessions"
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "vp"},
        # Without a shared cache every token check reads the database, so that a revoked
        # token stops working in every process at once.
        "tokens": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.db"
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600)

# --- Cache tiers ------------------------------------------------------------------
# L1 in each process in front of L2 (the "default" cache: Redis, or a Redis Cluster with
# REDIS_CLUSTER_URL) in front of PostgreSQL; docs/caching.md. Without Redis they pass through.
REDIS_CLUSTER_URL = env_str("REDIS_CLUSTER_URL")  # startup nodes: redis://a:6379,redis://b:6379
if REDIS_CLUSTER_URL:
    CACHES["default"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_CLUSTER_URL,
        "KEY_PREFIX": "vp:default",
        "OPTIONS": {
            "CLIENT_CLASS": "videoplatform.cache.cluster.RedisClusterClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
        },
    }
CACHE_TIERS_ENABLED = env_bool("CACHE_TIERS_ENABLED", True)
CACHE_TIERS_ALIAS = "default"
CACHE_L1_MAX_ENTRIES = env_int("CACHE_L1_MAX_ENTRIES", 10_000)
CACHE_L1_TTL = env_int("CACHE_L1_TTL", 300)
CACHE_TTLS: dict[str, int] = {
    "user": env_int("CACHE_TTL_USER", 3600),
    "video": env_int("CACHE_TTL_VIDEO", 300),
    "subscription": env_int("CACHE_TTL_SUBSCRIPTION", 3600),
    "plan": env_int("CACHE_TTL_PLAN", 86400),
    "feed": env_int("CACHE_TTL_FEED", 300),  # pages of the public feed: 60 to 3600
    "media": env_int("CACHE_TTL_MEDIA", 3600),  # a video's ready HLS ladder
}
if not 60 <= CACHE_TTLS["feed"] <= 3600 or min(CACHE_TTLS.values()) < 1:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CACHE_TTL_FEED must be 60-3600 seconds, and every CACHE_TTL_* at least 1.")
# An expired L2 entry is still served this long while one request refreshes it.
CACHE_STALE_GRACE = env_int("CACHE_STALE_GRACE", 30)
# How long concurrent misses wait for the one request that loads the entry.
CACHE_STAMPEDE_WAIT = float(env_str("CACHE_STAMPEDE_WAIT", "1.0"))
# A process uses its L1 only while its invalidation feed answered within this many seconds.
CACHE_FEED_LEASE = float(env_str("CACHE_FEED_LEASE", "1.0"))
# After an L2 error, a process reads the database without trying Redis for this long.
CACHE_L2_RETRY_AFTER = float(env_str("CACHE_L2_RETRY_AFTER", "1.0"))
CACHE_STATS_FLUSH_INTERVAL = float(env_str("CACHE_STATS_FLUSH_INTERVAL", "5"))
# A new worker fills its L1 from L2 with this many of the keys the running processes use most,
# before it takes requests (0: off); each serving process reports its own every
# CACHE_HOT_KEYS_INTERVAL seconds (videoplatform/cache/warm.py).
CACHE_HOT_KEYS = env_int("CACHE_HOT_KEYS", 5000)
CACHE_HOT_KEYS_INTERVAL = env_int("CACHE_HOT_KEYS_INTERVAL", 30)
# The most a worker's warm-up (videoplatform/entry/warmup.py) may take before it serves anyway.
WORKER_WARMUP_TIMEOUT = float(env_str("WORKER_WARMUP_TIMEOUT", "10"))

# --- Auth -----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.UsernameOrEmailBackend"]
# The tuned hasher shares the algorithm name "argon2" with Django's own, so it also verifies
# hashes made at Django's default Argon2 cost (the cost is read from each hash) and re-hashes them
# at the tuned cost on the next login; listing Django's Argon2 hasher as well would shadow it.
PASSWORD_HASHERS = [
    "accounts.hashers.TunedArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# Argon2id cost, chosen for the login target (P50 150 ms, P95 300 ms): docs/accounts.md.
ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 2)
ARGON2_MEMORY_COST_KIB = env_int("ARGON2_MEMORY_COST_KIB", 19456)
ARGON2_PARALLELISM = env_int("ARGON2_PARALLELISM", 1)
# Argon2 hashes (logins, password changes) a process computes at once; more wait their turn, so a
# burst of logins cannot take every core from the readers (0: no bound). accounts/hashers.py.
LOGIN_HASH_CONCURRENCY = env_int("LOGIN_HASH_CONCURRENCY", 1)
# A burst of logins: once a process has found its slots taken this many times within a second,
# a login that finds them taken is answered 503 with Retry-After at once instead of waiting,
# holding a request thread readers need (0: logins always wait). Otherwise a login waits for a
# slot at most LOGIN_HASH_WAIT seconds, then 503 too. accounts/hashers.py.
LOGIN_HASH_SHED_AFTER = env_int("LOGIN_HASH_SHED_AFTER", 10)
LOGIN_HASH_WAIT = float(env_str("LOGIN_HASH_WAIT", "1.0"))
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTH_TOKEN_TTL = env_int("AUTH_TOKEN_TTL", 30 * 24 * 3600)
# How long the "tokens" cache may answer for a token without the database (the spec's user
# TTL). Logout, revocation and user changes overwrite the entry at once; this only bounds how
# stale an entry can be if Redis was unreachable while it should have been overwritten.
AUTH_TOKEN_CACHE_TTL = env_int("AUTH_TOKEN_CACHE_TTL", 3600)
# Failed logins per window on one account from one client address (that address is locked out
# of that account), and on one account from every address together: beyond the second, only
# addresses the account logged in from within LOGIN_KNOWN_ADDRESS_TTL may keep trying
# (accounts/throttling.py). Nobody can lock the owner out from another address.
LOGIN_FAILURE_LIMIT_ACCOUNT = env_int("LOGIN_FAILURE_LIMIT_ACCOUNT", 5)
LOGIN_FAILURE_LIMIT_ACCOUNT_GLOBAL = env_int("LOGIN_FAILURE_LIMIT_ACCOUNT_GLOBAL", 50)
LOGIN_KNOWN_ADDRESS_TTL = env_int("LOGIN_KNOWN_ADDRESS_TTL", 30 * 24 * 3600)
LOGIN_FAILURE_LIMIT_IP = env_int("LOGIN_FAILURE_LIMIT_IP", 20)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 300)
REGISTRATION_LIMIT_IP = env_int("REGISTRATION_LIMIT_IP", 10)
REGISTRATION_WINDOW = env_int("REGISTRATION_WINDOW", 3600)
# Number of proxies in front of the app whose X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# API-wide throttles ("N/sec|min|hour"; "off" disables), per user or per anonymous client address.
API_THROTTLE_ANON_RATE = env_str("API_THROTTLE_ANON_RATE", "1200/min")
API_THROTTLE_USER_RATE = env_str("API_THROTTLE_USER_RATE", "2400/min")
# After a client's first request in a window, each process sends its counts to Redis this often
# (seconds) instead of once per request; 0 counts every request in Redis at once.
API_THROTTLE_SYNC_INTERVAL = float(env_str("API_THROTTLE_SYNC_INTERVAL", "0.1"))
# Shared answers to hot API reads, kept per process in front of Django while the L1 entries they
# were built from are unchanged (videoplatform/entry/response_cache.py; 0 entries switches it off).
RESPONSE_CACHE_ENTRIES = env_int("RESPONSE_CACHE_ENTRIES", 10_000)
RESPONSE_CACHE_MAX_BYTES = env_int("RESPONSE_CACHE_MAX_BYTES", 64 * 1024 * 1024)
# Requests whose key (path, query, Host, Accept...) is longer than this are never kept.
RESPONSE_CACHE_MAX_KEY_BYTES = env_int("RESPONSE_CACHE_MAX_KEY_BYTES", 2048)

# --- API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # DRF's JSON renderer and parser, written and read by orjson (same bytes): docs/performance.md.
    "DEFAULT_RENDERER_CLASSES": ["videoplatform.api.rendering.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "videoplatform.api.rendering.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "videoplatform.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["videoplatform.api.throttling.ApiRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "videoplatform API",
    "DESCRIPTION": "REST API of the videoplatform video streaming backend.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the installed package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
API_PAGE_SIZE_DEFAULT = 20
API_PAGE_SIZE_MAX = 100
COMPRESSION_MIN_BYTES = 1024
COMPRESSION_GZIP_LEVEL = 6
# The fast JSON path's switches (docs/performance.md, "The optimisations"): every one keeps the
# answers byte for byte; switch one off only to compare (bench/perf's variants do).
# Rendered bodies each process keeps, keyed by the content they show (at most 32 MiB; 0: none).
API_RENDERED_CACHE_SIZE = env_int("API_RENDERED_CACHE_SIZE", 10_000)
# One bound output serializer per class and context (false: a new serializer per call, as DRF).
API_SERIALIZER_TEMPLATES = env_bool("API_SERIALIZER_TEMPLATES", True)
# DRF's content negotiation remembered per (renderers, format, Accept) (false: every request).
API_NEGOTIATION_MEMO = env_bool("API_NEGOTIATION_MEMO", True)
# Compressed forms of bodies a shared cache may keep, reused (false: compress every body afresh).
COMPRESSION_REUSE = env_bool("COMPRESSION_REUSE", True)

# --- Subscriptions ----------------------------------------------------------------
# The payment processor's gateway, a dotted path to a PaymentGateway (subscriptions/billing.py).
# The default approves every charge without taking money: settings.prod refuses it.
NO_PAYMENT_GATEWAY = "subscriptions.billing.NoPaymentGateway"
SUBSCRIPTIONS_PAYMENT_GATEWAY = env_str("SUBSCRIPTIONS_PAYMENT_GATEWAY", NO_PAYMENT_GATEWAY)
# True in settings.prod: the start-up refuses a gateway that grants without charging.
SUBSCRIPTIONS_PAYMENT_GATEWAY_REQUIRED = False

# --- Celery ---------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
CELERY_FILESYSTEM_BROKER_DIR = VAR_DIR / "celery-broker"
# Results are kept only where something waits for them (operators' round-trip checks).
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or (
    f"file://{VAR_DIR / 'celery-results'}" if CELERY_BROKER_URL.startswith("filesystem://") else None
)
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 3600)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Storage --------------------------------------------------------------------
# Filesystem by default; S3 (or any S3-compatible server) when a bucket is given.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY") or None
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_URL = "/static/"

if AWS_STORAGE_BUCKET_NAME:
    _default_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        # SigV4: presigned part URLs sign their Content-Length (S3 refuses a part of another size).
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "signature_version": "s3v4",
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Internationalisation ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security ---------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Observability ------------------------------------------------------------------
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
# /metrics is not public (docs/operations.md). It answers the addresses of
# METRICS_ALLOWED_NETWORKS (the connection's own address, never X-Forwarded-For) and requests
# carrying "Authorization: Bearer $METRICS_TOKEN"; everyone else gets 401/403. With
# METRICS_PORT, gunicorn listens on that port too and /metrics answers there only (404 on the
# public port), so a NetworkPolicy can open that port to the monitoring namespace alone.
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_PORT = env_int("METRICS_PORT", 0)
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "text")  # "json" in prod
LOG_REPEAT_SECONDS = float(env_str("LOG_REPEAT_SECONDS", "10"))
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # One record per kind per LOG_REPEAT_SECONDS from django-redis's ignored exceptions (each
    # cache call during a Redis outage logs one, with its traceback): videoplatform/logfilters.py.
    "filters": {"repeats": {"()": "videoplatform.logfilters.Repeats", "seconds": LOG_REPEAT_SECONDS}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "INFO"},
        "django_redis.cache": {"filters": ["repeats"]},  # DJANGO_REDIS_LOGGER
        "health_check": {"level": "ERROR"},
    },
}

# --- Media ------------------------------------------------------------------------
# Upload intake, the ffmpeg HLS ladder, signed stream URLs and play counting (streaming/).
# docs/streaming.md explains them; docs/configuration.md lists them.
MEDIA_UPLOAD_MAX_BYTES = env_int("MEDIA_UPLOAD_MAX_BYTES", 5 * 1024**3)
MEDIA_UPLOAD_URL_TTL = env_int("MEDIA_UPLOAD_URL_TTL", 3600)
MEDIA_UPLOAD_MULTIPART_THRESHOLD = env_int("MEDIA_UPLOAD_MULTIPART_THRESHOLD", 100 * 1024**2)
MEDIA_UPLOAD_PART_SIZE = env_int("MEDIA_UPLOAD_PART_SIZE", 64 * 1024**2)
# S3: staged uploads (uploads/…) and incomplete multipart uploads are removed by the bucket's
# lifecycle rule after this many days (manage.py media_bucket_lifecycle sets it).
MEDIA_UPLOAD_STAGING_DAYS = env_int("MEDIA_UPLOAD_STAGING_DAYS", 2)
# The media sweep (beat, hourly): folders of deleted videos untouched this long are removed;
# media files "uploaded" this long without a run get their transcode enqueued again.
MEDIA_ORPHAN_GRACE = env_int("MEDIA_ORPHAN_GRACE", 3600)
MEDIA_STALLED_AFTER = env_int("MEDIA_STALLED_AFTER", 1800)
# The longest video accepted (seconds), as the container declares it and as its packets span
# (measured by a demux pass before transcoding, within MEDIA_DEMUX_TIMEOUT seconds).
MEDIA_MAX_DURATION = env_int("MEDIA_MAX_DURATION", 4 * 3600)
MEDIA_DEMUX_TIMEOUT = env_int("MEDIA_DEMUX_TIMEOUT", 600)
# What one uploader may send, by the code of their current plan (checked at intake, after the
# probe): the longest video (seconds) and the largest source (its short side, e.g. 1080). A plan
# not listed has only the platform-wide limits above.
UPLOAD_PLAN_LIMITS: dict[str, dict[str, int]] = {
    "free": {"max_duration": 10 * 60, "max_resolution": 1080},
    "standard": {"max_duration": 3600, "max_resolution": 1080},
    "premium": {"max_duration": 4 * 3600, "max_resolution": 2160},
}
# Per user and rolling 24 hours: uploads begun, and minutes of accepted video to transcode.
# A plan's entry above may set its own "uploads_per_day" / "transcode_minutes_per_day".
UPLOADS_PER_DAY = env_int("UPLOADS_PER_DAY", 50)
TRANSCODE_MINUTES_PER_DAY = env_int("TRANSCODE_MINUTES_PER_DAY", 8 * 60)
FFMPEG_BINARY = env_str("FFMPEG_BINARY", "ffmpeg")
FFPROBE_BINARY = env_str("FFPROBE_BINARY", "ffprobe")
TRANSCODE_X264_PRESET = env_str("TRANSCODE_X264_PRESET", "veryfast")
TRANSCODE_THREADS = env_int("TRANSCODE_THREADS", 0)  # 0: let ffmpeg decide
TRANSCODE_WORK_DIR = env_str("TRANSCODE_WORK_DIR")  # empty: the system's temporary folder
TRANSCODE_TIME_LIMIT_BASE = env_int("TRANSCODE_TIME_LIMIT_BASE", 300)
TRANSCODE_TIME_LIMIT_PER_SECOND = float(env_str("TRANSCODE_TIME_LIMIT_PER_SECOND", "6"))
TRANSCODE_PROGRESS_INTERVAL = float(env_str("TRANSCODE_PROGRESS_INTERVAL", "2"))
TRANSCODE_THUMBNAIL_INTERVAL = env_int("TRANSCODE_THUMBNAIL_INTERVAL", 10)
STREAM_URL_TTL = env_int("STREAM_URL_TTL", 3600)
# Signed media links expire at the end of a bucket of this many seconds (after STREAM_URL_TTL
# plus the video's duration), so every viewer of a video and plan cap asking within one bucket
# gets the same URLs: one cache key per file at the CDN instead of one per viewer.
STREAM_URL_BUCKET = env_int("STREAM_URL_BUCKET", 900)
# How long a shared cache (the CDN) may keep a file served under a token (s-maxage, never past
# the token's expiry): a link revoked by an access change stops at the CDN within this time.
STREAM_SHARED_MAX_AGE = env_int("STREAM_SHARED_MAX_AGE", 600)
STREAM_SIGNING_KEY = env_str("STREAM_SIGNING_KEY") or SECRET_KEY
STREAM_DEFAULT_BANDWIDTH = env_int("STREAM_DEFAULT_BANDWIDTH", 2_000_000)
CLOUDFRONT_DOMAIN = env_str("CLOUDFRONT_DOMAIN")
CLOUDFRONT_KEY_PAIR_ID = env_str("CLOUDFRONT_KEY_PAIR_ID")
CLOUDFRONT_PRIVATE_KEY = env_str("CLOUDFRONT_PRIVATE_KEY")
CLOUDFRONT_PRIVATE_KEY_FILE = env_str("CLOUDFRONT_PRIVATE_KEY_FILE")
VIEW_COUNTER_REDIS_URL = env_str("VIEW_COUNTER_REDIS_URL") or REDIS_URL
# Concurrent streams per plan (streaming/sessions.py): a playback's lease lives this long unless
# the player's heartbeat beacon (every STREAM_HEARTBEAT_INTERVAL seconds) renews it.
STREAM_LEASE_REDIS_URL = env_str("STREAM_LEASE_REDIS_URL") or REDIS_URL
STREAM_LEASE_TTL = env_int("STREAM_LEASE_TTL", 60)
STREAM_HEARTBEAT_INTERVAL = env_int("STREAM_HEARTBEAT_INTERVAL", 20)
# Playback beacon batches (POST /api/playback/events) per client address per minute.
PLAYBACK_BEACON_LIMIT = env_int("PLAYBACK_BEACON_LIMIT", 120)
# Per-video QoE (streaming/qoe.py, streaming/analytics.py): beacons are summed per video per day
# in Redis; the beat job "streaming-qoe-rollup" writes the days' totals to the database every
# QOE_ROLLUP_INTERVAL seconds. A day's Redis totals live QOE_DAY_TTL seconds (rolled up long before).
PLAYBACK_QOE_REDIS_URL = env_str("PLAYBACK_QOE_REDIS_URL") or REDIS_URL
QOE_ROLLUP_INTERVAL = env_int("QOE_ROLLUP_INTERVAL", 300)
QOE_DAY_TTL = env_int("QOE_DAY_TTL", 3 * 24 * 3600)

# --- Live streaming (streaming/live/; docs/live.md) -------------------------------------------
# What broadcasters are told to publish to (OBS: server = LIVE_RTMP_URL, key = the stream key).
LIVE_RTMP_URL = env_str("LIVE_RTMP_URL", "rtmp://127.0.0.1:1935/live")
# The ingest's HTTP side, where the live HLS is read from (a session records the origin of
# the ingest it was published to; this is the fallback).
LIVE_ORIGIN_URL = env_str("LIVE_ORIGIN_URL", "http://127.0.0.1:8935/live")
# Shared with the ingest: a hook call without it is refused. Empty: every hook call is refused.
LIVE_HOOK_SECRET = env_str("LIVE_HOOK_SECRET")
# How often the ingest reports each publisher (nginx-rtmp's notify_update_timeout), and after
# how long without a report an active session counts as dead (ended by the sweeper): with a
# sweep every 5 s, a broadcast whose ingest died is ended within 30 s of its last report.
LIVE_UPDATE_INTERVAL = env_int("LIVE_UPDATE_INTERVAL", 10)
LIVE_STALE_AFTER = env_int("LIVE_STALE_AFTER", 25)
LIVE_SWEEP_INTERVAL = env_int("LIVE_SWEEP_INTERVAL", 5)
# Live streams broadcasting at once per owner, by plan code ("free:1,standard:1,premium:3");
# a plan not named gets the "free" figure.
LIVE_CONCURRENT_LIMITS = env_str("LIVE_CONCURRENT_LIMITS", "free:1,standard:1,premium:3")
# Plans whose broadcasts get a transcoded ladder below the source; the others are passthrough.
LIVE_LADDER_PLANS = env_list("LIVE_LADDER_PLANS", "premium")
# Segments kept in a live media playlist (the sliding window).
LIVE_WINDOW_SEGMENTS = env_int("LIVE_WINDOW_SEGMENTS", 6)
LIVE_X264_PRESET = env_str("LIVE_X264_PRESET", "veryfast")
# Largest recording part the ingest may upload (bytes).
LIVE_RECORDING_MAX_BYTES = env_int("LIVE_RECORDING_MAX_BYTES", 50 * 1024**3)
VIEW_DEDUP_WINDOW = env_int("VIEW_DEDUP_WINDOW", 1800)
VIEW_FLUSH_INTERVAL = env_int("VIEW_FLUSH_INTERVAL", 60)
VIEW_FLUSH_BATCH = env_int("VIEW_FLUSH_BATCH", 500)

# --- Jobs -------------------------------------------------------------------------
# Queues, priorities, retries and the beat schedule (videoplatform/jobs; docs/jobs.md), and what
# runs on them: email, notifications, search indexing, recommendations.
# Redis hands an unacknowledged message to another worker after this many seconds without a
# lease renewal: a worker renews the messages it holds every CELERY_LEASE_INTERVAL seconds
# (videoplatform/jobs/lease.py), so a long transcode is never handed out twice while its worker
# lives, and the job of a worker that died comes back after this long plus one sweep
# (CELERY_RESTORE_INTERVAL). Keep it several lease intervals long: a renewal late by a busy event
# loop must not let the message go.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 300)
CELERY_LEASE_INTERVAL = float(env_str("CELERY_LEASE_INTERVAL", "0") or 0) or CELERY_VISIBILITY_TIMEOUT / 5
# How often each worker looks for expired messages and puts them back on their queues.
CELERY_RESTORE_INTERVAL = float(env_str("CELERY_RESTORE_INTERVAL", "0") or 0) or max(
    1.0, CELERY_VISIBILITY_TIMEOUT / 10
)
# Prepended to every key a Redis broker uses: several environments can share one Redis.
CELERY_BROKER_KEY_PREFIX = env_str("CELERY_BROKER_KEY_PREFIX")
# Every task but a transcode (which sets its own, scaled to the source): the soft limit raises
# in the task so it can stop cleanly; the hard one kills the pool process.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
# A worker told to stop finishes its running tasks (warm shutdown); on a second signal it still
# gives them this many seconds before it exits and hands their messages back.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = float(env_str("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "10"))
CELERY_BEAT_SCHEDULE_FILENAME = Path(
    env_str("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))
)
# Retries of email, notification, indexing and recommendation tasks: attempt n+1 waits
# JOBS_RETRY_BACKOFF x 2^n seconds, at most JOBS_RETRY_BACKOFF_MAX.
JOBS_RETRY_BACKOFF = float(env_str("JOBS_RETRY_BACKOFF", "5"))
JOBS_RETRY_BACKOFF_MAX = float(env_str("JOBS_RETRY_BACKOFF_MAX", "600"))
# Where workers count task outcomes for /metrics: a Redis every pod can read.
JOBS_STATS_REDIS_URL = (
    env_str("JOBS_STATS_REDIS_URL")
    or REDIS_URL
    or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "")
)
JOBS_FAILURES_KEEP_DAYS = env_int("JOBS_FAILURES_KEEP_DAYS", 30)
# The search-index sweep leaves videos changed within this many seconds to their own jobs.
SEARCH_SWEEP_SETTLE = env_int("SEARCH_SWEEP_SETTLE", 600)
CACHE_WARM_INTERVAL = env_int("CACHE_WARM_INTERVAL", 300)
# Videos still waiting for their file this long after creation are deleted by the daily clean-up,
# with any partial upload; temporary transcode folders this old are removed (a crashed worker's).
UPLOAD_ABANDONED_AFTER = env_int("UPLOAD_ABANDONED_AFTER", 7 * 24 * 3600)
TEMP_FILES_MAX_AGE = env_int("TEMP_FILES_MAX_AGE", 2 * 24 * 3600)

# Transactional email (queue "email"): SMTP when EMAIL_HOST is set, else files under
# $VAR_DIR/emails (dev prints to the console; prod always uses SMTP).
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_FILE_PATH = Path(env_str("EMAIL_FILE_PATH", str(VAR_DIR / "emails")))
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "videoplatform <no-reply@localhost>")
# The public address of the site, for links in emails and notifications.
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

# Webhooks (webhooks/, docs/webhooks.md): events of a user's resources POSTed to their endpoints on
# the "notification" queue, signed per Standard Webhooks. A 2xx within WEBHOOKS_TIMEOUT seconds is
# success; otherwise retries with exponential backoff (from WEBHOOKS_RETRY_BASE, at most
# WEBHOOKS_RETRY_MAX_DELAY, with jitter) for WEBHOOKS_RETRY_WINDOW seconds, then the delivery has
# failed; WEBHOOKS_DISABLE_AFTER failed deliveries in a row disable the endpoint.
WEBHOOKS_TIMEOUT = float(env_str("WEBHOOKS_TIMEOUT", "5"))
WEBHOOKS_RETRY_BASE = float(env_str("WEBHOOKS_RETRY_BASE", "40"))
WEBHOOKS_RETRY_MAX_DELAY = float(env_str("WEBHOOKS_RETRY_MAX_DELAY", str(6 * 3600)))
WEBHOOKS_RETRY_WINDOW = float(env_str("WEBHOOKS_RETRY_WINDOW", str(3 * 24 * 3600)))
# Retries due within this many seconds ride a delayed message; later ones are sent by the sweeper.
WEBHOOKS_RETRY_ENQUEUE_MAX = float(env_str("WEBHOOKS_RETRY_ENQUEUE_MAX", "120"))
# The sweeper (beat, every WEBHOOKS_SWEEP_INTERVAL seconds) sends a message for each due delivery
# that has none, or whose message is older than WEBHOOKS_REQUEUE_AFTER seconds (lost).
WEBHOOKS_SWEEP_INTERVAL = env_int("WEBHOOKS_SWEEP_INTERVAL", 10)
WEBHOOKS_REQUEUE_AFTER = env_int("WEBHOOKS_REQUEUE_AFTER", 300)
WEBHOOKS_DISABLE_AFTER = env_int("WEBHOOKS_DISABLE_AFTER", 5)
# After a secret is rolled, the previous one still signs (beside the new one) this many seconds.
WEBHOOKS_SECRET_OVERLAP = env_int("WEBHOOKS_SECRET_OVERLAP", 24 * 3600)
WEBHOOKS_MAX_ENDPOINTS_PER_USER = env_int("WEBHOOKS_MAX_ENDPOINTS_PER_USER", 20)
WEBHOOKS_KEEP_DAYS = env_int("WEBHOOKS_KEEP_DAYS", 30)
# SSRF: production sends only to https URLs of public addresses (settings.dev and settings.test allow
# http and private or loopback targets, for local receivers). Not read from the environment.
WEBHOOKS_ALLOW_HTTP = False
WEBHOOKS_ALLOW_PRIVATE_TARGETS = False

# Search (PostgreSQL full-text search; a plain substring match on SQLite).
SEARCH_TEXT_CONFIG = env_str("SEARCH_TEXT_CONFIG", "english")
SEARCH_QUERY_MAX_LENGTH = 200

# Related videos: co-watch from the last RECOMMENDATIONS_WINDOW_DAYS of watch history when at
# least RECOMMENDATIONS_MIN_COWATCHERS viewers watched both, filled up by tag and text similarity.
RECOMMENDATIONS_PER_VIDEO = env_int("RECOMMENDATIONS_PER_VIDEO", 20)
RECOMMENDATIONS_WINDOW_DAYS = env_int("RECOMMENDATIONS_WINDOW_DAYS", 30)
RECOMMENDATIONS_MIN_COWATCHERS = env_int("RECOMMENDATIONS_MIN_COWATCHERS", 2)
RECOMMENDATIONS_HISTORY_PER_USER = env_int("RECOMMENDATIONS_HISTORY_PER_USER", 50)
RECOMMENDATIONS_MAX_AGE = env_int("RECOMMENDATIONS_MAX_AGE", 24 * 3600)
RECOMMENDATIONS_REFRESH_BATCH = env_int("RECOMMENDATIONS_REFRESH_BATCH", 5000)
RECOMMENDATIONS_CACHE_TTL = env_int("RECOMMENDATIONS_CACHE_TTL", 3600)
# The video status enum appears in two API components (a video, and a video just created with its
# upload target): name it once so the schema stays free of generated names.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),  # type: ignore[dict-item]
    "VideoStatusEnum": "videos.models.Video.Status",
}
