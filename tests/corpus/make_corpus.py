"""Writes the request-parser corpus from the Python literals below.

    python tests/corpus/make_corpus.py

Each case becomes ``valid/<name>.http`` or ``invalid/<name>.http`` (the exact
bytes on the wire, CRLF included) and ``<name>.json`` next to it (what the
parser must produce). The committed files are this script's output: edit a
case here and rerun, never edit the files by hand. Files that no case
produces any more are deleted, so a renamed case leaves no orphan.

The rules are RFC 9112, applied strictly (see fastcore/http.py); the limits
are the RequestParser defaults: max_request_line 8190 (CRLF included),
max_header_bytes 32768, max_headers 100, max_body 16 MiB, max_chunk_line 4096.

A valid case's JSON holds method, target, path, query, version, headers,
body (latin-1 str), keep_alive, expect_continue, plus trailers and upgrade.
An invalid case's JSON holds the status and, where one word must obviously
appear in the error message, that word (lowercase) as ``message``.
"""

import json
import pathlib
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

CORPUS = pathlib.Path(__file__).resolve().parent
CRLF = b"\r\n"

MAX_REQUEST_LINE = 8190
MAX_HEADERS = 100
MAX_HEADER_BYTES = 32768
MAX_BODY = 16 * 1024 * 1024
MAX_CHUNK_LINE = 4096


def crlf(*lines, body=b""):
    """Each line (str, latin-1) terminated by CRLF, then the body bytes.

    The head of a request ends with an empty line, so most calls end with "".
    """
    return b"".join(line.encode("latin-1") + CRLF for line in lines) + body


@dataclass
class Valid:
    name: str
    raw: bytes
    target: str
    path: str
    headers: List[Tuple[str, str]]
    method: str = "GET"
    query: str = ""
    version: str = "HTTP/1.1"
    body: bytes = b""
    keep_alive: bool = True
    expect_continue: bool = False
    trailers: List[Tuple[str, str]] = field(default_factory=list)
    upgrade: Optional[str] = None

    def expected(self):
        return {
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "query": self.query,
            "version": self.version,
            "headers": [list(h) for h in self.headers],
            "body": self.body.decode("latin-1"),
            "keep_alive": self.keep_alive,
            "expect_continue": self.expect_continue,
            "trailers": [list(t) for t in self.trailers],
            "upgrade": self.upgrade,
        }


@dataclass
class Invalid:
    name: str
    raw: bytes
    status: int = 400
    message: Optional[str] = None

    def expected(self):
        out = {"status": self.status}
        if self.message is not None:
            out["message"] = self.message
        return out


HOST = ("Host", "example.com")

# A Chrome 125 request for a script, as captured: 12 fields, about 700 bytes.
CHROME_HEADERS = [
    ("Host", "www.example.com"),
    ("Connection", "keep-alive"),
    ("sec-ch-ua", '"Google Chrome";v="125", "Chromium";v="125", "Not.A/Brand";v="24"'),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/125.0.0.0 Safari/537.36"),
    ("Accept", "*/*"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-Mode", "no-cors"),
    ("Sec-Fetch-Dest", "script"),
    ("Referer", "https://www.example.com/account/settings?tab=security"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9,fr;q=0.8"),
    ("Cookie", "sessionid=8f2c1e9a7b3d4f6e0a1b2c3d4e5f6a7b; csrftoken=Zq8Xv3Lk9Pw2Rt7Yu1Io4As6Df0Gh5Jk; "
               "_ga=GA1.1.1234567890.1717171717; theme=dark"),
]
CHROME_LINE = "GET /static/js/app.3f9c2b1e.js?v=20240611 HTTP/1.1"

# 99 extension fields plus Host: exactly max_headers.
MANY_HEADERS = [HOST] + [("X-Field-%02d" % i, "value %d" % i) for i in range(MAX_HEADERS - 1)]

# Every byte 0x21-0x7E in the target but "#" (a fragment, never sent: RFC 9112
# section 3.2); "?" (0x3F) splits it into path and query.
PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F) if c != 0x23)

# A target that makes the request line exactly max_request_line bytes with its CRLF:
# len("GET ") + len(target) + len(" HTTP/1.1\r\n") == MAX_REQUEST_LINE.
LONGEST_TARGET = "/" + "a" * (MAX_REQUEST_LINE - 4 - 11 - 1)

ALL_BYTES = bytes(range(256))

