"""tests/app/test_concurrency.py again on PostgreSQL, where row locks (not SQLite's one writer) decide who wins."""
import os

import pytest

if os.environ.get("MASKLOOP_INTEGRATION") != "1":
    pytest.skip(
        "integration tier not configured: run `python tests/integration/run.py` (make test does) "
        "with PostgreSQL and Redis on 127.0.0.1",
        allow_module_level=True,
    )

from tests.app.test_concurrency import (  # noqa: E402,F401 - collected here as this module's tests
    annotators, round_, test_the_last_two_submits_at_once_close_the_round_once,
    test_twenty_annotators_saving_one_query_get_one_lock_and_nineteen_409s,
    test_twenty_saves_from_one_version_store_one_and_answer_409_stale_to_the_rest,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_runs_on_postgresql():
    from django.db import connection

    assert connection.vendor == "postgresql"
