"""maskloop settings: every knob is an environment variable with a default that needs no server.

Development (the README's `make run`): SQLite under var/, a filesystem Celery
broker under var/broker/, media and checkpoints under var/. Production: set
DATABASE_URL=postgres://…, CELERY_BROKER_URL=redis://… or amqp://…, SECRET_KEY,
DEBUG=0, ALLOWED_HOSTS, MEDIA_ROOT and MODELS_STORE_ROOT on shared storage.
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
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DEBUG=0 with the development SECRET_KEY: set SECRET_KEY to a long random value "
        "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
    "django_celery_results",
    "annotator",
    "models_store",
    "learning",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: wait for locks instead of
    # failing at once, and take the write lock at BEGIN so two writers never
    # deadlock upgrading read locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not :memory:, so a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MODELS_STORE_ROOT = Path(env_str("MODELS_STORE_ROOT", str(VAR_DIR / "models")))

# --- Uploads and images ------------------------------------------------------
# Images above this many pixels are rejected at import (decompression bombs).
MASKLOOP_MAX_IMAGE_PIXELS = env_int("MASKLOOP_MAX_IMAGE_PIXELS", 40_000_000)
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
# re-queued when any worker starts (training reports progress every few seconds).
MASKLOOP_JOB_STALE_SECONDS = env_int("MASKLOOP_JOB_STALE_SECONDS", 15 * 60)

# Fine-tuning rounds (round 1 on) train at most this many minutes, so annotators
# wait about this long plus scoring: on a slow worker the round takes fewer steps
# than the project's train_steps_per_round (the LR schedule is shortened to
# match). 0 = always run every step. Round 0 (first training) is not limited.
MASKLOOP_ROUND_TRAIN_MINUTES = env_float("MASKLOOP_ROUND_TRAIN_MINUTES", 7.0)

# --- REST framework ----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "maskloop API",
    "DESCRIPTION": "Semantic-segmentation labeling with a model in the loop.",
    "VERSION": "0.1.0",
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
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
