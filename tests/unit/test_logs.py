"""fastcore.logs: line formats, escaping, batched writes, reopen, request ids."""

import calendar
import json
import os

import pytest

from fastcore import logs
from fastcore.logs import AccessLog, make_request_id

# 24 Nov 2026 10:27:41.123 UTC
WHEN = calendar.timegm((2026, 11, 24, 10, 27, 41, 0, 0, 0)) + 0.123

REQUEST = dict(remote_addr="203.0.113.7", method="GET", target="/path?q=1", version="HTTP/1.1",
               status=200, body_bytes=13, duration_us=1500, user_agent="curl/8.5.0",
               referer="https://example.com/", request_id="0123456789abcdef", when=WHEN)

COMBINED_LINE = ('203.0.113.7 - - [24/Nov/2026:10:27:41 +0000] "GET /path?q=1 HTTP/1.1" 200 13 '
                 '"https://example.com/" "curl/8.5.0"\n')

HOSTILE_AGENT = 'x" 200 0 "-" "-"\n203.0.113.9 - - [forged]\x00 back\\slash'


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def writes(monkeypatch):
    """The sizes of os.write calls, per file descriptor; the writes still happen."""
    calls = []
    real_write = os.write

    def counting_write(fd, data):
        calls.append((fd, len(data)))
        return real_write(fd, data)

    monkeypatch.setattr(logs.os, "write", counting_write)
    return calls


def logged(tmp_path, fmt="combined", **fields):
    """The text one request produces in a fresh log."""
    path = tmp_path / "access.log"
    with AccessLog(str(path), fmt=fmt) as log:
        log.log(**{**REQUEST, **fields})
    return path.read_text(encoding="ascii")


def test_logs_combined_exact_line(tmp_path):
    assert logged(tmp_path) == COMBINED_LINE


def test_logs_combined_id_is_combined_then_the_request_id(tmp_path):
    assert logged(tmp_path, fmt="combined_id") == COMBINED_LINE[:-1] + ' "0123456789abcdef"\n'
    (tmp_path / "access.log").unlink()
    assert logged(tmp_path, fmt="combined_id", request_id='x"y\n').endswith(' "x\\"y\\x0A"\n')


def test_logs_combined_empty_fields_dash_and_zero_bytes(tmp_path):
    line = logged(tmp_path, status=304, body_bytes=0, user_agent="", referer=None)
    assert line == ('203.0.113.7 - - [24/Nov/2026:10:27:41 +0000] "GET /path?q=1 HTTP/1.1" 304 0 '
                    '"-" "-"\n')


def test_logs_combined_month_is_english_whatever_the_date(tmp_path):
    january = calendar.timegm((2027, 1, 2, 3, 4, 5, 0, 0, 0))
    assert "[02/Jan/2027:03:04:05 +0000]" in logged(tmp_path, when=january)


def test_logs_combined_hostile_user_agent_stays_one_line(tmp_path):
    text = logged(tmp_path, user_agent=HOSTILE_AGENT, referer='"\\')
    assert text.count("\n") == 1
    assert text.endswith(
        '"\\"\\\\" "x\\" 200 0 \\"-\\" \\"-\\"\\x0A203.0.113.9 - - [forged]\\x00 back\\\\slash"\n')


def test_logs_combined_escapes_non_ascii_as_bytes(tmp_path):
    # a WSGI native string holds the raw bytes decoded as latin-1; a wider
    # str is logged as its UTF-8 bytes
    text = logged(tmp_path, target="/caf\xc3\xa9", user_agent="\u2603\x7f")
    assert '"GET /caf\\xC3\\xA9 HTTP/1.1"' in text
    assert text.endswith('"\\xE2\\x98\\x83\\x7F"\n')


def test_logs_combined_bytes_fields(tmp_path):
    text = logged(tmp_path, method=b"GET", target=b"/a\"b", user_agent=b"ua\n")
    assert '"GET /a\\"b HTTP/1.1"' in text
    assert text.endswith('"ua\\x0A"\n')


def test_logs_json_exact_line(tmp_path):
    assert logged(tmp_path, fmt="json") == (
        '{"time":"2026-11-24T10:27:41.123Z","remote_addr":"203.0.113.7","method":"GET",'
        '"path":"/path?q=1","version":"HTTP/1.1","status":200,"bytes":13,"duration_us":1500,'
        '"user_agent":"curl/8.5.0","request_id":"0123456789abcdef"}\n')


def test_logs_json_hostile_user_agent_round_trips_on_one_line(tmp_path):
    text = logged(tmp_path, fmt="json", user_agent=HOSTILE_AGENT)
    assert text.count("\n") == 1
    assert text.isascii()
    assert json.loads(text)["user_agent"] == HOSTILE_AGENT


