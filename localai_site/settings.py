"""Settings for Local AI API.

Every value comes from the environment (or a `.env` file beside manage.py) with
a default that runs on a fresh machine: SQLite, local-memory cache, in-memory
channel layer, Ollama at 127.0.0.1:11434. `.env.example` lists every variable.
Setting `DATABASE_URL` and `REDIS_URL` switches to the scale-out configuration
(PostgreSQL, Redis cache/limits/channel layer) without touching code.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# A fixed development key is only acceptable while DEBUG is on; the system
# check `localai.W001` warns when it is used with DEBUG off.
INSECURE_DEV_SECRET_KEY = "django-insecure-local-ai-api-development-key-change-me"
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# daphne's app only swaps `manage.py runserver` for its ASGI server (WebSockets
# in development); it imports Twisted, ~24 MB per worker, so only with DEBUG.
# `make run` serves with uvicorn; the daphne command works either way.
INSTALLED_APPS = [
    *(["daphne"] if DEBUG else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "gateway",
    "apis",
    "keys",
    "realtime",
    "compat",
]

MIDDLEWARE = [
    # Outermost: x-ratelimit-* headers and usage records see every final response.
    "keys.middleware.ApiUsageMiddleware",
    "gateway.middleware.ErrorEnvelopeMiddleware",
    # Django's and WhiteNoise's middleware, with their hooks run in the event
    # loop rather than one thread switch each (localai_site/middleware.py).
    "localai_site.middleware.SecurityMiddleware",
    "localai_site.middleware.AsyncWhiteNoiseMiddleware",
    "localai_site.middleware.SessionMiddleware",
    "localai_site.middleware.CommonMiddleware",
    "localai_site.middleware.CsrfViewMiddleware",
    "localai_site.middleware.AuthenticationMiddleware",
    "localai_site.middleware.MessageMiddleware",
    "localai_site.middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "localai_site.urls"
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

WSGI_APPLICATION = "localai_site.wsgi.application"
ASGI_APPLICATION = "localai_site.asgi.application"

# --- Data stores ------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the server read while usage records are written.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="localai"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "localai",
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Inference backend ------------------------------------------------------

OLLAMA_HOST = env.str("OLLAMA_HOST", default="http://127.0.0.1:11434")
# Seconds. Connect is short: a missing Ollama should be reported at once.
OLLAMA_CONNECT_TIMEOUT = env.float("OLLAMA_CONNECT_TIMEOUT", default=5.0)
# Longest silence tolerated while waiting for the next token (or the whole
# answer of a non-streamed call): loading a large model can take a while.
OLLAMA_READ_TIMEOUT = env.float("OLLAMA_READ_TIMEOUT", default=300.0)
# Retry-After (seconds) sent when Ollama reports its queue full.
OLLAMA_BUSY_RETRY_AFTER = env.int("OLLAMA_BUSY_RETRY_AFTER", default=2)
DEFAULT_CHAT_MODEL = env.str("DEFAULT_CHAT_MODEL", default="qwen2.5:14b")
DEFAULT_EMBEDDING_MODEL = env.str("DEFAULT_EMBEDDING_MODEL", default="mxbai-embed-large")

# --- Request limits ---------------------------------------------------------

MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
MAX_EMBEDDING_INPUTS = env.int("MAX_EMBEDDING_INPUTS", default=512)
MAX_EMBEDDING_INPUT_CHARS = env.int("MAX_EMBEDDING_INPUT_CHARS", default=100_000)
MAX_CHAT_MESSAGES = env.int("MAX_CHAT_MESSAGES", default=1000)

# --- WebSocket chat and the chat page ----------------------------------------

# Seconds without a client message before the server sends an `idle_timeout`
# error and closes with 4408 (0 disables). A connection receiving an answer is
# never idle; the protocol-level pings of daphne/uvicorn detect dead peers.
WS_IDLE_TIMEOUT = env.float("WS_IDLE_TIMEOUT", default=300.0)
# Largest client frame; bigger ones get a `request_too_large` error event.
WS_MAX_MESSAGE_BYTES = env.int("WS_MAX_MESSAGE_BYTES", default=64 * 1024)
LOGIN_URL = "realtime:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- API keys, rate limits, usage -------------------------------------------

# Requests per minute per key and endpoint group (a key's own rate_limit
# overrides them), and per client address for requests without a valid key.
RATE_LIMITS = {
    "chat": env.int("RATE_LIMIT_CHAT", default=60),
    "embeddings": env.int("RATE_LIMIT_EMBEDDINGS", default=120),
}
RATE_LIMIT_DEFAULT = env.int("RATE_LIMIT_DEFAULT", default=100)
RATE_LIMIT_UNAUTHENTICATED = env.int("RATE_LIMIT_UNAUTHENTICATED", default=60)
# Usage records are buffered per process and written in one transaction at
# most this many seconds after the request (or at this many records, or at exit).
USAGE_FLUSH_INTERVAL = env.float("USAGE_FLUSH_INTERVAL", default=1.0)
USAGE_FLUSH_BATCH_SIZE = env.int("USAGE_FLUSH_BATCH_SIZE", default=500)
USAGE_BUFFER_MAX = env.int("USAGE_BUFFER_MAX", default=100_000)

# Feature switches of the HTTP API, all on by default. They exist so the
# benchmark suite (`make bench`) can put a name on what each feature costs;
# with GATEWAY_AUTH_ENABLED off anyone can call the API without a key (the
# system check keys.W001 warns when that happens with DEBUG off). Off, rate
# limits count nothing and send no x-ratelimit-* headers; usage off writes
# no usage records.
GATEWAY_AUTH_ENABLED = env.bool("GATEWAY_AUTH_ENABLED", default=True)
GATEWAY_RATE_LIMITS_ENABLED = env.bool("GATEWAY_RATE_LIMITS_ENABLED", default=True)
GATEWAY_USAGE_ENABLED = env.bool("GATEWAY_USAGE_ENABLED", default=True)
# API requests one worker has accepted but not started answering (a stream
# counts until its first byte); past it, 503 backend_busy at once instead of
# every request slowing down together (localai_site/handlers.py). 0 = no cap.
GATEWAY_MAX_PENDING_REQUESTS = env.int("GATEWAY_MAX_PENDING_REQUESTS", default=256)
# While the worker's event loop runs this many ms late (it has more work than
# CPU), new API requests get 503 backend_busy at once. 0 = off (the default:
# a machine that stalls a process for other reasons would refuse requests);
# 250 is a good value for a dedicated server.
GATEWAY_SHED_LAG_MS = env.int("GATEWAY_SHED_LAG_MS", default=0)

# --- REST framework ---------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # An `Accept` the API cannot meet (e.g. only text/event-stream) gets JSON, not 406.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "gateway.negotiation.JSONFallbackNegotiation",
    # Every API view needs a key (keys.policy: who, what, how much).
    "DEFAULT_AUTHENTICATION_CLASSES": ["keys.authentication.ApiKeyAuthentication"],
    # Counted, then checked against the key's allow-list (keys.policy.request_admit).
    "DEFAULT_PERMISSION_CLASSES": ["keys.authentication.CallerAdmitted"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "gateway.errors.api_exception_handler",
    # drf-spectacular's, with request schemas as strict as DRF's validation.
    "DEFAULT_SCHEMA_CLASS": "gateway.schema.GatewayAutoSchema",
}

# --- API documentation (drf-spectacular) -------------------------------------

# Servers listed in the OpenAPI document (comma-separated base URLs). The docs
# served at /openapi.json also list the server that served them, first, so
# Swagger UI's "Try it out" reaches the server the reader is looking at.
API_SERVERS = env.list("API_SERVERS", default=["http://localhost:8000"])
# Machine-readable benchmark results (written by `make bench`); the chat
# operation's description carries a performance table built from it, or none.
# (relative to this project's folder unless absolute)
BENCHMARK_RESULTS_FILE = BASE_DIR / env.str("BENCHMARK_RESULTS_FILE", default="bench/results.json")

API_DESCRIPTION = f"""
A secure, rate-limited gateway in front of a local [Ollama](https://ollama.com) server.

### Main features

* **Models** (`/v1/models`): the models the backend has, with size, family, quantization.
* **Chat completions** (`/v1/chat/completions`): conversational text generation,
  whole or **streamed** as Server-Sent Events while the model writes.
* **Embeddings** (`/v1/embeddings`): one vector per input, many inputs in one call.
* **OpenAI-compatible API** (`/openai/v1/`): the official `openai` SDKs, LangChain and
  any tool that takes a `base_url` work unchanged (also mirrored under `/ollama/v1/`).
* **Ollama-compatible API** (`/ollama/`): Ollama clients work through the gateway, with keys.
* **API keys** (`/admin/api-keys`): staff create, list and revoke keys.
* **Probes** (`/healthz`, `/readyz`) for orchestrators and load balancers.

### Authentication

Every endpoint except these docs, the probes and `GET /ollama/` needs an API key:
send `Authorization: Bearer <key>`. Keys are created by staff (admin, the
`create_api_key` command, `POST /admin/api-keys`) and shown once. A missing, unknown,
revoked or expired key gets `401`; a key not allowed an endpoint or model gets `403`.
In Swagger UI, click **Authorize** and paste the key.

### Rate limits

Requests per minute, per key and endpoint group (a key's own limit overrides them):

* chat: {RATE_LIMITS["chat"]}
* embeddings: {RATE_LIMITS["embeddings"]}
* everything else: {RATE_LIMIT_DEFAULT}
* requests without a valid key, per client address: {RATE_LIMIT_UNAUTHENTICATED}

Every response carries `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`
and `x-ratelimit-reset-requests`; a refused request gets `429` with `Retry-After`
(seconds).

### Errors

Every error has one envelope, on every surface except Ollama's own (`/ollama/api/...`,
which answers as Ollama does: `{{"error": "<message>"}}`):
`{{"error": {{"message", "type", "code", "param", "timestamp", "details"?}}}}`.
Strings must not contain NUL characters (U+0000).
""".strip()

SPECTACULAR_SETTINGS = {
    "TITLE": "Local AI API",
    "VERSION": "1.0.0",
    "DESCRIPTION": API_DESCRIPTION,
    # 3.1: JSON Schema 2020-12, so a stream's events can carry their payload schema.
    "OAS_VERSION": "3.1.0",
    # Request and response components apart: each says its own direction's rules.
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVERS": [{"url": url} for url in API_SERVERS],
    "TAGS": [
        {"name": "models", "description": "The models the backend has (native API)."},
        {"name": "chat", "description": "Chat completions, whole or streamed (native API)."},
        {"name": "embeddings", "description": "Embedding vectors for texts (native API)."},
        {
            "name": "openai",
            "description": "OpenAI-compatible API under `/openai/v1/` (mirrored under "
            "`/ollama/v1/`): OpenAI's request and response shapes, the gateway's keys.",
        },
        {
            "name": "ollama",
            "description": "Ollama-compatible API under `/ollama/`: Ollama's own routes and "
            'shapes (errors are `{"error": "..."}`), behind the gateway\'s keys.',
        },
        {
            "name": "anthropic",
            "description": "Anthropic's Messages API under `/anthropic/v1/` (and `/ollama/v1/`, "
            "as Ollama serves it): Anthropic's shapes and errors, keys as `x-api-key` or Bearer.",
        },
        {
            "name": "keys",
            "description": "Key management for staff (HTTP basic auth or an admin session).",
        },
        {"name": "health", "description": "Liveness and readiness probes; no key needed."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        # A pasted key survives a page reload.
        "persistAuthorization": True,
        "displayRequestDuration": True,
        "filter": True,
    },
    # The docs stay open: no API key needed to read them.
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "ENUM_NAME_OVERRIDES": {
        "CheckStateEnum": "gateway.schema.CHECK_STATES",
        "ChatFinishReasonEnum": ["stop", "length", "tool_calls"],
        "CompletionFinishReasonEnum": ["stop", "length"],
        "ChatRoleEnum": ["system", "user", "assistant"],
        "OpenAIRoleEnum": ["system", "developer", "user", "assistant", "tool"],
        "AssistantRoleEnum": ["assistant"],
    },
    "PREPROCESSING_HOOKS": ["gateway.schema.add_plain_django_views"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.schema.finish_schema",
    ],
}

# --- Static files, i18n -----------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not run
# (development, tests), so `make run` needs no build step.
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Logging ----------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
    },
}
