"""fastcore.stapling's schedule, and the shared slots of fastcore._core.tls
the arbiter writes OCSP responses into (checked responses: see
tests/e2e/test_tls_stapling.py and src_c/tests/test_fc_ocsp.c)."""
import logging
import os
import time
from types import SimpleNamespace

import pytest

from fastcore.stapling import next_fetch_time
from fastcore._core.tls import STAPLE_MAX, new_staples, staple_response, staple_state, store_staple


def test_a_response_is_fetched_again_after_the_refresh_or_at_half_its_time_left():
    assert next_fetch_time(1000, 0, 3600) == 4600                # no nextUpdate: the refresh
    assert next_fetch_time(1000, 1000 + 7 * 86400, 3600) == 4600  # a week left: the refresh
    assert next_fetch_time(1000, 1000 + 600, 3600) == 1300        # ten minutes left: in five
    assert next_fetch_time(1000, 1000, 3600) == 1001              # expiring now: at least a second on


def test_slots_hold_what_was_stored_each_apart():
    staples = new_staples(3)
    assert staple_state(staples, 1) == (0, 0, 0, "good")
    store_staple(staples, 1, b"\x30\x03abc", 1234, "revoked")
    length, expires, fetched, status = staple_state(staples, 1)
    assert (length, expires, status) == (5, 1234, "revoked") and fetched > 0
    assert staple_response(staples, 1) == b"\x30\x03abc"
    assert staple_response(staples, 0) == b"" and staple_response(staples, 2) == b""
    store_staple(staples, 1, b"", 0, "good")
    assert staple_response(staples, 1) == b""


def test_slot_bounds_and_sizes_are_checked():
    staples = new_staples(2)
    with pytest.raises(IndexError):
        staple_state(staples, 2)
    with pytest.raises(IndexError):
        store_staple(staples, -1, b"x", 0, "good")
    with pytest.raises(ValueError, match=f"at most {STAPLE_MAX}"):
        store_staple(staples, 0, b"x" * (STAPLE_MAX + 1), 0, "good")


def test_a_fetcher_that_outlives_its_time_is_killed_and_its_fetch_retried_later(monkeypatch):
    """A fetcher stuck where no socket timeout reaches (a name lookup that
    hangs) is killed once it outlives ssl_stapling_timeout a certificate
    plus the grace: the arbiter's tick does it, without waiting, and the
    certificate is due again after the retry interval, not at once."""
    from fastcore import stapling

    config = SimpleNamespace(certfile="server.pem", ssl_stapling_file=None, tls=[], ssl_stapling=True,
                             ssl_stapling_timeout=0.2, ssl_stapling_refresh=3600.0)
    monkeypatch.setattr(stapling, "FETCHER_GRACE", 0.3)
    monkeypatch.setattr(stapling, "fetch_all", lambda config, staples, due: time.sleep(60) or 0)
    lines = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("fastcore.error").addHandler(handler)
    stapler = stapling.Stapler(config)
    try:
        started = time.time()
        stapler.tick(started)
        pid = stapler.fetcher[0]
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # the fetcher runs (stuck)
        deadline = time.monotonic() + 10
        while stapler.fetcher is not None:
            assert time.monotonic() < deadline, "the stuck fetcher was not killed"
            time.sleep(0.05)
            stapler.tick(time.time())
    finally:
        logging.getLogger("fastcore.error").removeHandler(handler)
        stapler.stop()  # by its pid, if this test failed with the fetcher alive
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # killed, and reaped by the stapler
    assert any(f"fetcher {pid} took too long" in line for line in lines), lines
    assert stapler.next_fetch[0] == pytest.approx(started + min(stapling.RETRY, 3600.0))
    stapler.tick(time.time())
    assert stapler.fetcher is None  # not due again yet: no new fetcher
