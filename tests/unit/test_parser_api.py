"""RequestParser behaviour the corpus cannot show: limits given as keyword
arguments, errors on input that is still incomplete, the dead state after an
error, the keep-alive / Expect / Upgrade / trailer attributes, pipelining
and the buffer types feed() takes."""

import pytest

from fastcore.http import DEFAULT_LIMITS, ParseError, RequestParser

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def request_line(length):
    """A GET request line of exactly `length` bytes, CRLF included."""
    target = b"/" + b"a" * (length - len(b"GET / HTTP/1.1\r\n"))
    line = b"GET " + target + b" HTTP/1.1\r\n"
    assert len(line) == length
    return line


def head(*fields, line=b"POST / HTTP/1.1"):
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def parse_one(raw, **limits):
    requests = RequestParser(**limits).feed(raw)
    assert len(requests) == 1
    return requests[0]


def raises_status(status, *pieces, **limits):
    parser = RequestParser(**limits)
    with pytest.raises(ParseError) as info:
        for piece in pieces:
            assert parser.feed(piece) == []
    assert info.value.status == status, str(info.value)
    assert isinstance(info.value, Exception)
    return info.value


def raises_status_in(statuses, raw, **limits):
    with pytest.raises(ParseError) as info:
        RequestParser(**limits).feed(raw)
    assert info.value.status in statuses, str(info.value)
    return info.value


def test_parser_default_limits():
    assert DEFAULT_LIMITS == {
        "max_body": 16 * 1024 * 1024,
        "max_request_line": 8190,
        "max_header_bytes": 32768,
        "max_headers": 100,
        "max_chunk_line": 4096,
    }


# ---- limits as keyword arguments ----

def test_parser_request_line_limit_includes_crlf():
    raw = request_line(32) + b"Host: x\r\n\r\n"
    assert parse_one(raw, max_request_line=32).target == "/" + "a" * 16
    raises_status(414, request_line(33) + b"Host: x\r\n\r\n", max_request_line=32)


def test_parser_request_line_limit_on_partial_line():
    # no CRLF yet: the parser must not wait for one to know the line is too long
    raises_status(414, b"GET /" + b"a" * 40, max_request_line=32)
    raises_status(414, *[b"GET /"] + [b"aaaa"] * 10, max_request_line=32)


def test_parser_request_line_limit_partial_line_under_limit_waits():
    assert RequestParser(max_request_line=32).feed(b"GET /aaaa") == []


def test_parser_max_headers():
    fields = [b"Host: x", b"A: 1", b"B: 2"]
    assert len(parse_one(head(*fields, line=b"GET / HTTP/1.1"), max_headers=3).headers) == 3
    raises_status(431, head(*fields, b"C: 3", line=b"GET / HTTP/1.1"), max_headers=3)


