"""Brute force: the log-in page and the token endpoint refuse (429) a user name and address past the failure limit."""
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def three_failures_allowed(settings):
    settings.MASKLOOP_LOGIN_FAILURES = 3
    settings.MASKLOOP_LOGIN_WINDOW_SECONDS = 900
    cache.clear()
    yield
    cache.clear()


def token(username: str, password: str, address: str = "127.0.0.1"):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, REMOTE_ADDR=address)


def login_page(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_token_endpoint_answers_429_after_the_failures_even_to_the_right_password(users):
    assert [token("lead", "wrong").status_code for _ in range(3)] == [400, 400, 400]
    refused = token("lead", "pw-lead")
    assert refused.status_code == 429
    assert "Too many failed log-ins" in refused.json()["detail"]
    assert 0 < int(refused["Retry-After"]) <= 900


def test_the_login_page_answers_429_with_a_message_and_does_not_check_the_password(client, users):
    for _ in range(3):
        assert login_page(client, "lead", "wrong").status_code == 200  # the form again, "Wrong user name or password"
    refused = login_page(client, "lead", "pw-lead")
    assert refused.status_code == 429
    assert "Too many failed log-ins for this user name from your address" in refused.content.decode()
    assert "Wrong user name or password" not in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_both_doors_share_one_count(client, users):
    login_page(client, "lead", "wrong")
    token("lead", "wrong")
    login_page(client, "lead", "wrong")
    assert token("lead", "pw-lead").status_code == 429


def test_the_limit_is_per_user_name_and_address(client, users):
    for _ in range(3):
        token("lead", "wrong")
    assert token("lead", "pw-lead", address="10.0.0.2").status_code == 200  # the lead from elsewhere
    assert token("annotator", "pw-annotator").status_code == 200  # another user from the same address


def test_a_successful_login_clears_the_count(client, users):
    for _ in range(2):
        token("lead", "wrong")
    assert login_page(client, "lead", "pw-lead").status_code == 302
    for _ in range(3):
        assert token("lead", "wrong").status_code == 400


def test_the_refusal_ends_with_the_window(users, monkeypatch):
    import annotator.login_throttle as rule

    now = [1_000_000 * 900.0]
    monkeypatch.setattr(rule.time, "time", lambda: now[0])
    for _ in range(3):
        token("lead", "wrong")
    assert token("lead", "pw-lead").status_code == 429
    now[0] += 900
    assert token("lead", "pw-lead").status_code == 200


def test_a_forged_forwarded_for_header_does_not_reset_the_count(users):
    client = APIClient()
    for i in range(4):
        response = client.post("/api/auth/token/", {"username": "lead", "password": "wrong"},
                               HTTP_X_FORWARDED_FOR=f"10.9.9.{i}")
    assert response.status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_counts(settings, users):
    settings.MASKLOOP_NUM_PROXIES = 1
    client = APIClient()
    for _ in range(3):
        client.post("/api/auth/token/", {"username": "lead", "password": "wrong"}, HTTP_X_FORWARDED_FOR="10.1.1.1")
    assert client.post("/api/auth/token/", {"username": "lead", "password": "pw-lead"},
                       HTTP_X_FORWARDED_FOR="10.1.1.1").status_code == 429
    assert client.post("/api/auth/token/", {"username": "lead", "password": "pw-lead"},
                       HTTP_X_FORWARDED_FOR="10.1.1.2").status_code == 200
