"""Properties of RequestParser over generated input (hypothesis).

- Any byte string either gives a list of Request or raises ParseError:
  never another exception, never a crash.
- ParseError.status is always one a server can answer with.
- Where a stream of valid requests is cut makes no difference.
"""

import json
import pathlib

from hypothesis import given, settings
from hypothesis import strategies as st

from fastcore.http import ParseError, Request, RequestParser

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "corpus"
STATUSES = {400, 413, 414, 431, 501, 505}
ATTRIBUTES = ("method", "target", "path", "query", "version", "headers", "body",
              "keep_alive", "expect_continue", "upgrade", "trailers")


def load_valid():
    """(raw bytes, expected JSON) of every valid corpus case, by name."""
    out = {}
    for http_file in sorted((CORPUS / "valid").glob("*.http")):
        expected = json.loads(http_file.with_suffix(".json").read_text(encoding="ascii"))
        out[http_file.stem] = (http_file.read_bytes(), expected)
    return out


VALID = load_valid()

# Pieces of requests, so that random input often gets past the request line
# and into the header, length and chunk logic instead of failing on byte 0.
FRAGMENTS = [
    b"GET", b"POST", b"CONNECT", b"OPTIONS", b" ", b"  ", b"/", b"/a?b", b"*", b"http://h/p", b"h:1",
    b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\r", b"\n", b"\t", b":", b": ", b",",
    b"Host", b"Host: x\r\n", b"Content-Length", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding", b"chunked", b"gzip", b"Connection: close", b"Expect: 100-continue",
    b"0", b"5", b"ffffffffffffffffffff", b";ext=1", b"hello", b"\x00", b"\x7f", b"\xff",
]
http_like = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=3), max_size=40).map(b"".join)
any_bytes = st.binary(max_size=300) | http_like
valid_raw = st.sampled_from(sorted(VALID)).map(lambda name: VALID[name][0])


def feed_checked(chunks):
    """Feeds chunks; returns the requests or the ParseError, checking their types."""
    parser = RequestParser()
    requests = []
    try:
        for chunk in chunks:
            result = parser.feed(chunk)
            assert isinstance(result, list)
            assert all(isinstance(r, Request) for r in result)
            requests.extend(result)
    except ParseError as err:
        return err
    return requests


def attributes(request):
    return tuple(getattr(request, name) for name in ATTRIBUTES)


@settings(max_examples=300, deadline=None)
@given(data=any_bytes, cut=st.integers(min_value=0))
def test_parser_any_bytes_parse_or_raise_parse_error(data, cut):
    cut = cut % (len(data) + 1)
    feed_checked([data])
    feed_checked([data[:cut], data[cut:]])


@settings(max_examples=300, deadline=None)
@given(prefix=valid_raw, data=any_bytes)
def test_parser_valid_prefix_then_any_bytes(prefix, data):
    result = feed_checked([prefix + data])
    if not isinstance(result, ParseError):
        # the valid request is complete and unchanged whatever follows it
        (alone,) = RequestParser().feed(prefix)
        assert len(result) >= 1
        assert attributes(result[0]) == attributes(alone)


@settings(max_examples=300, deadline=None)
@given(data=any_bytes | st.tuples(valid_raw, any_bytes).map(b"".join))
def test_parser_error_status_is_known(data):
    result = feed_checked([data])
    if isinstance(result, ParseError):
        assert result.status in STATUSES, (result.status, str(result))
        assert str(result)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.sampled_from(sorted(VALID)), min_size=1, max_size=5), data=st.data())
def test_parser_random_splits_match_whole(names, data):
    stream = b"".join(VALID[name][0] for name in names)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts"))
    pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]

    whole = RequestParser().feed(stream)
    assert [r.target for r in whole] == [VALID[name][1]["target"] for name in names]
    split = feed_checked(pieces)
    assert not isinstance(split, ParseError), split
    assert [attributes(r) for r in split] == [attributes(r) for r in whole]
