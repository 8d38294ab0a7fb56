"""Access log: one line per request, buffered, written in batches.

Theory of operation: `AccessLog.log()` formats a line and appends it to an
in-memory buffer. The buffer goes out in one `os.write` when it holds at
least `flush_bytes`, or when a line arrives `flush_interval` seconds or more
after the last write; the worker also calls `flush_if_due()` from a timer so
that the last lines of a quiet period do not wait for the next request.
A busy worker therefore makes one system call per batch, never one per
request.

Invariants:
- every line ends with exactly one newline and contains no other, whatever
  the client sent: combined fields are escaped (`\\"`, `\\\\`, `\\xHH`),
  json fields go through `json.dumps` (ASCII only, control characters as
  `\\uXXXX`);
- a failed write drops the batch (the buffer never grows without bound) and
  is reported once on the `fastcore.error` logger until a write succeeds;
  logging never raises into the request path;
- `reopen()` writes the buffered lines to the old file before reopening, so
  after logrotate moves the file every line lands in the file that was
  current when it was logged.

`when` is a Unix timestamp in seconds (float), as from `time.time()`; both
formats print it in UTC.
"""
import json
import logging
import os
import random
import time

__all__ = ["AccessLog", "make_request_id", "FORMATS"]

FORMATS = ("combined", "combined_id", "json")

error_log = logging.getLogger("fastcore.error")

# strftime("%b") follows the locale; log lines must not.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Combined format escaping, as nginx does it: the field delimiters `"` and
# `\` get a backslash, every byte outside printable ASCII becomes \xHH. The
# table covers U+0000..U+00FF, which is every character of a WSGI native
# string (bytes decoded as latin-1); wider characters are first reduced to
# their UTF-8 bytes by _escape().
_ESCAPES = {code: f"\\x{code:02X}" for code in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def _escape(value):
    """A field of a combined line: escaped, "-" when empty or missing."""
    if not value:
        return "-"
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("latin-1")
    elif not value.isascii() and max(value) > "\xff":
        # backslashreplace: lone surrogates cannot be encoded and must not raise
        value = value.encode("utf-8", "backslashreplace").decode("latin-1")
    return value.translate(_ESCAPES)


def _text(value):
    """A field of a json line: str, or None when missing."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    return value


class AccessLog:
    """An access log target ("-" for stdout, or a file path) in one format.

    Not thread safe: each worker owns one and logs from its loop thread.
    """

    def __init__(self, path, fmt="combined", flush_bytes=65536, flush_interval=1.0,
                 clock=time.monotonic):
        if fmt not in FORMATS:
            raise ValueError(f"access log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.path = path
        self.fmt = fmt
        self.flush_bytes = flush_bytes
        self.flush_interval = flush_interval
        self._clock = clock
        self._format_line = {"combined": self._format_combined, "combined_id": self._format_combined_id,
                             "json": self._format_json}[fmt]
        self._buffer = bytearray()
        self._fd = self._open()
        self._last_write = clock()
        self._failing = False
        # combined timestamps change once a second; format each second once
        self._cached_second = None
        self._cached_stamp = ""
        self.lost_bytes = 0  # bytes dropped by failed writes, for tests and /status

    @property
    def closed(self):
        return self._fd is None

    def _open(self):
        if self.path == "-":
            return 1
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def log(self, remote_addr, method, target, version, status, body_bytes, duration_us,
            user_agent, referer, request_id, when=None, reason=None):
        """Buffer one line; write the buffer out if it is full or due.
        `reason`: why the server refused the request itself (a json field;
        the error log has it for every format)."""
        if self._fd is None:
            raise ValueError("access log is closed")
        if when is None:
            when = time.time()
        line = self._format_line(remote_addr, method, target, version, status, body_bytes,
                                 duration_us, user_agent, referer, request_id, when, reason)
        self._buffer += line.encode("ascii")
        if len(self._buffer) >= self.flush_bytes:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self):
        """Write the buffer if flush_interval has passed since the last write."""
        if self._buffer and self._clock() - self._last_write >= self.flush_interval:
            self.flush()

    def flush(self):
        """Write what is buffered (nothing to do, no system call, when empty)."""
        if not self._buffer or self._fd is None:
            return
        data = self._buffer
        self._buffer = bytearray()
        self._last_write = self._clock()
        try:
            view = memoryview(data)
            while view:  # short writes: a full pipe, a signal mid-write
                view = view[os.write(self._fd, view):]
        except OSError as error:
            self.lost_bytes += len(view)
            if not self._failing:
                error_log.error("access log %s: write failed, lines dropped: %s", self.path, error)
            self._failing = True
        else:
            self._failing = False

    def reopen(self):
        """Flush to the current file, then open the path again (after logrotate)."""
        if self._fd is None:
            raise ValueError("access log is closed")
        self.flush()
        if self.path == "-":
            return
        fd = self._open()  # open first: on failure the old file keeps working
        os.close(self._fd)
        self._fd = fd

    def close(self):
        """Flush and close; stdout stays open. Closing twice is harmless."""
        if self._fd is None:
            return
        self.flush()
        if self.path != "-":
            os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # formats

    def _combined_stamp(self, when):
        second = int(when)
        if second != self._cached_second:
            t = time.gmtime(second)
            self._cached_stamp = (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                                  f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")
            self._cached_second = second
        return self._cached_stamp

    def _format_combined(self, remote_addr, method, target, version, status, body_bytes,
                         duration_us, user_agent, referer, request_id, when, reason=None):
        # a request line may lack parts (HTTP/0.9, a 400 on garbage): keep what came
        request_line = " ".join(_escape(part) for part in (method, target, version) if part) or "-"
        return (f'{_escape(remote_addr)} - - [{self._combined_stamp(when)}] '
                f'"{request_line}" {int(status)} {int(body_bytes or 0)} '
                f'"{_escape(referer)}" "{_escape(user_agent)}"\n')

    def _format_combined_id(self, remote_addr, method, target, version, status, body_bytes,
                            duration_us, user_agent, referer, request_id, when, reason=None):
        # combined, then the request id as one more quoted field: tools that
        # read combined lines ignore what follows the user agent
        line = self._format_combined(remote_addr, method, target, version, status, body_bytes,
                                     duration_us, user_agent, referer, request_id, when)
        return f'{line[:-1]} "{_escape(request_id)}"\n'

    @staticmethod
    def _format_json(remote_addr, method, target, version, status, body_bytes,
                     duration_us, user_agent, referer, request_id, when, reason=None):
        # round, not truncate: 41.123 is 41.12299999... as a float
        seconds, millis = divmod(int(round(when * 1000)), 1000)
        t = time.gmtime(seconds)
        stamp = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
                 f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z")
        record = {
            "time": stamp,
            "remote_addr": _text(remote_addr),
            "method": _text(method),
            "path": _text(target),
            "version": _text(version),
            "status": int(status),
            "bytes": int(body_bytes or 0),
            "duration_us": int(duration_us),
            "user_agent": _text(user_agent),
            "request_id": _text(request_id),
        }
        if reason is not None:
            record["reason"] = reason
        # ensure_ascii (the default) keeps the line one line of plain ASCII
        return json.dumps(record, separators=(",", ":")) + "\n"


# Request ids come from a generator of our own, not os.urandom (one system
# call per request) nor the shared `random` module (an application calling
# random.seed() would make ids repeat). It is seeded from os.urandom and
# reseeded in every forked child, so workers never share a sequence.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


def make_request_id():
    """A short unique id for a request: 16 hex digits (64 random bits)."""
    return f"{_ids.getrandbits(64):016x}"
