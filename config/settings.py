"""maskloop settings: every knob is an environment variable with a default that needs no server.

Development (the README's `make run`): SQLite under var/, a filesystem Celery
broker under var/broker/, media and checkpoints under var/. Production: set
DATABASE_URL=postgres://…, CELERY_BROKER_URL=redis://… or amqp://…, SECRET_KEY,
DEBUG=0, ALLOWED_HOSTS, MEDIA_ROOT and MODELS_STORE_ROOT on shared storage,
CACHE_URL=redis://…, and the HTTPS variables (the README lists them all).
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MASKLOOP_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEVELOPMENT_SECRET_KEY = "maskloop-development-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DEBUG", True)
_NEW_KEY_HINT = "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(f"DEBUG=0 with the development SECRET_KEY: set SECRET_KEY to a long random value {_NEW_KEY_HINT}.")
if not DEBUG and len(SECRET_KEY) < 50:
    # Sessions, password-reset links and CSRF tokens are only as strong as this key.
    raise ImproperlyConfigured(
        f"DEBUG=0 with a weak SECRET_KEY ({len(SECRET_KEY)} characters): use at least 50 random characters {_NEW_KEY_HINT}.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS and browser hardening ------------------------------------------------
# Off by default so the embedded stack works over plain http://127.0.0.1; the
# README's production environment turns each on (`manage.py check --deploy` is clean with it).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# Behind a TLS-terminating proxy: "HTTP_X_FORWARDED_PROTO,https" (the header as Django
# names it, and the value that means HTTPS). Set it only if the proxy always sets
# or strips that header, or clients could claim HTTPS.
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER", [])
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must be 'HEADER,value', e.g. 'HTTP_X_FORWARDED_PROTO,https'")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None
SECURE_CONTENT_TYPE_NOSNIFF = env_bool("SECURE_CONTENT_TYPE_NOSNIFF", True)
SECURE_REFERRER_POLICY = env_str("SECURE_REFERRER_POLICY", "same-origin")
X_FRAME_OPTIONS = env_str("X_FRAME_OPTIONS", "DENY")
# Scripts and style sheets from this site only: no inline <script>, no on…=
# handlers, no <style> element, no CDN. Inline style *attributes* stay allowed:
# the dashboard colours its IoU cells and the queue page sizes its progress bar
# with them, and an attribute can neither run code nor load from elsewhere.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN (CSP 'self')
    "django_celery_results",
    "annotator",
    "models_store",
    "learning",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    # Static files from STATIC_ROOT (after collectstatic) in any server, gunicorn included.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'maskloop.sqlite3'}")
if DATABASE_URL.startswith("sqlite"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
# Health checks: a kept connection is tested before a request reuses it, so one that died with a
# database restart is replaced instead of failing that request (a no-op when DB_CONN_MAX_AGE is 0).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
                                              conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: wait for locks instead of
    # failing at once, and take the write lock at BEGIN so two writers never
    # deadlock upgrading read locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE",
         # WAL: readers never wait for the writer; NORMAL: fsync at checkpoints, not every commit (safe with WAL).
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file, not :memory:, so a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": env_int("MASKLOOP_PASSWORD_MIN_LENGTH", 10)}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Brute-force protection of /login/ and /api/auth/token/ (annotator/login_throttle.py):
# after this many failed attempts for one user name from one address within the
# window, both answer 429 until the window ends. 0 turns it off.
MASKLOOP_LOGIN_FAILURES = env_int("MASKLOOP_LOGIN_FAILURES", 10)
MASKLOOP_LOGIN_WINDOW_SECONDS = env_int("MASKLOOP_LOGIN_WINDOW_SECONDS", 15 * 60)
# Proxies in front of the app that append to X-Forwarded-For: 0 = use the
# connection's address (a client could forge the header).
MASKLOOP_NUM_PROXIES = env_int("MASKLOOP_NUM_PROXIES", 0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
if STATIC_ROOT.is_relative_to(VAR_DIR):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # empty until collectstatic; WhiteNoise warns about a missing one
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Gzip/Brotli copies for WhiteNoise; no hashed names: the ES modules import
    # each other by plain relative paths, so a manifest could not rewrite them all.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Cache (login throttling) ----------------------------------------------------
# Shared by every web process: a folder by default, Redis when CACHE_URL (or REDIS_URL) is redis://….
CACHE_URL = env_str("CACHE_URL", "") or env_str("REDIS_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
elif CACHE_URL == "" or CACHE_URL.startswith("file://"):
    # Past MAX_ENTRIES files it deletes a random third: keep that far away, or guesses spread
    # over many names could wipe the count of the one being attacked.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": CACHE_URL.removeprefix("file://") or str(VAR_DIR / "cache"),
                          "OPTIONS": {"MAX_ENTRIES": 10_000}}}
else:
    raise ImproperlyConfigured(f"CACHE_URL must be redis://…, rediss://… or file:///path, not {CACHE_URL!r}")
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MODELS_STORE_ROOT = Path(env_str("MODELS_STORE_ROOT", str(VAR_DIR / "models")))

# --- Uploads and images ------------------------------------------------------
# Images above this many pixels are rejected at import (decompression bombs).
MASKLOOP_MAX_IMAGE_PIXELS = env_int("MASKLOOP_MAX_IMAGE_PIXELS", 40_000_000)
# Images above this many pixels are queried and labeled as tiles of at most this size
# (learning/selection/tiles.py); their masks stay whole-image in storage and exports.
MASKLOOP_TILE_PIXELS = env_int("MASKLOOP_TILE_PIXELS", 4_000_000)
# The labeling page shows a tile's surroundings from the whole image downscaled to this longest side.
MASKLOOP_TILE_CONTEXT_SIDE = env_int("MASKLOOP_TILE_CONTEXT_SIDE", 1024)
# Pools of at least this many shards (learning.selection.store.SHARD_SIZE images each) are scored by one
# ``learning.score_shard`` task per shard on every worker of MASKLOOP_SCORING_QUEUE (0 = never).
MASKLOOP_PARALLEL_SCORING_MIN_SHARDS = env_int("MASKLOOP_PARALLEL_SCORING_MIN_SHARDS", 4)
MASKLOOP_SCORING_QUEUE = env_str("MASKLOOP_SCORING_QUEUE", "default")
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 64 * 1024 * 1024)
# Server folders leads may import from (staff may import from anywhere), and the
# largest upload or folder an import accepts.
MASKLOOP_IMPORT_ROOTS = env_list("MASKLOOP_IMPORT_ROOTS", [str(VAR_DIR / "imports")])
MASKLOOP_MAX_IMPORT_BYTES = env_int("MASKLOOP_MAX_IMPORT_BYTES", 20 * 1024**3)
# Who may create projects: "everyone" (any logged-in user, who becomes the new
# project's lead) or "permitted" (staff, and users given the annotator.add_project
# permission, e.g. through a "project leads" group in the admin).
MASKLOOP_PROJECT_CREATORS = env_str("MASKLOOP_PROJECT_CREATORS", "everyone")
if MASKLOOP_PROJECT_CREATORS not in ("everyone", "permitted"):
    raise ImproperlyConfigured(
        f"MASKLOOP_PROJECT_CREATORS must be 'everyone' or 'permitted', not {MASKLOOP_PROJECT_CREATORS!r}")
# Finished export files kept per project; older ones are deleted when a new export finishes.
MASKLOOP_EXPORTS_KEEP = env_int("MASKLOOP_EXPORTS_KEEP", 5)
# How long a query stays locked to the annotator who opened it.
MASKLOOP_QUERY_LOCK_SECONDS = env_int("MASKLOOP_QUERY_LOCK_SECONDS", 30 * 60)
# A RUNNING job whose worker has not reported for this long is presumed dead and
# re-queued when any worker starts, and by a sweep every MASKLOOP_JOB_SWEEP_SECONDS
# (Celery beat, learning.jobs_sweep) while workers stay up (training reports
# progress every few seconds).
MASKLOOP_JOB_STALE_SECONDS = env_int("MASKLOOP_JOB_STALE_SECONDS", 15 * 60)
MASKLOOP_JOB_SWEEP_SECONDS = env_int("MASKLOOP_JOB_SWEEP_SECONDS", 60)

# Fine-tuning rounds (round 1 on) train at most this many minutes, so annotators
# wait about this long plus scoring: on a slow worker the round takes fewer steps
# than the project's train_steps_per_round (the LR schedule is shortened to
# match). 0 = always run every step. Round 0 (first training) is not limited.
MASKLOOP_ROUND_TRAIN_MINUTES = env_float("MASKLOOP_ROUND_TRAIN_MINUTES", 7.0)
# Round 0 (training from scratch or a pretrained backbone) fits this budget too; 0 = every planned step.
MASKLOOP_ROUND0_TRAIN_MINUTES = env_float("MASKLOOP_ROUND0_TRAIN_MINUTES", 20.0)
# A project whose training size is 0 × 0 trains at its images' median shape, shrunk to this many pixels;
# 0 = by the worker's device (learning.recipe.default_max_train_pixels: 144 × 192 on a CPU, 240 × 320 on
# CUDA); a GPU deployment can afford more (e.g. 512 * 512).
MASKLOOP_TRAIN_MAX_PIXELS = env_int("MASKLOOP_TRAIN_MAX_PIXELS", 0)
# Where a project's round-0 backbone starts when the project says "deployment default":
# auto | imagenet | file | ssl | none (learning/pretrained.py). "auto" takes ImageNet weights from
# torch's hub cache ($TORCH_HOME), downloading them once on an online machine.
MASKLOOP_PRETRAINED = env_str("MASKLOOP_PRETRAINED", "auto")
MASKLOOP_PRETRAINED_DOWNLOAD = env_bool("MASKLOOP_PRETRAINED_DOWNLOAD", True)
# Import archives unpack streaming, counting bytes, and are refused (naming the
# member) when one file unpacks past MASKLOOP_IMPORT_MAX_FILE_BYTES (also the
# largest image or mask a folder import reads), all files past
# MASKLOOP_MAX_IMPORT_BYTES, a large member expands more than
# MASKLOOP_IMPORT_MAX_RATIO times its compressed size (a zip bomb), or the
# archive holds more than MASKLOOP_IMPORT_MAX_FILES files.
MASKLOOP_IMPORT_MAX_FILE_BYTES = env_int("MASKLOOP_IMPORT_MAX_FILE_BYTES", 256 * 1024**2)
MASKLOOP_IMPORT_MAX_RATIO = env_int("MASKLOOP_IMPORT_MAX_RATIO", 200)
MASKLOOP_IMPORT_MAX_FILES = env_int("MASKLOOP_IMPORT_MAX_FILES", 200_000)
# Folders where staff place backbone files and checkpoint folders a project may
# start from (Project.init_checkpoint); nothing else on the server is accepted.
MASKLOOP_INIT_CHECKPOINT_ROOTS = env_list("MASKLOOP_INIT_CHECKPOINT_ROOTS", [str(VAR_DIR / "checkpoints")])

# --- REST framework ----------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes an anonymous request a 401 (DRF answers 403 when the
    # first class has no such header, as session authentication has not). Either kind of credentials works.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Services' refusals (ServiceError) → 400 / 403 / 409 with their sentence, for every API view.
    "EXCEPTION_HANDLER": "annotator.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "maskloop API",
    "DESCRIPTION": "Semantic-segmentation labeling with a model in the loop.",
    "VERSION": "0.1.0",
    # /api/docs/ loads Swagger UI from drf-spectacular-sidecar's static files (no CDN, no inline script).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a field named "state" with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "ProjectStateEnum": "annotator.models.Project.State",
        "RoundStateEnum": "annotator.models.Round.State",
        "JobStateEnum": "annotator.models.Job.State",
        "ModelVersionStateEnum": "models_store.models.ModelVersion.State",
    },
}

# --- Celery ------------------------------------------------------------------
BROKER_DIR = Path(env_str("MASKLOOP_BROKER_DIR", str(VAR_DIR / "broker"))).resolve()
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder for in and out (producer and worker are the same "host"), an
    # absolute control folder (the default ./control depends on the cwd), and a
    # 0.1 s poll: the default 1 s adds a second to every task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": env_float("CELERY_POLL_INTERVAL", 0.1),
    }
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Redis / SQS redeliver unacknowledged messages after this many seconds: it
    # must exceed the longest training run, or a healthy run is started twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600),
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"learning.*train*": {"queue": "training"}}
CELERY_TASK_ALWAYS_EAGER = False
# Run by `celery -A config beat` (one per deployment; `make run` starts it).
CELERY_BEAT_SCHEDULE = {
    # A sweep still queued when the next one is due is dropped (a busy worker must not pile them up).
    "sweep-jobs-of-dead-workers": {"task": "learning.jobs_sweep", "schedule": float(MASKLOOP_JOB_SWEEP_SECONDS),
                                   "options": {"expires": float(MASKLOOP_JOB_SWEEP_SECONDS)}},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# One handler, on the root logger: every line is printed once. Django's own default config gives
# the "django" logger a console handler of its own (in DEBUG) that would print each of its lines a
# second time through the root's; here "django" only propagates. A refused request (403, 404) is one
# line, without the traceback Django attaches to it (config/log_filters.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"no_traceback_for_4xx": {"()": "config.log_filters.NoTracebackForClientErrors"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"handlers": [], "filters": ["no_traceback_for_4xx"], "propagate": True},
    },
}
