"""Playwright driving Debian's Chromium (/usr/bin/chromium), never a downloaded browser.

Every test in this folder is marked ``browser`` and skips, saying why, where
Chromium or Playwright is missing. Pages are served by pytest-django's
``live_server`` on the test database.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM would then
# refuse the fixtures' queries as "async unsafe" although nothing here is async.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("MASKLOOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# A string that already is a function (arrow or `function`), as Playwright tells them apart.
_FUNCTION = re.compile(r"^\s*(async\s+)?((\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>|function\b)")


def _csp_safe_wait_for_function(wait_for_function):
    """Playwright polls a wait_for_function *expression* through eval, which the app's Content-Security-Policy
    forbids (the test would fail with an EvalError); a function it compiles without eval, so wrap expressions."""

    def wait(expression: str, **kwargs):
        return wait_for_function(expression if _FUNCTION.match(expression) else f"() => ({expression})", **kwargs)

    return wait


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.wait_for_function = _csp_safe_wait_for_function(page.wait_for_function)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.console_messages = console
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def login(live_server):
    """``login(page, username, password)``: sign in through the real login form."""

    def sign_in(page, username: str, password: str, *, next_url: str = "/") -> None:
        page.goto(f"{live_server.url}/login/?next={next_url}")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert "/login/" not in page.url, f"login as {username} failed: still on {page.url}"

    return sign_in


@pytest.fixture
def create_project(live_server):
    """``create_project(page, name, classes)``: fill /projects/new/ (classes one a line) and land on its settings."""

    def create(page, name: str, classes: str) -> None:
        page.goto(f"{live_server.url}/projects/new/")
        page.fill("input[name=name]", name)
        page.fill("textarea[name=classes]", classes)
        page.click("button[type=submit]")
        page.wait_for_url("**/settings/")

    return create