VALID = [
    # ---- request line and target forms (RFC 9112 section 3.2) ----
    Valid("get_minimal", crlf("GET / HTTP/1.1", "Host: example.com", ""),
          target="/", path="/", headers=[HOST]),
    Valid("get_with_query", crlf("GET /search?q=fast+core&lang=en HTTP/1.1", "Host: example.com", ""),
          target="/search?q=fast+core&lang=en", path="/search", query="q=fast+core&lang=en", headers=[HOST]),
    Valid("get_query_with_second_question_mark", crlf("GET /a?b?c=d HTTP/1.1", "Host: example.com", ""),
          target="/a?b?c=d", path="/a", query="b?c=d", headers=[HOST]),
    Valid("get_empty_query", crlf("GET /a? HTTP/1.1", "Host: example.com", ""),
          target="/a?", path="/a", query="", headers=[HOST]),
    Valid("get_percent_encoded_path_not_decoded",
          crlf("GET /caf%C3%A9/a%2Fb?x=%20y HTTP/1.1", "Host: example.com", ""),
          target="/caf%C3%A9/a%2Fb?x=%20y", path="/caf%C3%A9/a%2Fb", query="x=%20y", headers=[HOST]),
    Valid("target_all_printable_ascii", crlf("GET /" + PRINTABLE + " HTTP/1.1", "Host: example.com", ""),
          target="/" + PRINTABLE, path="/" + PRINTABLE.split("?", 1)[0],
          query=PRINTABLE.split("?", 1)[1], headers=[HOST]),
    Valid("absolute_form", crlf("GET http://example.com/index.html?x=1 HTTP/1.1", "Host: example.com", ""),
          target="http://example.com/index.html?x=1", path="/index.html", query="x=1", headers=[HOST]),
    Valid("absolute_form_with_port", crlf("GET http://example.com:8080/a/b HTTP/1.1", "Host: example.com:8080", ""),
          target="http://example.com:8080/a/b", path="/a/b", headers=[("Host", "example.com:8080")]),
    Valid("absolute_form_empty_path", crlf("GET http://example.com HTTP/1.1", "Host: example.com", ""),
          target="http://example.com", path="/", headers=[HOST]),
    Valid("connect_authority_form", crlf("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443", ""),
          method="CONNECT", target="example.com:443", path="", headers=[("Host", "example.com:443")]),
    Valid("connect_ipv6_literal", crlf("CONNECT [2001:db8::1]:443 HTTP/1.1", "Host: [2001:db8::1]:443", ""),
          method="CONNECT", target="[2001:db8::1]:443", path="", headers=[("Host", "[2001:db8::1]:443")]),
    Valid("connect_ipv4", crlf("CONNECT 192.0.2.1:8443 HTTP/1.1", "Host: 192.0.2.1:8443", ""),
          method="CONNECT", target="192.0.2.1:8443", path="", headers=[("Host", "192.0.2.1:8443")]),
    Valid("absolute_form_ipv6_literal", crlf("GET http://[::1]:8080/a?b=c HTTP/1.1", "Host: [::1]:8080", ""),
          target="http://[::1]:8080/a?b=c", path="/a", query="b=c", headers=[("Host", "[::1]:8080")]),
    Valid("options_asterisk", crlf("OPTIONS * HTTP/1.1", "Host: example.com", ""),
          method="OPTIONS", target="*", path="*", headers=[HOST]),
    Valid("options_origin_form", crlf("OPTIONS /api HTTP/1.1", "Host: example.com", ""),
          method="OPTIONS", target="/api", path="/api", headers=[HOST]),
    Valid("method_extension_token", crlf("X-PURGE.v1_~! /cache HTTP/1.1", "Host: example.com", ""),
          method="X-PURGE.v1_~!", target="/cache", path="/cache", headers=[HOST]),
    Valid("method_lowercase_is_a_token", crlf("get / HTTP/1.1", "Host: example.com", ""),
          method="get", target="/", path="/", headers=[HOST]),
    Valid("head_request", crlf("HEAD /index.html HTTP/1.1", "Host: example.com", ""),
          method="HEAD", target="/index.html", path="/index.html", headers=[HOST]),
    Valid("delete_request", crlf("DELETE /items/42 HTTP/1.1", "Host: example.com", ""),
          method="DELETE", target="/items/42", path="/items/42", headers=[HOST]),
    Valid("request_line_at_limit", crlf("GET " + LONGEST_TARGET + " HTTP/1.1", "Host: example.com", ""),
          target=LONGEST_TARGET, path=LONGEST_TARGET, headers=[HOST]),
    Valid("leading_crlf_ignored", CRLF + CRLF + crlf("GET / HTTP/1.1", "Host: example.com", ""),
          target="/", path="/", headers=[HOST]),

    # ---- HTTP/1.0 and keep-alive (RFC 9112 section 9.3) ----
    Valid("http10_minimal", crlf("GET / HTTP/1.0", ""),
          target="/", path="/", version="HTTP/1.0", headers=[], keep_alive=False),
    Valid("http10_with_host", crlf("GET /a HTTP/1.0", "Host: example.com", ""),
          target="/a", path="/a", version="HTTP/1.0", headers=[HOST], keep_alive=False),
    Valid("http10_keep_alive", crlf("GET / HTTP/1.0", "Connection: keep-alive", ""),
          target="/", path="/", version="HTTP/1.0", headers=[("Connection", "keep-alive")]),
    Valid("http10_keep_alive_in_list_mixed_case", crlf("GET / HTTP/1.0", "Connection: X-Foo, Keep-Alive", ""),
          target="/", path="/", version="HTTP/1.0", headers=[("Connection", "X-Foo, Keep-Alive")]),
    Valid("http10_post_content_length",
          crlf("POST /form HTTP/1.0", "Content-Length: 7", "", body=b"a=1&b=2"),
          method="POST", target="/form", path="/form", version="HTTP/1.0",
          headers=[("Content-Length", "7")], body=b"a=1&b=2", keep_alive=False),
    Valid("http11_connection_close", crlf("GET / HTTP/1.1", "Host: example.com", "Connection: close", ""),
          target="/", path="/", headers=[HOST, ("Connection", "close")], keep_alive=False),
    Valid("http11_connection_close_in_list_uppercase",
          crlf("GET / HTTP/1.1", "Host: example.com", "Connection: keep-alive, CLOSE", ""),
          target="/", path="/", headers=[HOST, ("Connection", "keep-alive, CLOSE")], keep_alive=False),
    Valid("http11_connection_keep_alive", crlf("GET / HTTP/1.1", "Host: example.com", "Connection: keep-alive", ""),
          target="/", path="/", headers=[HOST, ("Connection", "keep-alive")]),

    # ---- Content-Length bodies (RFC 9112 section 6.3) ----
    Valid("post_content_length",
          crlf("POST /submit HTTP/1.1", "Host: example.com", "Content-Length: 11", "", body=b"hello world"),
          method="POST", target="/submit", path="/submit",
          headers=[HOST, ("Content-Length", "11")], body=b"hello world"),
    Valid("post_content_length_zero", crlf("POST /empty HTTP/1.1", "Host: example.com", "Content-Length: 0", ""),
          method="POST", target="/empty", path="/empty", headers=[HOST, ("Content-Length", "0")]),
    Valid("post_content_length_leading_zeros",
          crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 005", "", body=b"12345"),
          method="POST", target="/", path="/", headers=[HOST, ("Content-Length", "005")], body=b"12345"),
    Valid("post_content_length_binary_body",
          crlf("PUT /blob HTTP/1.1", "Host: example.com", "Content-Length: 256", "", body=ALL_BYTES),
          method="PUT", target="/blob", path="/blob", headers=[HOST, ("Content-Length", "256")], body=ALL_BYTES),
    Valid("content_length_identical_duplicates",
          crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 3", "Content-Length: 3", "", body=b"abc"),
          method="POST", target="/", path="/",
          headers=[HOST, ("Content-Length", "3"), ("Content-Length", "3")], body=b"abc"),
    Valid("post_without_length_has_empty_body", crlf("POST /nothing HTTP/1.1", "Host: example.com", ""),
          method="POST", target="/nothing", path="/nothing", headers=[HOST]),
    Valid("get_with_content_length_body",
          crlf("GET /q HTTP/1.1", "Host: example.com", "Content-Length: 2", "", body=b"{}"),
          target="/q", path="/q", headers=[HOST, ("Content-Length", "2")], body=b"{}"),

    # ---- chunked bodies (RFC 9112 section 7.1) ----
    Valid("post_chunked",
          crlf("POST /upload HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
               "5", "hello", "6", " world", "0", ""),
          method="POST", target="/upload", path="/upload",
          headers=[HOST, ("Transfer-Encoding", "chunked")], body=b"hello world"),
    Valid("post_chunked_empty_body",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "", "0", ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "chunked")]),
    Valid("post_chunked_hex_sizes_mixed_case",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
               "a", "0123456789", "1F", "abcdefghijklmnopqrstuvwxyz01234", "0", ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "chunked")],
          body=b"0123456789abcdefghijklmnopqrstuvwxyz01234"),
    Valid("post_chunked_size_leading_zeros",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
               "0005", "hello", "000", ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "chunked")], body=b"hello"),
    Valid("post_chunked_with_extensions",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
               "5;name=value", "hello", '6;a;b="quoted; string"', " world", "0;last", ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "chunked")],
          body=b"hello world"),
    Valid("post_chunked_extensions_bws_and_quoted_pair",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
               '5 ; a = b ;c="x\\"y" ; d', "hello", '0;e=""', ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "chunked")], body=b"hello"),
    Valid("post_chunked_with_trailers",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "Trailer: X-Checksum", "",
               "4", "data", "0", "X-Checksum: 8d777f38", "X-Empty-Trailer:", ""),
          method="POST", target="/", path="/",
          headers=[HOST, ("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")], body=b"data",
          trailers=[("X-Checksum", "8d777f38"), ("X-Empty-Trailer", "")]),
    Valid("post_chunked_binary_data_with_crlf_inside",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "")
          + b"6\r\n\r\n\x00\xff\r\n\r\n" + crlf("0", ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "chunked")],
          body=b"\r\n\x00\xff\r\n"),
    Valid("transfer_encoding_chunked_mixed_case",
          crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: Chunked", "", "3", "abc", "0", ""),
          method="POST", target="/", path="/", headers=[HOST, ("Transfer-Encoding", "Chunked")], body=b"abc"),

    # ---- header fields (RFC 9112 section 5, RFC 9110 section 5.5) ----
    Valid("repeated_headers_keep_order",
          crlf("GET / HTTP/1.1", "Accept: text/html", "Host: example.com", "Cookie: a=1",
               "Accept: application/json", "Cookie: b=2", ""),
          target="/", path="/",
          headers=[("Accept", "text/html"), HOST, ("Cookie", "a=1"),
                   ("Accept", "application/json"), ("Cookie", "b=2")]),
    Valid("header_name_case_preserved", crlf("GET / HTTP/1.1", "hOsT: example.com", "X-MiXeD-CaSe: v", ""),
          target="/", path="/", headers=[("hOsT", "example.com"), ("X-MiXeD-CaSe", "v")]),
    Valid("header_name_all_tchars", crlf("GET / HTTP/1.1", "Host: example.com", "!#$%&'*+-.^_`|~09AZaz: t", ""),
          target="/", path="/", headers=[HOST, ("!#$%&'*+-.^_`|~09AZaz", "t")]),
    Valid("header_value_obs_text", crlf("GET / HTTP/1.1", "Host: example.com", "X-Name: caf\xe9 \x80\xff", ""),
          target="/", path="/", headers=[HOST, ("X-Name", "caf\xe9 \x80\xff")]),
    Valid("header_value_empty", crlf("GET / HTTP/1.1", "Host: example.com", "X-Empty:", "X-Blank:  \t ", ""),
          target="/", path="/", headers=[HOST, ("X-Empty", ""), ("X-Blank", "")]),
    Valid("header_value_inner_tab_kept", crlf("GET / HTTP/1.1", "Host: example.com", "X-Tab: a\tb  c", ""),
          target="/", path="/", headers=[HOST, ("X-Tab", "a\tb  c")]),
    Valid("header_value_outer_whitespace_trimmed",
          crlf("GET / HTTP/1.1", "Host: example.com", "X-Pad: \t  padded value \t ", ""),
          target="/", path="/", headers=[HOST, ("X-Pad", "padded value")]),
    Valid("header_no_space_after_colon", crlf("GET / HTTP/1.1", "Host:example.com", "X-A:b", ""),
          target="/", path="/", headers=[HOST, ("X-A", "b")]),
    Valid("header_value_with_colons", crlf("GET / HTTP/1.1", "Host: example.com:80", "Referer: http://a.test:81/x", ""),
          target="/", path="/", headers=[("Host", "example.com:80"), ("Referer", "http://a.test:81/x")]),
    Valid("host_empty_value", crlf("GET / HTTP/1.1", "Host:", ""),
          target="/", path="/", headers=[("Host", "")]),
    Valid("host_ipv6_literal_with_port", crlf("GET / HTTP/1.1", "Host: [2001:db8::1]:8080", ""),
          target="/", path="/", headers=[("Host", "[2001:db8::1]:8080")]),
    Valid("host_ipv4_with_port", crlf("GET / HTTP/1.1", "Host: 192.0.2.1:65535", ""),
          target="/", path="/", headers=[("Host", "192.0.2.1:65535")]),
    Valid("host_reg_name_pct_encoded_and_sub_delims", crlf("GET / HTTP/1.1", "Host: caf%C3%A9.example!$&'()*+;=", ""),
          target="/", path="/", headers=[("Host", "caf%C3%A9.example!$&'()*+;=")]),
    Valid("host_ipvfuture", crlf("GET / HTTP/1.1", "Host: [v1.fe80::a+en1]", ""),
          target="/", path="/", headers=[("Host", "[v1.fe80::a+en1]")]),
    Valid("headers_at_max_count", crlf("GET / HTTP/1.1", *["%s: %s" % h for h in MANY_HEADERS], ""),
          target="/", path="/", headers=MANY_HEADERS),
    Valid("chrome_get", crlf(CHROME_LINE, *["%s: %s" % h for h in CHROME_HEADERS], ""),
          target="/static/js/app.3f9c2b1e.js?v=20240611", path="/static/js/app.3f9c2b1e.js",
          query="v=20240611", headers=CHROME_HEADERS),

    # ---- Expect and Upgrade (RFC 9110 sections 10.1.1, 7.8) ----
    Valid("expect_100_continue",
          crlf("POST /big HTTP/1.1", "Host: example.com", "Content-Length: 4", "Expect: 100-continue", "",
               body=b"data"),
          method="POST", target="/big", path="/big",
          headers=[HOST, ("Content-Length", "4"), ("Expect", "100-continue")], body=b"data", expect_continue=True),
    Valid("expect_100_continue_mixed_case",
          crlf("PUT /big HTTP/1.1", "Host: example.com", "Expect: 100-Continue", "Content-Length: 0", ""),
          method="PUT", target="/big", path="/big",
          headers=[HOST, ("Expect", "100-Continue"), ("Content-Length", "0")], expect_continue=True),
    Valid("expect_100_continue_ignored_in_http10",
          crlf("POST /big HTTP/1.0", "Expect: 100-continue", "Content-Length: 1", "", body=b"x"),
          method="POST", target="/big", path="/big", version="HTTP/1.0",
          headers=[("Expect", "100-continue"), ("Content-Length", "1")], body=b"x", keep_alive=False),
    Valid("upgrade_websocket",
          crlf("GET /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", ""),
          target="/chat", path="/chat",
          headers=[HOST, ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                   ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")],
          upgrade="websocket"),
    Valid("upgrade_without_connection_upgrade_is_ignored",
          crlf("GET / HTTP/1.1", "Host: example.com", "Upgrade: h2c", ""),
          target="/", path="/", headers=[HOST, ("Upgrade", "h2c")]),
]


