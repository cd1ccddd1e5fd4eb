"""Production settings from the environment: `check --deploy` is clean with the README's environment, weak keys
are refused, security headers and the CSP are sent, and static files are served by WhiteNoise with DEBUG=0."""
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.test_settings import ROOT, settings_in_subprocess

# Variables the README's production block sets that the test machine must not inherit from this process.
PRODUCTION_ONLY = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY",
                   "DJANGO_SETTINGS_MODULE", "STATIC_ROOT", "MEDIA_ROOT", "MODELS_STORE_ROOT")


def readme_production_environment() -> dict[str, str]:
    """NAME=value of every `export` line in the README's production block (a `$(…)` key becomes a random one)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Production"):]
    block = section[section.index("```bash"):section.index("```", section.index("```bash") + 3)]
    env = {}
    for line in block.splitlines():
        if line.startswith("export "):
            for name, value in re.findall(r"(\w+)=(\$\([^)]*\)|\S+)", line.split("#")[0]):
                env[name] = secrets.token_urlsafe(50) if value.startswith("$(") else value
    return env


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python ARGS` in the checkout with ``env`` over this process's environment, less its production-only part."""
    # DJANGO_ALLOW_ASYNC_UNSAFE belongs to the browser tests' process (Playwright), never to a deployment.
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ONLY and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


def test_check_deploy_is_clean_with_the_readme_production_environment(tmp_path):
    env = readme_production_environment()
    assert env["DEBUG"] == "0" and "SECRET_KEY" in env and env["DATABASE_URL"].startswith("postgres://")
    env.update(MASKLOOP_VAR_DIR=str(tmp_path), STATIC_ROOT=str(tmp_path / "static"),
               MEDIA_ROOT=str(tmp_path / "media"), MODELS_STORE_ROOT=str(tmp_path / "models"))
    result = run_python(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("key", ["abc", "k" * 49])
def test_debug_off_with_a_short_key_refuses_to_start(tmp_path, key):
    result = settings_in_subprocess({"DEBUG": "0", "SECRET_KEY": key, "MASKLOOP_VAR_DIR": str(tmp_path)},
                                    "settings.DEBUG")
    assert result.returncode != 0
    assert f"DEBUG=0 with a weak SECRET_KEY ({len(key)} characters)" in result.stderr


def test_https_settings_come_from_the_environment(tmp_path):
    env = {"SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1", "SECURE_HSTS_PRELOAD": "1",
           "SESSION_COOKIE_SECURE": "1", "CSRF_COOKIE_SECURE": "1", "SECURE_SSL_REDIRECT": "1",
           "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https", "MASKLOOP_VAR_DIR": str(tmp_path)}
    result = settings_in_subprocess(env, "settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
                                         "settings.SECURE_HSTS_PRELOAD, settings.SESSION_COOKIE_SECURE, "
                                         "settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT, "
                                         "settings.SECURE_PROXY_SSL_HEADER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "600 True True True True True ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_the_cache_is_a_folder_by_default_and_redis_when_configured(tmp_path):
    expression = "settings.CACHES['default']['BACKEND'].rsplit('.', 1)[1], settings.CACHES['default']['LOCATION']"
    default = settings_in_subprocess({"MASKLOOP_VAR_DIR": str(tmp_path)}, expression)
    assert default.stdout.split() == ["FileBasedCache", str(tmp_path / "cache")], default.stderr
    redis = settings_in_subprocess({"MASKLOOP_VAR_DIR": str(tmp_path), "CACHE_URL": "redis://r.internal:6379/1"},
                                   expression)
    assert redis.stdout.split() == ["RedisCache", "redis://r.internal:6379/1"], redis.stderr


def test_pages_send_the_security_headers_and_a_self_only_policy(client):
    response = client.get("/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("style-src-attr")[0]  # only style attributes may be inline
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_templates_have_no_inline_script_or_event_handler():
    """The policy blocks them: every script is a static file, every handler is bound in JS."""
    offenders = []
    for template in (ROOT / "frontend" / "templates").rglob("*.html"):
        html = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            if "src=" not in tag and "application/json" not in tag:
                offenders.append(f"{template.name}: {tag}")
        offenders += [f"{template.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", html)]
    assert offenders == []


@pytest.mark.slow
def test_static_files_are_served_with_debug_off(tmp_path):
    """gunicorn + DEBUG=0 (the README's recipe): after collectstatic, the WSGI app itself serves the JS and CSS."""
    env = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "testserver",
           "MASKLOOP_VAR_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "collected")}
    collected = run_python(env, "manage.py", "collectstatic", "--noinput", "--verbosity", "0")
    assert collected.returncode == 0, collected.stderr
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
            "from django.test import Client; c = Client(); "
            "print(*[(r.status_code, r['Content-Type'].split(';')[0]) for r in "
            "(c.get('/static/frontend/label/labeler.js'), c.get('/static/frontend/base.css'))])")
    served = run_python(env, "-c", code)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip() == "(200, 'text/javascript') (200, 'text/css')"
    assert Path(tmp_path / "collected" / "frontend" / "label" / "labeler.js.gz").exists()  # compressed copies
