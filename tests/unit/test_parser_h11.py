"""The valid request corpus through h11, the reference parser.

h11 must agree with the corpus expectations (and so with fastcore) on
method, target, version, headers (names compared case-insensitively: h11
lowercases them), body, trailers, keep-alive and 100-continue. Where h11
differs on purpose, the case is listed in H11_DIFFERS with the one thing that
differs and why; the test asserts that h11 still differs there and agrees on
everything else, so the list cannot rot.
"""

import json
import pathlib

import h11
import pytest

from fastcore.http import RequestParser

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "corpus"

# case name -> (what differs: "rejects" or a compared field, why)
H11_DIFFERS = {
    "leading_crlf_ignored": (
        "rejects",
        "h11 refuses empty lines before the request line; RFC 9112 section 2.2 says a server "
        "SHOULD ignore at least one, and clients do send a stray CRLF after a POST body"),
    "http10_keep_alive": (
        "keep_alive",
        "h11 never keeps an HTTP/1.0 connection open; we honour Connection: keep-alive "
        "(RFC 9112 appendix C.2.2) because HTTP/1.0 benchmarking tools (ab) rely on it"),
    "http10_keep_alive_in_list_mixed_case": (
        "keep_alive", "same as http10_keep_alive"),
    "content_length_identical_duplicates": (
        "headers",
        "h11 folds identical Content-Length fields into one; we hand over the fields as sent"),
    "post_chunked_extensions_bws_and_quoted_pair": (
        "rejects",
        "h11 allows no whitespace between the chunk size and the first ';' (its chunk-ext is ';.*'); "
        "RFC 9112 section 7.1.1 allows BWS there, and we check the rest of the grammar, which h11 skips"),
    "transfer_encoding_chunked_mixed_case": (
        "headers",
        "h11 lowercases the Transfer-Encoding value; we hand over the value as sent"),
}

COMPARED = ("method", "target", "version", "headers", "body", "keep_alive", "expect_continue", "trailers")


def load_valid_cases():
    cases = []
    for http_file in sorted((CORPUS / "valid").glob("*.http")):
        expected = json.loads(http_file.with_suffix(".json").read_text(encoding="ascii"))
        cases.append(pytest.param(http_file.stem, http_file.read_bytes(), expected, id=http_file.stem))
    return cases


VALID = load_valid_cases()


def lower_names(fields):
    return [[name.lower(), value] for name, value in fields]


def comparable(expected):
    """The COMPARED fields of a corpus expectation (or a fastcore result)."""
    out = {key: expected[key] for key in COMPARED}
    out["headers"] = lower_names(expected["headers"])
    out["trailers"] = lower_names(expected["trailers"])
    return out


def parse_with_h11(raw):
    """One request through h11 as a server, in the COMPARED shape.

    Keep-alive is read from h11's public state: after the request ends and a
    404 answers it (a 404 also declines an Upgrade or CONNECT), the client
    side is DONE when the connection stays open and MUST_CLOSE otherwise.
    """
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    request, body, trailers, expect_continue = None, b"", None, None
    while trailers is None:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            request = event
            expect_continue = conn.they_are_waiting_for_100_continue
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            trailers = list(event.headers)
        else:
            raise AssertionError("h11 stopped before the end of the request: %r" % (event,))
    conn.send(h11.Response(status_code=404, headers=[("Content-Length", "0")]))
    assert conn.their_state in (h11.DONE, h11.MUST_CLOSE), conn.their_state
    return {
        "method": request.method.decode("latin-1"),
        "target": request.target.decode("latin-1"),
        "version": "HTTP/" + request.http_version.decode("ascii"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in request.headers],
        "body": body.decode("latin-1"),
        "keep_alive": conn.their_state is h11.DONE,
        "expect_continue": expect_continue,
        "trailers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in trailers],
    }


def assert_agrees(name, ours):
    """h11 agrees with `ours` (COMPARED shape), or differs exactly as H11_DIFFERS says."""
    raw = (CORPUS / "valid" / (name + ".http")).read_bytes()
    what, why = H11_DIFFERS.get(name, (None, None))
    if what == "rejects":
        with pytest.raises(h11.RemoteProtocolError):
            parse_with_h11(raw)
        return
    theirs = parse_with_h11(raw)
    if what is None:
        assert theirs == ours
        return
    assert theirs[what] != ours[what], "h11 now agrees on %s: drop %s from H11_DIFFERS" % (what, name)
    theirs.pop(what)
    ours = dict(ours)
    ours.pop(what)
    assert theirs == ours


def test_parser_h11_differences_name_corpus_cases():
    names = {param.id for param in VALID}
    assert set(H11_DIFFERS) <= names
    assert all(what == "rejects" or what in COMPARED for what, _ in H11_DIFFERS.values())


@pytest.mark.parametrize("name, raw, expected", VALID)
def test_parser_h11_agrees_with_corpus(name, raw, expected):
    assert_agrees(name, comparable(expected))


@pytest.mark.parametrize("name, raw, expected", VALID)
def test_parser_h11_agrees_with_fastcore(name, raw, expected):
    (request,) = RequestParser().feed(raw)
    ours = {
        "method": request.method,
        "target": request.target,
        "version": request.version,
        "headers": lower_names(request.headers),
        "body": request.body.decode("latin-1"),
        "keep_alive": request.keep_alive,
        "expect_continue": request.expect_continue,
        "trailers": lower_names(request.trailers),
    }
    assert_agrees(name, ours)
