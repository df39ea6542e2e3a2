"""settings.prod with some of the hot-path optimisations switched off, for the harness's
before/after measurements: ``PERF_DISABLE`` lists them (``bytes_cache``, ``orjson``,
``templates``, ``negotiation``, ``compression_reuse``). Never used outside bench/perf."""

import os

from settings.prod import *  # noqa: F403
from settings.prod import REST_FRAMEWORK

_DISABLED = {item.strip() for item in os.environ.get("PERF_DISABLE", "").split(",") if item.strip()}

if "bytes_cache" in _DISABLED:
    API_RENDERED_CACHE_SIZE = 0
if "templates" in _DISABLED:
    API_SERIALIZER_TEMPLATES = False
if "negotiation" in _DISABLED:
    API_NEGOTIATION_MEMO = False
if "compression_reuse" in _DISABLED:
    COMPRESSION_REUSE = False
if "orjson" in _DISABLED:
    REST_FRAMEWORK = {
        **REST_FRAMEWORK,
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": [
            "rest_framework.parsers.JSONParser",
            "rest_framework.parsers.FormParser",
            "rest_framework.parsers.MultiPartParser",
        ],
    }
