"""The request corpus (tests/corpus, written by make_corpus.py) through RequestParser.

Every case is fed four ways: whole, one byte at a time, in five random splits
(seeded by the case name, so a failure replays), and with a second valid
request pipelined after it. A valid case must give its expected request
however it is cut, and nothing before its last byte; an invalid case must
raise ParseError with its status by the end of its own bytes, whatever
follows them.
"""

import json
import pathlib
import random

import pytest

from fastcore.http import ParseError, RequestParser

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "corpus"
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
NEXT_EXPECTED = {
    "method": "GET", "target": "/next", "path": "/next", "query": "", "version": "HTTP/1.1",
    "headers": [["Host", "x"]], "body": "", "keep_alive": True, "expect_continue": False,
    "trailers": [], "upgrade": None,
}
SPLITS = 5


def load_cases(kind):
    cases = []
    for http_file in sorted((CORPUS / kind).glob("*.http")):
        expected = json.loads(http_file.with_suffix(".json").read_text(encoding="ascii"))
        cases.append(pytest.param(http_file.stem, http_file.read_bytes(), expected, id=http_file.stem))
    return cases


VALID = load_cases("valid")
INVALID = load_cases("invalid")


def observed(request):
    """A request as the corpus JSON spells it (body as latin-1 text)."""
    assert isinstance(request.body, bytes)
    return {
        "method": request.method,
        "target": request.target,
        "path": request.path,
        "query": request.query,
        "version": request.version,
        "headers": [list(pair) for pair in request.headers],
        "body": request.body.decode("latin-1"),
        "keep_alive": request.keep_alive,
        "expect_continue": request.expect_continue,
        "trailers": [list(pair) for pair in request.trailers],
        "upgrade": request.upgrade,
    }


def random_pieces(raw, rng):
    """raw cut at 1 to 8 random places (never an empty piece)."""
    if len(raw) < 2:
        return [raw]
    cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(1, 8))))
    return [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]


def feed_pieces(pieces):
    parser = RequestParser()
    requests = []
    for piece in pieces:
        requests.extend(parser.feed(piece))
    return [observed(r) for r in requests]


def assert_raises_expected(expected, pieces):
    """Feeding pieces must raise ParseError(expected status) and return no request first."""
    parser = RequestParser()
    returned = []
    with pytest.raises(ParseError) as info:
        for piece in pieces:
            returned.extend(parser.feed(piece))
    assert info.value.status == expected["status"], str(info.value)
    if "message" in expected:
        assert expected["message"] in str(info.value).lower()
    assert returned == []


def test_parser_corpus_is_complete():
    for kind in ("valid", "invalid"):
        stems_http = {p.stem for p in (CORPUS / kind).glob("*.http")}
        stems_json = {p.stem for p in (CORPUS / kind).glob("*.json")}
        assert stems_http == stems_json, kind
    assert len(VALID) >= 40
    assert len(INVALID) >= 50


@pytest.mark.parametrize("name, raw, expected", VALID)
def test_parser_valid_whole(name, raw, expected):
    assert feed_pieces([raw]) == [expected]


@pytest.mark.parametrize("name, raw, expected", VALID)
def test_parser_valid_byte_by_byte(name, raw, expected):
    parser = RequestParser()
    for i in range(len(raw) - 1):
        assert parser.feed(raw[i:i + 1]) == [], "request came out before byte %d of %d" % (i + 1, len(raw))
    assert [observed(r) for r in parser.feed(raw[-1:])] == [expected]


@pytest.mark.parametrize("name, raw, expected", VALID)
def test_parser_valid_random_splits(name, raw, expected):
    rng = random.Random(name)
    for _ in range(SPLITS):
        pieces = random_pieces(raw, rng)
        assert feed_pieces(pieces) == [expected], [len(p) for p in pieces]


@pytest.mark.parametrize("name, raw, expected", VALID)
def test_parser_valid_then_pipelined_request(name, raw, expected):
    assert feed_pieces([raw + NEXT]) == [expected, NEXT_EXPECTED]
    rng = random.Random(name + "+next")
    for _ in range(SPLITS):
        pieces = random_pieces(raw + NEXT, rng)
        assert feed_pieces(pieces) == [expected, NEXT_EXPECTED], [len(p) for p in pieces]


@pytest.mark.parametrize("name, raw, expected", INVALID)
def test_parser_invalid_whole(name, raw, expected):
    assert_raises_expected(expected, [raw])


@pytest.mark.parametrize("name, raw, expected", INVALID)
def test_parser_invalid_byte_by_byte(name, raw, expected):
    # only the case's own bytes: the error must not wait for anything after them
    assert_raises_expected(expected, [raw[i:i + 1] for i in range(len(raw))])


@pytest.mark.parametrize("name, raw, expected", INVALID)
def test_parser_invalid_random_splits(name, raw, expected):
    rng = random.Random(name)
    for _ in range(SPLITS):
        assert_raises_expected(expected, random_pieces(raw, rng))


@pytest.mark.parametrize("name, raw, expected", INVALID)
def test_parser_invalid_then_pipelined_request(name, raw, expected):
    assert_raises_expected(expected, [raw + NEXT])
    rng = random.Random(name + "+next")
    for _ in range(SPLITS):
        assert_raises_expected(expected, random_pieces(raw + NEXT, rng))