def too_many_headers():
    fields = [HOST] + [("X-Field-%03d" % i, "v") for i in range(MAX_HEADERS)]
    return crlf("GET / HTTP/1.1", *["%s: %s" % h for h in fields], "")


def chunked(body):
    """A chunked POST head followed by the given (broken) chunked body bytes."""
    return crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "") + body


INVALID = [
    # ---- line endings (RFC 9112 section 2.2: we accept CRLF only) ----
    Invalid("bare_lf_after_request_line", b"GET / HTTP/1.1\nHost: example.com\r\n\r\n"),
    Invalid("bare_lf_after_header", b"GET / HTTP/1.1\r\nHost: example.com\n\r\n"),
    Invalid("bare_lf_end_of_head", b"GET / HTTP/1.1\r\nHost: example.com\r\n\n"),
    Invalid("bare_lf_inside_header_value", b"GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\nb\r\n\r\n"),
    Invalid("bare_cr_after_request_line", b"GET / HTTP/1.1\rHost: example.com\r\n\r\n"),
    Invalid("bare_cr_inside_header_value", b"GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\rb\r\n\r\n"),
    Invalid("leading_lf_before_request_line", b"\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),

    # ---- request line (RFC 9112 section 3) ----
    Invalid("two_spaces_after_method", crlf("GET  / HTTP/1.1", "Host: example.com", "")),
    Invalid("two_spaces_before_version", crlf("GET /  HTTP/1.1", "Host: example.com", "")),
    Invalid("tab_between_method_and_target", crlf("GET\t/ HTTP/1.1", "Host: example.com", "")),
    Invalid("leading_space_before_method", crlf(" GET / HTTP/1.1", "Host: example.com", "")),
    Invalid("trailing_space_after_version", crlf("GET / HTTP/1.1 ", "Host: example.com", "")),
    Invalid("space_inside_target", crlf("GET /a b HTTP/1.1", "Host: example.com", "")),
    Invalid("missing_target", crlf("GET HTTP/1.1", "Host: example.com", "")),
    Invalid("missing_version", crlf("GET /", "Host: example.com", "")),
    Invalid("method_only", crlf("GET", "")),
    Invalid("method_with_delimiter", crlf("G(ET / HTTP/1.1", "Host: example.com", ""), message="method"),
    Invalid("method_non_ascii", crlf("G\xc9T / HTTP/1.1", "Host: example.com", ""), message="method"),
    Invalid("target_with_ctl", crlf("GET /a\x01b HTTP/1.1", "Host: example.com", "")),
    Invalid("target_with_del", crlf("GET /a\x7fb HTTP/1.1", "Host: example.com", "")),
    Invalid("target_with_tab", crlf("GET /a\tb HTTP/1.1", "Host: example.com", "")),
    Invalid("target_non_ascii", crlf("GET /caf\xe9 HTTP/1.1", "Host: example.com", "")),
    Invalid("target_nul", crlf("GET /a\x00 HTTP/1.1", "Host: example.com", "")),
    Invalid("authority_form_without_connect", crlf("GET example.com:443 HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("asterisk_form_without_options", crlf("GET * HTTP/1.1", "Host: example.com", ""), message="target"),
    Invalid("connect_with_origin_form", crlf("CONNECT /tunnel HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("connect_with_absolute_form", crlf("CONNECT http://example.com:443/ HTTP/1.1", "Host: example.com", ""),
            message="target"),
    # no request-target form has a fragment (RFC 9112 section 3.2); refused, not cut
    Invalid("target_fragment", crlf("GET /page#section HTTP/1.1", "Host: example.com", ""), message="fragment"),
    Invalid("target_fragment_after_query", crlf("GET /p?a=1#x HTTP/1.1", "Host: example.com", ""),
            message="fragment"),
    Invalid("target_empty_fragment", crlf("GET /p# HTTP/1.1", "Host: example.com", ""), message="fragment"),
    Invalid("target_fragment_in_absolute_form", crlf("GET http://example.com/p#x HTTP/1.1", "Host: example.com", ""),
            message="fragment"),
    # the authority of authority-form and absolute-form follows the grammar of Host
    Invalid("connect_ipv6_without_port", crlf("CONNECT [::1] HTTP/1.1", "Host: [::1]", ""), message="target"),
    Invalid("connect_empty_port", crlf("CONNECT example.com: HTTP/1.1", "Host: example.com", ""), message="target"),
    Invalid("connect_port_over_65535", crlf("CONNECT example.com:65536 HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("connect_userinfo", crlf("CONNECT user@example.com:443 HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("connect_without_host", crlf("CONNECT :443 HTTP/1.1", "Host: example.com", ""), message="target"),
    Invalid("absolute_form_userinfo", crlf("GET http://user:pass@example.com/ HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("absolute_form_http_empty_host", crlf("GET http:///index.html HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("absolute_form_port_not_numeric", crlf("GET http://example.com:x/ HTTP/1.1", "Host: example.com", ""),
            message="target"),
    Invalid("request_line_over_limit",
            crlf("GET " + LONGEST_TARGET + "a" + " HTTP/1.1", "Host: example.com", ""), status=414),
    Invalid("request_line_over_limit_without_crlf", b"GET /" + b"a" * (2 * MAX_REQUEST_LINE), status=414),

    # ---- HTTP version (RFC 9112 section 2.3) ----
    Invalid("version_lowercase", crlf("GET / http/1.1", "Host: example.com", ""), message="version"),
    Invalid("version_without_minor", crlf("GET / HTTP/1", "Host: example.com", ""), message="version"),
    Invalid("version_trailing_garbage", crlf("GET / HTTP/1.1x", "Host: example.com", ""), message="version"),
    Invalid("version_two_digit_major", crlf("GET / HTTP/11.1", "Host: example.com", ""), message="version"),
    Invalid("version_letters", crlf("GET / HTTP/a.b", "Host: example.com", ""), message="version"),
    Invalid("version_http2", crlf("GET / HTTP/2.0", "Host: example.com", ""), status=505),
    Invalid("version_http09", crlf("GET / HTTP/0.9", "Host: example.com", ""), status=505),
    Invalid("version_http12", crlf("GET / HTTP/1.2", "Host: example.com", ""), status=505),

    # ---- field syntax (RFC 9112 section 5) ----
    Invalid("space_before_colon", crlf("GET / HTTP/1.1", "Host : example.com", "")),
    Invalid("tab_before_colon", crlf("GET / HTTP/1.1", "Host: example.com", "X-A\t: b", "")),
    Invalid("obs_fold_space", crlf("GET / HTTP/1.1", "Host: example.com", "X-A: a", " b", "")),
    Invalid("obs_fold_tab", crlf("GET / HTTP/1.1", "Host: example.com", "X-A: a", "\tb", "")),
    Invalid("first_field_line_starts_with_space", crlf("GET / HTTP/1.1", " Host: example.com", "")),
    Invalid("header_name_with_delimiter", crlf("GET / HTTP/1.1", "Host: example.com", "X(A): b", "")),
    Invalid("header_name_non_ascii", crlf("GET / HTTP/1.1", "Host: example.com", "X-\xc4: b", "")),
    Invalid("header_name_empty", crlf("GET / HTTP/1.1", "Host: example.com", ": b", "")),
    Invalid("header_without_colon", crlf("GET / HTTP/1.1", "Host: example.com", "X-A b", "")),
    Invalid("header_value_nul", crlf("GET / HTTP/1.1", "Host: example.com", "X-A: a\x00b", "")),
    Invalid("header_value_ctl", crlf("GET / HTTP/1.1", "Host: example.com", "X-A: a\x01b", "")),
    Invalid("header_value_escape", crlf("GET / HTTP/1.1", "Host: example.com", "X-A: \x1b[31m", "")),
    Invalid("header_value_del", crlf("GET / HTTP/1.1", "Host: example.com", "X-A: a\x7fb", "")),
    Invalid("too_many_headers", too_many_headers(), status=431),
    Invalid("header_section_over_limit",
            crlf("GET / HTTP/1.1", "Host: example.com", "X-Big: " + "b" * (MAX_HEADER_BYTES + 1000), ""),
            status=431),
    Invalid("header_section_over_limit_without_end",
            crlf("GET / HTTP/1.1", "Host: example.com") + b"X-Big: " + b"b" * (2 * MAX_HEADER_BYTES), status=431),

    # ---- Host (RFC 9112 section 3.2) ----
    Invalid("host_missing_http11", crlf("GET / HTTP/1.1", "Accept: */*", ""), message="host"),
    Invalid("host_duplicate", crlf("GET / HTTP/1.1", "Host: a.example", "Host: b.example", ""), message="host"),
    Invalid("host_duplicate_same_value", crlf("GET / HTTP/1.1", "Host: a.example", "Host: a.example", ""),
            message="host"),
    Invalid("host_duplicate_http10", crlf("GET / HTTP/1.0", "Host: a.example", "Host: b.example", ""),
            message="host"),
    # the value must be uri-host [":" port] (RFC 3986 3.2.2; fc_http.c says where we are stricter)
    Invalid("host_comma_list", crlf("GET / HTTP/1.1", "Host: a.example, b.example", ""), message="host"),
    Invalid("host_comma_without_space", crlf("GET / HTTP/1.1", "Host: a.example,b.example", ""), message="host"),
    Invalid("host_userinfo", crlf("GET / HTTP/1.1", "Host: user:pass@example.com", ""), message="host"),
    Invalid("host_with_path", crlf("GET / HTTP/1.1", "Host: example.com/admin", ""), message="host"),
    Invalid("host_with_inner_space", crlf("GET / HTTP/1.1", "Host: example .com", ""), message="host"),
    Invalid("host_port_not_numeric", crlf("GET / HTTP/1.1", "Host: example.com:http", ""), message="host"),
    Invalid("host_port_over_65535", crlf("GET / HTTP/1.1", "Host: example.com:65536", ""), message="host"),
    Invalid("host_port_without_host", crlf("GET / HTTP/1.1", "Host: :80", ""), message="host"),
    Invalid("host_bad_pct_encoding", crlf("GET / HTTP/1.1", "Host: ex%zzample.com", ""), message="host"),
    Invalid("host_ipv6_without_brackets", crlf("GET / HTTP/1.1", "Host: ::1", ""), message="host"),
    Invalid("host_ipv6_unclosed", crlf("GET / HTTP/1.1", "Host: [::1:8080", ""), message="host"),
    Invalid("host_ipv6_too_many_groups", crlf("GET / HTTP/1.1", "Host: [1:2:3:4:5:6:7:8:9]", ""), message="host"),
    Invalid("host_ipv6_zone_id", crlf("GET / HTTP/1.1", "Host: [fe80::1%25eth0]", ""), message="host"),
    Invalid("host_invalid_in_http10", crlf("GET / HTTP/1.0", "Host: a.example/b", ""), message="host"),

    # ---- message framing (RFC 9112 section 6) ----
    Invalid("cl_te_both",
            crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 3", "Transfer-Encoding: chunked", "",
                 "3", "abc", "0", "")),
    Invalid("te_cl_both",
            crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "Content-Length: 3", "",
                 "3", "abc", "0", "")),
    Invalid("content_length_not_digits", crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: abc", ""),
            message="content-length"),
    Invalid("content_length_negative", crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: -1", ""),
            message="content-length"),
    Invalid("content_length_plus_sign", crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: +3", "",
                                             body=b"abc"), message="content-length"),
    Invalid("content_length_hex", crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 0x3", "",
                                       body=b"abc"), message="content-length"),
    Invalid("content_length_empty", crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length:", ""),
            message="content-length"),
    Invalid("content_length_inner_space", crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 1 2", ""),
            message="content-length"),
    Invalid("content_length_differing_duplicates",
            crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 3", "Content-Length: 4", "",
                 body=b"abcd"), message="content-length"),
    Invalid("content_length_differing_comma_list",
            crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 3, 4", "", body=b"abcd"),
            message="content-length"),
    # RFC 9110 8.6 lets a recipient refuse a list or collapse it; we refuse (fc_http.h)
    Invalid("content_length_identical_comma_list",
            crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 3, 3", "", body=b"abc"),
            message="content-length"),
    Invalid("content_length_list_with_empty_element",
            crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: 3,", "", body=b"abc"),
            message="content-length"),
    Invalid("content_length_over_max_body",
            crlf("POST / HTTP/1.1", "Host: example.com", "Content-Length: %d" % (MAX_BODY + 1), ""), status=413),
    Invalid("transfer_encoding_in_http10",
            crlf("POST / HTTP/1.0", "Transfer-Encoding: chunked", "", "3", "abc", "0", "")),
    Invalid("transfer_encoding_gzip",
            crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: gzip", ""), status=501),
    Invalid("transfer_encoding_gzip_then_chunked",
            crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: gzip, chunked", "",
                 "3", "abc", "0", ""), status=501),
    Invalid("transfer_encoding_chunked_twice_in_list",
            # RFC 9112 6.1: chunked MUST NOT be applied twice: a framing error, 400
            crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked, chunked", "",
                 "3", "abc", "0", ""), status=400),
    Invalid("transfer_encoding_chunked_in_two_fields",
            crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
                 "", "3", "abc", "0", ""), status=400),
    Invalid("transfer_encoding_identity",
            crlf("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: identity", ""), status=501),

    # ---- chunked coding (RFC 9112 section 7.1) ----
    Invalid("chunk_size_not_hex", chunked(crlf("zz", "hello", "0", "")), message="chunk"),
    Invalid("chunk_size_empty", chunked(crlf("", "hello", "0", "")), message="chunk"),
    Invalid("chunk_size_negative", chunked(crlf("-5", "hello", "0", "")), message="chunk"),
    Invalid("chunk_size_leading_space", chunked(crlf(" 5", "hello", "0", "")), message="chunk"),
    Invalid("chunk_size_hex_prefix", chunked(crlf("0x5", "hello", "0", "")), message="chunk"),
    Invalid("chunk_size_overflow", chunked(crlf("1" + "0" * 16, "hello", "0", "")), message="chunk"),
    Invalid("chunk_size_line_bare_lf", chunked(b"5\nhello\r\n0\r\n\r\n")),
    Invalid("chunk_data_longer_than_size", chunked(crlf("5", "hello world", "0", "")), message="chunk"),
    Invalid("chunk_data_without_crlf", chunked(b"5\r\nhelloXY0\r\n\r\n"), message="chunk"),
    Invalid("chunk_data_followed_by_bare_lf", chunked(b"5\r\nhello\n0\r\n\r\n")),
    Invalid("chunk_line_over_limit", chunked(crlf("5;ext=" + "e" * MAX_CHUNK_LINE, "hello", "0", "")),
            message="chunk"),
    # chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 section 7.1.1)
    Invalid("chunk_ext_without_name", chunked(crlf("5;", "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_value_without_name", chunked(crlf("5;=x", "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_equals_without_value", chunked(crlf("5;a=", "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_empty_between_semicolons", chunked(crlf("5;a;;b", "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_space_before_crlf", chunked(crlf("5;a=b ", "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_value_not_a_token", chunked(crlf("5;a=b/c", "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_quoted_value_unterminated", chunked(crlf('5;a="b', "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_text_after_quoted_value", chunked(crlf('5;a="b"c', "hello", "0", "")), message="chunk"),
    Invalid("chunk_ext_on_last_chunk_without_name", chunked(crlf("3", "abc", "0;", "")), message="chunk"),
    Invalid("trailer_space_before_colon", chunked(crlf("3", "abc", "0", "X-Sum : 1", ""))),
    Invalid("trailer_obs_fold", chunked(crlf("3", "abc", "0", "X-Sum: 1", " 2", ""))),
    Invalid("trailer_bare_lf", chunked(b"3\r\nabc\r\n0\r\nX-Sum: 1\n\r\n")),
]


def to_json(expected):
    """One key per line and one field per line: the files diff well."""
    lines = []
    for key, value in expected.items():
        if key in ("headers", "trailers") and value:
            items = ",\n".join("  " + json.dumps(pair) for pair in value)
            lines.append(' "%s": [\n%s\n ]' % (key, items))
        else:
            lines.append(' "%s": %s' % (key, json.dumps(value)))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_corpus():
    """Writes every case; returns (number of valid, number of invalid)."""
    for kind, cases in (("valid", VALID), ("invalid", INVALID)):
        folder = CORPUS / kind
        folder.mkdir(exist_ok=True)
        names = [case.name for case in cases]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise SystemExit("duplicate case names: %s" % sorted(duplicates))
        wanted = set()
        for case in cases:
            http_file = folder / (case.name + ".http")
            json_file = folder / (case.name + ".json")
            http_file.write_bytes(case.raw)
            json_file.write_text(to_json(case.expected()), encoding="ascii")
            wanted.update((http_file.name, json_file.name))
        for stale in folder.iterdir():
            if stale.suffix in (".http", ".json") and stale.name not in wanted:
                stale.unlink()
    return len(VALID), len(INVALID)


if __name__ == "__main__":
    valid, invalid = write_corpus()
    print("wrote %d valid and %d invalid cases under %s" % (valid, invalid, CORPUS))