def test_logs_refused_request_reason_is_a_json_field_and_combined_keeps_its_fields(tmp_path):
    # a request the server refused before its head was parsed: no request line
    refused = dict(method=None, target=None, version=None, status=400, user_agent=None, referer=None,
                   request_id=None, reason="bare LF\n in \"head\"")
    record = json.loads(logged(tmp_path, fmt="json", **refused))
    assert (record["method"], record["path"], record["status"]) == (None, None, 400)
    assert record["reason"] == "bare LF\n in \"head\""
    (tmp_path / "access.log").unlink()
    assert logged(tmp_path, **refused) == '203.0.113.7 - - [24/Nov/2026:10:27:41 +0000] "-" 400 13 "-" "-"\n'


def test_logs_unknown_format_rejected(tmp_path):
    with pytest.raises(ValueError, match="combined, combined_id, json"):
        AccessLog(str(tmp_path / "access.log"), fmt="common")


def test_logs_batch_written_once_when_flush_bytes_reached(tmp_path, clock, writes):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), flush_bytes=300, clock=clock)
    for _ in range(2):
        log.log(**REQUEST)
        assert path.read_bytes() == b""
    assert writes == []
    log.log(**REQUEST)  # three lines of ~110 bytes: over 300
    assert len(writes) == 1
    assert path.read_text().count("\n") == 3
    assert writes[0] == (log._fd, path.stat().st_size)
    log.close()


def test_logs_batch_written_when_interval_passed(tmp_path, clock, writes):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), flush_interval=1.0, clock=clock)
    log.log(**REQUEST)
    clock.now += 0.5
    log.log(**REQUEST)
    assert writes == [] and path.read_bytes() == b""
    clock.now += 0.5
    log.log(**REQUEST)
    assert len(writes) == 1
    assert path.read_text().count("\n") == 3
    # the interval counts again from that write
    clock.now += 0.9
    log.log(**REQUEST)
    assert len(writes) == 1
    log.close()
    assert len(writes) == 2
    assert path.read_text().count("\n") == 4


def test_logs_flush_if_due_writes_a_quiet_buffer(tmp_path, clock, writes):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), clock=clock)
    log.flush_if_due()  # nothing buffered: no system call
    log.log(**REQUEST)
    log.flush_if_due()
    assert writes == []
    clock.now += 1.0
    log.flush_if_due()
    assert len(writes) == 1 and path.read_text().count("\n") == 1
    log.flush()  # empty again: no system call
    assert len(writes) == 1
    log.close()


def test_logs_flush_writes_everything_in_one_call(tmp_path, clock, writes):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), clock=clock)
    for _ in range(50):
        log.log(**REQUEST)
    assert writes == []
    log.flush()
    assert len(writes) == 1
    assert path.read_text().count("\n") == 50
    log.close()


def test_logs_short_write_is_completed(tmp_path, monkeypatch):
    path = tmp_path / "access.log"
    real_write = os.write
    monkeypatch.setattr(logs.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    with AccessLog(str(path)) as log:
        log.log(**REQUEST)
    monkeypatch.undo()
    assert path.read_text() == COMBINED_LINE


def test_logs_appends_to_existing_file(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    with AccessLog(str(path)) as log:
        log.log(**REQUEST)
    assert path.read_text().startswith("earlier\n203.0.113.7 ")


def test_logs_reopen_after_rename_writes_a_new_file(tmp_path):
    path = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    log = AccessLog(str(path))
    log.log(**{**REQUEST, "target": "/one"})
    log.flush()
    os.rename(path, rotated)
    log.log(**{**REQUEST, "target": "/two"})  # buffered: belongs to the old file
    log.reopen()
    assert path.exists() and path.read_bytes() == b""
    log.log(**{**REQUEST, "target": "/three"})
    log.close()
    old = rotated.read_text()
    assert "/one" in old and "/two" in old and "/three" not in old
    assert path.read_text().count("\n") == 1 and "/three" in path.read_text()


def test_logs_stdout_target(capfd):
    log = AccessLog("-")
    log.log(**REQUEST)
    assert capfd.readouterr().out == ""
    log.close()
    assert capfd.readouterr().out == COMBINED_LINE
    os.fstat(1)  # stdout is not ours to close


def test_logs_closed_log_refuses_lines(tmp_path):
    log = AccessLog(str(tmp_path / "access.log"))
    log.close()
    log.close()
    assert log.closed
    with pytest.raises(ValueError):
        log.log(**REQUEST)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_logs_write_error_drops_batch_without_raising(caplog):
    log = AccessLog("/dev/full")
    log.log(**REQUEST)
    log.flush()
    log.log(**REQUEST)
    log.flush()
    assert log.lost_bytes > 0
    errors = [record for record in caplog.records if record.name == "fastcore.error"]
    assert len(errors) == 1  # once per failure streak, not per batch
    log.close()


def test_logs_request_id_short_unique_hex():
    ids = {make_request_id() for _ in range(10000)}
    assert len(ids) == 10000
    assert all(len(value) == 16 and int(value, 16) >= 0 for value in ids)


def test_logs_request_id_differs_in_forked_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, make_request_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent_id = make_request_id()
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_id) == 16 and child_id != parent_id
