"""Parser layer: fastcore against httptools and h11, side by side.

Each contender produces the method, the target and every header as Python
objects (and the body where there is one), so the work compared is the same.
Run: pytest bench/bench_parser.py --benchmark-only --benchmark-group-by=group
"""
import pathlib

import h11
import httptools
import pytest

from fastcore.http import RequestParser

DATA = pathlib.Path(__file__).parent / "data"

MINIMAL = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
REALISTIC = (DATA / "realistic.http").read_bytes()
HEADERS_30 = (
    b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\n"
    + b"".join(b"X-Custom-Header-%02d: value-%02d-abcdefghijklmnop\r\n" % (i, i) for i in range(29))
    + b"\r\n"
)


def chunked_request(total=64 * 1024, chunk=4096):
    body = bytes(range(256)) * (chunk // 256)
    parts = [b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"]
    for _ in range(total // chunk):
        parts.append(b"%x\r\n%s\r\n" % (len(body), body))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts), total


CHUNKED_64K, CHUNKED_SIZE = chunked_request()

CASES = {
    "minimal": MINIMAL,
    "realistic": REALISTIC,
    "headers30": HEADERS_30,
    "chunked64k": CHUNKED_64K,
}


def parse_fastcore(parser, data):
    request = parser.feed(data)[0]
    return request.method, request.target, request.headers, request.body


class HttptoolsProtocol:
    def __init__(self):
        self.headers = []
        self.body = []
        self.url = None

    def on_url(self, url):
        self.url = url

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_body(self, body):
        self.body.append(body)


def make_httptools():
    protocol = HttptoolsProtocol()
    return protocol, httptools.HttpRequestParser(protocol)


def parse_httptools(state, data):
    # one parser reused across requests, as a keep-alive server does
    protocol, parser = state
    protocol.headers = []
    protocol.body = []
    parser.feed_data(data)
    return parser.get_method(), protocol.url, protocol.headers, b"".join(protocol.body)


def parse_h11(_, data):
    # h11 needs a response before its next cycle, so a server makes a new
    # Connection per request in this situation; that is its real cost
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request = conn.next_event()
    body = []
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            body.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
    return request.method, request.target, list(request.headers), b"".join(body)


PARSERS = {
    "fastcore": (RequestParser, parse_fastcore),
    "httptools": (make_httptools, parse_httptools),
    "h11": (lambda: None, parse_h11),
}


@pytest.mark.parametrize("name", list(PARSERS))
@pytest.mark.parametrize("case", list(CASES))
def test_parse(benchmark, case, name):
    make_state, parse = PARSERS[name]
    data = CASES[case]
    benchmark.group = f"parser-{case}"
    state = make_state()
    method, target, headers, body = benchmark(parse, state, data)
    # the same work was done: every contender saw the whole request
    assert method in ("GET", "POST", b"GET", b"POST")
    assert len(headers) == data[: data.index(b"\r\n\r\n")].count(b"\r\n")
    if case == "chunked64k":
        assert len(body) == CHUNKED_SIZE