def test_parser_max_headers_on_incomplete_head():
    # four complete field lines, no empty line yet
    raises_status(431, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n", max_headers=3)


def test_parser_max_header_bytes_on_incomplete_head():
    raises_status(431, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 400, max_header_bytes=256)
    raises_status(431, b"GET / HTTP/1.1\r\nHost: x\r\n", *[b"X: y\r\n"] * 50, max_header_bytes=256)


def test_parser_max_header_bytes_allows_smaller_head():
    raw = head(b"Host: x", b"X-Small: " + b"s" * 100, line=b"GET / HTTP/1.1")
    assert parse_one(raw, max_header_bytes=256).headers[1] == ("X-Small", "s" * 100)


def test_parser_content_length_over_max_body_before_any_body_byte():
    raises_status(413, head(b"Host: x", b"Content-Length: 11"), max_body=10)


def test_parser_content_length_at_max_body():
    request = parse_one(head(b"Host: x", b"Content-Length: 10") + b"0123456789", max_body=10)
    assert request.body == b"0123456789"


def test_parser_content_length_overflowing_integer():
    err = raises_status_in((400, 413), head(b"Host: x", b"Content-Length: " + b"9" * 30))
    assert "length" in str(err).lower() or err.status == 413


def test_parser_chunked_body_over_max_body():
    raw = head(b"Host: x", b"Transfer-Encoding: chunked") + b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"
    raises_status(413, raw, max_body=10)


def test_parser_chunked_body_at_max_body():
    raw = head(b"Host: x", b"Transfer-Encoding: chunked") + b"5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n"
    assert parse_one(raw, max_body=10).body == b"abcdefghij"


def test_parser_chunk_line_limit():
    raw = head(b"Host: x", b"Transfer-Encoding: chunked") + b"5;" + b"e" * 64 + b"\r\nhello\r\n0\r\n\r\n"
    assert parse_one(raw, max_chunk_line=128).body == b"hello"
    raises_status(400, raw, max_chunk_line=32)


# ---- state across feeds ----

def test_parser_dead_after_error():
    parser = RequestParser()
    with pytest.raises(ParseError) as first:
        parser.feed(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
    for _ in range(2):
        with pytest.raises(ParseError) as again:
            parser.feed(GET)
        assert again.value.status == first.value.status


def test_parser_empty_feed_returns_empty_list():
    parser = RequestParser()
    assert parser.feed(b"") == []
    assert parser.feed(GET[:10]) == []
    assert parser.feed(b"") == []
    (request,) = parser.feed(GET[10:])
    assert request.target == "/"
    assert parser.feed(b"") == []


def test_parser_partial_body_stays_buffered():
    parser = RequestParser()
    assert parser.feed(head(b"Host: x", b"Content-Length: 6")) == []
    assert parser.feed(b"abc") == []
    (request,) = parser.feed(b"def" + GET[:5])
    assert request.body == b"abcdef"
    (after,) = parser.feed(GET[5:])
    assert after.method == "GET"


def test_parser_fifty_pipelined_requests_in_order():
    stream = []
    for i in range(50):
        if i % 3 == 0:
            stream.append(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        elif i % 3 == 1:
            body = b"body-%d" % i
            stream.append(head(b"Host: x", b"Content-Length: %d" % len(body), line=b"POST /%d HTTP/1.1" % i) + body)
        else:
            body = b"chunk-%d" % i
            stream.append(head(b"Host: x", b"Transfer-Encoding: chunked", line=b"POST /%d HTTP/1.1" % i)
                          + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    requests = RequestParser().feed(b"".join(stream))
    assert [r.target for r in requests] == ["/%d" % i for i in range(50)]
    for i, request in enumerate(requests):
        expected = {0: b"", 1: b"body-%d" % i, 2: b"chunk-%d" % i}[i % 3]
        assert request.body == expected


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_parser_feed_accepts_buffers(wrap):
    (request,) = RequestParser().feed(wrap(GET))
    assert (request.method, request.target, request.headers) == ("GET", "/", [("Host", "x")])


def test_parser_feed_memoryview_slice():
    buffer = memoryview(b"junk" + GET + b"junk")
    (request,) = RequestParser().feed(buffer[4:4 + len(GET)])
    assert request.headers == [("Host", "x")]


def test_parser_copies_partial_input():
    # a caller reuses its receive buffer: bytes already fed must not change
    data = bytearray(GET[:20])
    parser = RequestParser()
    assert parser.feed(data) == []
    data[:] = b"X" * len(data)
    (request,) = parser.feed(GET[20:])
    assert (request.method, request.headers) == ("GET", [("Host", "x")])


# ---- attributes ----

@pytest.mark.parametrize("version, connection, keep_alive", [
    (b"HTTP/1.1", [], True),
    (b"HTTP/1.1", [b"close"], False),
    (b"HTTP/1.1", [b"Close"], False),
    (b"HTTP/1.1", [b"keep-alive"], True),
    (b"HTTP/1.1", [b"keep-alive ,close"], False),
    (b"HTTP/1.1", [b"upgrade"], True),
    (b"HTTP/1.1", [b"x-foo", b"close"], False),
    (b"HTTP/1.1", [b"closed"], True),
    (b"HTTP/1.0", [], False),
    (b"HTTP/1.0", [b"keep-alive"], True),
    (b"HTTP/1.0", [b"Keep-Alive"], True),
    (b"HTTP/1.0", [b"x-foo, keep-alive"], True),
    (b"HTTP/1.0", [b"x-foo", b"keep-alive"], True),
    (b"HTTP/1.0", [b"keep-alive, close"], False),
    (b"HTTP/1.0", [b"close"], False),
    (b"HTTP/1.0", [b"keep-alived"], False),
])
def test_parser_keep_alive(version, connection, keep_alive):
    fields = [b"Host: x"] + [b"Connection: " + value for value in connection]
    request = parse_one(head(*fields, line=b"GET / " + version))
    assert request.keep_alive is keep_alive


@pytest.mark.parametrize("version, expect, expect_continue", [
    (b"HTTP/1.1", None, False),
    (b"HTTP/1.1", b"100-continue", True),
    (b"HTTP/1.1", b"100-CONTINUE", True),
    (b"HTTP/1.1", b"200-ok", False),
    (b"HTTP/1.0", b"100-continue", False),
])
def test_parser_expect_continue(version, expect, expect_continue):
    fields = [b"Host: x", b"Content-Length: 0"] + ([b"Expect: " + expect] if expect else [])
    request = parse_one(head(*fields, line=b"POST / " + version))
    assert request.expect_continue is expect_continue


@pytest.mark.parametrize("fields, upgrade", [
    ([b"Connection: Upgrade", b"Upgrade: websocket"], "websocket"),
    ([b"Upgrade: h2c", b"Connection: keep-alive, upgrade"], "h2c"),
    ([b"Upgrade: websocket"], None),
    ([b"Connection: upgrade"], None),
    ([], None),
])
def test_parser_upgrade(fields, upgrade):
    request = parse_one(head(b"Host: x", *fields, line=b"GET /ws HTTP/1.1"))
    assert request.upgrade == upgrade


def test_parser_trailers():
    raw = (head(b"Host: x", b"Transfer-Encoding: chunked", b"Trailer: X-Sum")
           + b"3\r\nabc\r\n0\r\nX-Sum: 900150983cd24fb0\r\nX-Other:  two words \r\n\r\n")
    request = parse_one(raw)
    assert request.body == b"abc"
    assert request.trailers == [("X-Sum", "900150983cd24fb0"), ("X-Other", "two words")]
    assert request.headers == [("Host", "x"), ("Transfer-Encoding", "chunked"), ("Trailer", "X-Sum")]


@pytest.mark.parametrize("raw", [
    head(b"Host: x", b"Content-Length: 3") + b"abc",
    head(b"Host: x", b"Transfer-Encoding: chunked") + b"3\r\nabc\r\n0\r\n\r\n",
    GET,
], ids=["content-length", "chunked", "no-body"])
def test_parser_no_trailers(raw):
    assert parse_one(raw).trailers == []


def test_parser_attribute_types():
    request = parse_one(head(b"Host: x", b"Content-Length: 2", line=b"POST /p?q HTTP/1.1") + b"ok")
    assert type(request.body) is bytes
    assert all(type(field) is tuple and len(field) == 2 for field in request.headers)
    assert (request.path, request.query) == ("/p", "q")
    assert type(request.keep_alive) is bool and type(request.expect_continue) is bool


def test_parser_error_names_the_problem():
    err = raises_status(400, head(b"Content-Length: 3", line=b"GET / HTTP/1.1"))
    assert "host" in str(err).lower()
    assert isinstance(err.status, int)


# ---- the read buffer: what a connection costs while its head arrives ------

READ_SIZE = 16384  # read_buffer_size's default: what a server asks for per read()


@pytest.fixture
def pipe():
    import os
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def test_parser_half_a_head_costs_the_head_buffer_not_a_read(pipe):
    import os
    from fastcore._core.parser import HEAD_BUFFER
    r, w = pipe
    parser = RequestParser()
    assert parser.buffer_size == 0
    os.write(w, b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: slow")
    n, requests = parser.read_from(r, READ_SIZE)
    assert (n, requests) == (41, [])
    assert 0 < parser.buffer_size <= HEAD_BUFFER <= 2048, "a slowloris connection costs a whole read"
    os.write(w, b"loris\r\n\r\n")
    n, requests = parser.read_from(r, READ_SIZE)
    assert [q.headers for q in requests] == [[("Host", "x"), ("User-Agent", "slowloris")]]
    assert parser.buffer_size == HEAD_BUFFER


def test_parser_large_head_grows_the_buffer_by_doubling(pipe):
    import os
    from fastcore._core.parser import HEAD_BUFFER
    r, w = pipe
    raw = head(b"Host: x", b"Cookie: " + b"c" * 10000, line=b"GET / HTTP/1.1")
    os.write(w, raw)
    parser = RequestParser()
    sizes, requests, total = [], [], 0
    while not requests:
        n, requests = parser.read_from(r, READ_SIZE)
        assert n > 0
        total += n
        sizes.append(parser.buffer_size)
    assert total == len(raw)
    assert requests[0].headers[1] == ("Cookie", "c" * 10000)
    # HEAD_BUFFER, then doubled each time it filled: never more than twice the head
    assert sizes[0] == HEAD_BUFFER
    assert all(b in (a, 2 * a) for a, b in zip(sizes, sizes[1:])), sizes
    assert sizes[-1] < 2 * len(raw)


def test_parser_body_is_read_in_full_reads_once_the_head_is_parsed(pipe):
    import os
    from fastcore._core.parser import HEAD_BUFFER
    r, w = pipe
    body = bytes(range(256)) * 160  # 40 KiB: the pipe holds it all before the first read
    os.write(w, head(b"Host: x", b"Content-Length: %d" % len(body)) + body)
    parser = RequestParser()
    reads, requests = [], []
    while not requests:
        n, requests = parser.read_from(r, READ_SIZE)
        reads.append(n)
    assert requests[0].body == body
    # a head read, then the whole read size each time until the body ends
    assert reads[0] == HEAD_BUFFER
    assert reads[1:-1] == [READ_SIZE] * (len(reads) - 2), reads
