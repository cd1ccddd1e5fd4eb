"""Brute-force protection for the log-in page and the token endpoint: one rule for both doors.

Each attempt for a user name from an address is counted *before* the password
is checked, so a burst of parallel guesses cannot all slip in while the first
ones are still hashing. Within one window of MASKLOOP_LOGIN_WINDOW_SECONDS, at
most MASKLOOP_LOGIN_FAILURES attempts that do not succeed are let through;
later ones are refused (429) until the window ends, whatever the password. A
successful log-in clears the count. Counts live in Django's cache, which every
web process shares (a folder by default, Redis when CACHE_URL is set).
"""
from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the entry MASKLOOP_NUM_PROXIES trusted proxies added to X-Forwarded-For."""
    proxies = settings.MASKLOOP_NUM_PROXIES
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if proxies > 0 and hops:
        return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")


def _window_key(username: str, address: str) -> tuple[str, float]:
    """The cache key of this user name and address in the current window, and the seconds left in that window."""
    window = settings.MASKLOOP_LOGIN_WINDOW_SECONDS
    now = time.time()
    index = int(now // window)
    who = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()[:32]
    return f"maskloop:login:{who}:{index}", (index + 1) * window - now


def login_attempt_wait(*, username: str, address: str) -> int:
    """Count an attempt to log in; 0 when it may go ahead, else the seconds until the window ends."""
    limit, window = settings.MASKLOOP_LOGIN_FAILURES, settings.MASKLOOP_LOGIN_WINDOW_SECONDS
    if limit <= 0:
        return 0
    key, seconds_left = _window_key(username, address)
    cache.add(key, 0, timeout=window)
    try:
        attempts = cache.incr(key)  # atomic on Redis
    except ValueError:  # expired between add and incr
        attempts = 1
        cache.set(key, attempts, timeout=window)
    # The file and database caches' incr resets the expiry to the cache default (5 min): restore it.
    cache.touch(key, timeout=window)
    return 0 if attempts <= limit else max(1, math.ceil(seconds_left))


def login_succeeded(*, username: str, address: str) -> None:
    """Forget the attempts of a user name from an address once one of them succeeded."""
    cache.delete(_window_key(username, address)[0])
