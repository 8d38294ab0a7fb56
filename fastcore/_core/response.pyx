# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""What every handler's responses share: the one table of status reasons
(RFC 9110 section 15), the Date line and the plain-text answers the server
gives on its own (an error, a 404, a 503 when out of descriptors, a 502 or
504 from the proxy). Handlers add their own headers around these; none
writes a reason or an error head of its own."""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memcpy

from fastcore._core.includes.syscalls cimport CLOCK_REALTIME, clock_gettime, timespec
from fastcore._core.includes.fc_static cimport FC_HTTP_DATE_LEN, fc_http_date_format

cdef dict REASONS = {
    100: b"Continue", 101: b"Switching Protocols",
    200: b"OK", 201: b"Created", 202: b"Accepted", 204: b"No Content", 206: b"Partial Content",
    301: b"Moved Permanently", 302: b"Found", 303: b"See Other", 304: b"Not Modified",
    307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 411: b"Length Required",
    412: b"Precondition Failed", 413: b"Content Too Large", 414: b"URI Too Long",
    416: b"Range Not Satisfiable", 417: b"Expectation Failed", 421: b"Misdirected Request",
    429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
}

# "HTTP/1.1 200 OK\r\n" for every status of the table, made once
cdef dict STATUS_LINES = {status: b"HTTP/1.1 %d %s\r\n" % (status, why) for status, why in REASONS.items()}

cdef long date_second = -1
cdef bytes date_header = None


cdef bytes date_line():
    """The Date header line (RFC 9110 5.6.7 IMF-fixdate), formatted in C
    once a second and shared by every handler of the worker."""
    global date_second, date_header
    cdef timespec ts
    cdef char line[FC_HTTP_DATE_LEN + 9]
    clock_gettime(CLOCK_REALTIME, &ts)
    if ts.tv_sec != date_second:
        date_second = ts.tv_sec
        memcpy(line, b"Date: ", 6)
        fc_http_date_format(ts.tv_sec, line + 6)
        memcpy(line + 6 + FC_HTTP_DATE_LEN, b"\r\n", 2)
        date_header = PyBytes_FromStringAndSize(line, 6 + FC_HTTP_DATE_LEN + 2)
    return date_header


cdef bytes reason(int status):
    return REASONS.get(status, b"Unknown")


cdef frozenset TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                                       b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


cdef bint is_token(bytes text):
    return len(text) > 0 and TOKEN_BYTES.issuperset(text)


cdef tuple header_pair(object item):
    """An application's response header as (name, value): a pair of bytes,
    the name a token, no CR, LF or NUL in the value (else TypeError or
    ValueError, saying which)."""
    try:
        name, value = item
    except (TypeError, ValueError):
        raise TypeError(f"response header {item!r} is not a [name, value] pair") from None
    if type(name) is not bytes or type(value) is not bytes:
        raise TypeError(f"response header {item!r}: name and value must be bytes")
    if not is_token(name):
        raise ValueError(f"invalid response header name {name!r} from the application")
    if b"\n" in value or b"\r" in value or b"\0" in value:
        raise ValueError(f"value of response header {name!r} contains CR, LF or NUL")
    return (name, value)


cdef bytes status_line(int status):
    cdef object line = STATUS_LINES.get(status)
    if line is None:
        return b"HTTP/1.1 %d %s\r\n" % (status, reason(status))
    return <bytes>line


cdef bytes plain_response(int status, str message, bint keep_alive, bint no_body, bytes extra=b""):
    """A whole response: status line, text/plain body "<status> <reason>:
    <message>" (the Content-Length of that body even with no_body, as HEAD
    requires), extra header lines, Date, and Connection: close unless
    keep_alive."""
    cdef bytes why = reason(status)
    cdef bytes body = b"%d %s%s\n" % (status, why, (": " + message).encode("latin-1", "replace") if message else b"")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s%s%s\r\n%s" % (
        status, why, len(body), extra, b"" if keep_alive else b"Connection: close\r\n", date_line(),
        b"" if no_body else body))


def response_for_tests(int status, str message="", bint keep_alive=False, bint no_body=False, bytes extra=b""):
    """plain_response from Python, for unit tests."""
    return plain_response(status, message, keep_alive, no_body, extra)
