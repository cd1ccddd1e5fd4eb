"""12-factor settings: embedded defaults need no server; production refuses the development key."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    code = f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); " \
           f"from django.conf import settings; print({expression})"
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DEBUG",
                                                               "SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_debug_off_with_the_development_key_refuses_to_start(tmp_path):
    result = settings_in_subprocess({"DEBUG": "0", "MASKLOOP_VAR_DIR": str(tmp_path)}, "settings.DEBUG")
    assert result.returncode != 0
    assert "DEBUG=0 with the development SECRET_KEY" in result.stderr


def test_debug_off_with_a_real_key_starts(tmp_path):
    result = settings_in_subprocess(
        {"DEBUG": "0", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "label.example.org",
         "MASKLOOP_VAR_DIR": str(tmp_path)}, "settings.DEBUG, settings.ALLOWED_HOSTS")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['label.example.org']"


def test_defaults_need_no_server(tmp_path):
    result = settings_in_subprocess(
        {"MASKLOOP_VAR_DIR": str(tmp_path)},
        "settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND, "
        "settings.CELERY_BROKER_TRANSPORT_OPTIONS['control_folder']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://", "django-db",
                                     str(tmp_path / "broker" / "control")]
    for folder in ("queue", "processed", "control"):
        assert (tmp_path / "broker" / folder).is_dir()


def test_production_urls_come_from_the_environment(tmp_path):
    result = settings_in_subprocess(
        {"DATABASE_URL": "postgres://u:p@db.internal:5433/ml", "CELERY_BROKER_URL": "redis://r.internal:6379/2",
         "MASKLOOP_VAR_DIR": str(tmp_path)},
        "settings.DATABASES['default']['HOST'], settings.DATABASES['default']['PORT'], settings.CELERY_BROKER_URL, "
        "settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.internal", "5433", "redis://r.internal:6379/2", "21600"]


def test_kept_database_connections_are_checked_before_reuse(tmp_path):
    """A connection kept across requests that died with a database restart is replaced, not used (test_faults.py)."""
    result = settings_in_subprocess(
        {"DATABASE_URL": "postgres://u:p@db.internal:5432/ml", "DB_CONN_MAX_AGE": "60",
         "MASKLOOP_VAR_DIR": str(tmp_path)},
        "settings.DATABASES['default']['CONN_MAX_AGE'], settings.DATABASES['default']['CONN_HEALTH_CHECKS']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["60", "True"]


def test_a_bad_boolean_is_an_error_not_a_guess(tmp_path):
    result = settings_in_subprocess({"DEBUG": "maybe", "MASKLOOP_VAR_DIR": str(tmp_path)}, "settings.DEBUG")
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


def test_an_unknown_project_creation_policy_is_an_error(tmp_path):
    result = settings_in_subprocess({"MASKLOOP_PROJECT_CREATORS": "anyone", "MASKLOOP_VAR_DIR": str(tmp_path)},
                                    "settings.MASKLOOP_PROJECT_CREATORS")
    assert result.returncode != 0 and "MASKLOOP_PROJECT_CREATORS must be 'everyone' or 'permitted'" in result.stderr
