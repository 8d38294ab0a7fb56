"""Static files served by `fastcore serve` seen from real clients (curl,
requests, raw sockets): content types and validators, directories and
listings, the conditional-request matrix of RFC 9110 13.2.2, byte ranges
(single, multipart, invalid, unsatisfiable, If-Range), precompressed
siblings, freshness of the file cache after a change, large files and slow
readers, static locations next to a WSGI app, and bad settings.

The read-only checks share a few servers per module over one site built
under a temporary directory; the tests that change files start their own.
"""
import collections
import datetime
import gzip
import hashlib
import html.parser
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from email.utils import format_datetime, parsedate_to_datetime

import pytest
import requests

CURL = "/usr/bin/curl"
BIG_SIZE = 20 * 1024 * 1024
# Sun, 13 Sep 2020 12:26:40.5 GMT: the half second must not reach Last-Modified.
FIXED_MTIME_NS = 1_600_000_000_500_000_000
FIXED_LAST_MODIFIED = "Sun, 13 Sep 2020 12:26:40 GMT"
TRICKY_NAME = "<b>&\"x'.txt"
SPACE_NAME = "with space.txt"
VARY = "Accept-Encoding"
IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"\d{4} \d\d:\d\d:\d\d GMT")
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e]*"')  # RFC 9110 8.8.3: opaque-tag, no W/


def _site_files():
    rng = random.Random(20240611)
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(400)).encode()
    css = b"".join(b".rule-%d { margin: %dpx }\n" % (i, i) for i in range(300))
    return {
        "index.html": b"<!doctype html><title>home</title><p>home page</p>\n",
        "other.html": b"<!doctype html><title>other</title><p>other index</p>\n",
        "style.css": b"body { color: #333 }\n",
        "app.js": b"console.log('static');\n",
        "pic.png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(300),
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
        "blob.qqq": rng.randbytes(50),
        "noextension": rng.randbytes(40),
        "hundred.bin": rng.randbytes(100),
        "small.txt": b"a small file\n" * 40,
        "medium.bin": rng.randbytes(200 * 1024 + 7),
        "big.bin": rng.randbytes(BIG_SIZE),
        "text.txt": text,
        "text.txt.gz": gzip.compress(text, mtime=0),
        "text.txt.br": b"stand-in for brotli bytes " + rng.randbytes(64),
        "gzonly.css": css,
        "gzonly.css.gz": gzip.compress(css, mtime=0),
        ".hidden.txt": b"a dotfile\n",
        ".git/config": b"[core]\n\tbare = false\n",
        "docs/index.html": b"<!doctype html><title>docs</title>\n",
        "docs/page.txt": b"a docs page\n",
        f"listing/{TRICKY_NAME}": b"the tricky name\n",
        f"listing/{SPACE_NAME}": b"the name with a space\n",
        "listing/plain.txt": b"plain\n",
        "listing/.secret": b"secret\n",
        "listing/sub/inner.txt": b"inner\n",
    }


SITE = _site_files()


def etag_of(path):
    st = os.stat(path)
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'


def http_date(seconds):
    return format_datetime(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc), usegmt=True)


def wait_for(fetch, accept, timeout=3.0, interval=0.05):
    """Calls fetch() until accept(result) holds; returns (result, seconds waited)."""
    start = time.monotonic()
    while True:
        result = fetch()
        if accept(result):
            return result, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"still {result!r} after {timeout} s")
        time.sleep(interval)


Part = collections.namedtuple("Part", "content_type first last size data")


def parse_byteranges(content_type, body):
    """The parts of a multipart/byteranges body (RFC 9110 14.6), strictly framed:
    each part's length comes from its Content-Range, never from a search."""
    match = re.fullmatch(r'multipart/byteranges; ?boundary=("?)([0-9A-Za-z\'()+_,./:=?-]{1,70})\1', content_type)
    assert match, content_type
    delimiter = b"--" + match.group(2).encode("ascii")
    parts = []
    position = 2 if body.startswith(b"\r\n") else 0
    while True:
        assert body.startswith(delimiter, position), (position, body[position:position + 80])
        position += len(delimiter)
        if body.startswith(b"--", position):
            assert body[position + 2:] in (b"", b"\r\n"), body[position + 2:]
            return parts
        assert body.startswith(b"\r\n", position), body[position:position + 80]
        end = body.index(b"\r\n\r\n", position)
        fields = {}
        for line in body[position + 2:end].decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        numbers = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", fields.get("content-range", ""))
        assert numbers, fields
        first, last, size = map(int, numbers.groups())
        start = end + 4
        data = body[start:start + last - first + 1]
        assert len(data) == last - first + 1, (first, last, len(data))
        parts.append(Part(fields.get("content-type"), first, last, size, data))
        position = start + len(data)
        assert body.startswith(b"\r\n", position), body[position:position + 80]
        position += 2


class Links(html.parser.HTMLParser):
    """The <title> and the (href, text) of every <a> of a page, entities decoded."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.links = []
        self._href = None
        self._text = ""
        self._in_title = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), ""
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, self._text.strip()))
            self._href = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._href is not None:
            self._text += data
        if self._in_title:
            self.title += data


def curl(*args, timeout=30):
    done = subprocess.run([CURL, "-sS", "--max-time", "20", *args], capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def curl_response(*args):
    """(status, {lower name: value}, body) of `curl -i ARGS`."""
    head, _, body = curl("-i", *args).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# ---- shared servers -------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    for name, data in SITE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.utime(root / "hundred.bin", ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    return root


def _serve_site(serve_shared, site, *args):
    # No application: the site is the one location, at "/".
    return serve_shared("", "--static", f"/={site}", *args, app=None)


@pytest.fixture(scope="module")
def files(serve_shared, site):
    return _serve_site(serve_shared, site)


@pytest.fixture(scope="module")
def listing_server(serve_shared, site):
    return _serve_site(serve_shared, site, "--autoindex")


@pytest.fixture(scope="module")
def dotfiles_server(serve_shared, site):
    return _serve_site(serve_shared, site, "--dotfiles", "--autoindex")


@pytest.fixture(scope="module")
def cached_server(serve_shared, site):
    return _serve_site(serve_shared, site, "--max-age", "1h", "--immutable")


@pytest.fixture(scope="module")
def other_index_server(serve_shared, site):
    return _serve_site(serve_shared, site, "--index", "other.html")


@pytest.fixture(scope="module")
def plain_server(serve_shared, site):
    return _serve_site(serve_shared, site, "--no-precompressed")


# ---- curl -----------------------------------------------------------------------


def test_curl_single_range(files):
    status, headers, body = curl_response("-r", "10-19", f"{files.url}/hundred.bin")
    assert status == 206
    assert headers["content-range"] == "bytes 10-19/100"
    assert headers["content-length"] == "10"
    assert body == SITE["hundred.bin"][10:20]


def test_curl_multiple_ranges_give_multipart_byteranges(files):
    status, headers, body = curl_response("-r", "0-9,50-59,-5", f"{files.url}/hundred.bin")
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert headers["content-length"] == str(len(body))
    parts = parse_byteranges(headers["content-type"], body)
    data = SITE["hundred.bin"]
    assert [(p.first, p.last, p.size) for p in parts] == [(0, 9, 100), (50, 59, 100), (95, 99, 100)]
    assert [p.data for p in parts] == [data[0:10], data[50:60], data[95:100]]
    assert {p.content_type for p in parts} == {"application/octet-stream"}


def test_curl_if_modified_since_from_file_date(files, site):
    # curl -z FILE sends the file's mtime (whole seconds) as If-Modified-Since.
    url = f"{files.url}/hundred.bin"
    code = curl("-o", os.devnull, "-w", "%{http_code}", "-z", str(site / "hundred.bin"), url)
    assert code == b"304"
    status, _, body = curl_response("-z", "Sat, 01 Jan 2000 00:00:00 GMT", url)
    assert (status, body) == (200, SITE["hundred.bin"])
    # A leading '-' makes curl send If-Unmodified-Since: the file changed after 2000.
    code = curl("-o", os.devnull, "-w", "%{http_code}", "-z", "-Sat, 01 Jan 2000 00:00:00 GMT", url)
    assert code == b"412"


def test_curl_compressed_decodes_gzip_sibling(files, tmp_path):
    headers_file, body_file = tmp_path / "headers", tmp_path / "body"
    curl("--compressed", "-D", str(headers_file), "-o", str(body_file), f"{files.url}/gzonly.css")
    head = headers_file.read_bytes().decode("latin-1")
    assert head.startswith("HTTP/1.1 200 ")
    assert re.search(r"^Content-Encoding: gzip\r$", head, re.M | re.I), head
    assert re.search(r"^Vary: Accept-Encoding\r$", head, re.M | re.I), head
    assert re.search(r"^Content-Type: text/css; charset=utf-8\r$", head, re.M | re.I), head
    assert re.search(rf"^Content-Length: {len(SITE['gzonly.css.gz'])}\r$", head, re.M | re.I), head
    assert body_file.read_bytes() == SITE["gzonly.css"]


def test_curl_head_has_full_length(files):
    out = curl("-I", f"{files.url}/big.bin")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert rest == b""
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert f"Content-Length: {BIG_SIZE}" in lines
    assert "Accept-Ranges: bytes" in lines
    assert "Content-Type: application/octet-stream" in lines


# ---- requests: files, types, validators, directories -----------------------------


def test_root_serves_index_html(files):
    response = requests.get(f"{files.url}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.content == SITE["index.html"]


@pytest.mark.parametrize("name, media_type", [
    ("index.html", "text/html; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("pic.png", "image/png"),
    ("logo.svg", "image/svg+xml; charset=utf-8"),
    ("blob.qqq", "application/octet-stream"),
    ("noextension", "application/octet-stream"),
])
def test_content_type_from_extension(files, name, media_type):
    response = requests.get(f"{files.url}/{name}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Length"] == str(len(SITE[name]))
    assert response.content == SITE[name]


def test_validators_and_standard_headers(files, site):
    response = requests.get(f"{files.url}/hundred.bin", timeout=10)
    assert response.status_code == 200
    etag = response.headers["ETag"]
    assert STRONG_ETAG.fullmatch(etag), etag
    assert etag == etag_of(site / "hundred.bin")
    last_modified = response.headers["Last-Modified"]
    assert IMF_FIXDATE.fullmatch(last_modified), last_modified
    assert last_modified == FIXED_LAST_MODIFIED
    assert parsedate_to_datetime(last_modified).timestamp() == (site / "hundred.bin").stat().st_mtime_ns // 10**9
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Server"] == "fastcore"
    assert IMF_FIXDATE.fullmatch(response.headers["Date"])
    assert "Cache-Control" not in response.headers
    assert "Vary" not in response.headers  # no precompressed sibling


def test_validators_follow_each_file(files, site):
    for name in ("small.txt", "medium.bin", "pic.png"):
        response = requests.head(f"{files.url}/{name}", timeout=10)
        assert response.headers["ETag"] == etag_of(site / name)
        stamp = parsedate_to_datetime(response.headers["Last-Modified"]).timestamp()
        assert stamp == (site / name).stat().st_mtime_ns // 10**9


def test_missing_file_404_keeps_connection(files, make_request):
    with files.connect() as client:
        client.send(make_request("GET", "/no-such-file.txt") + make_request("GET", "/small.txt"))
        missing = client.read_response()
        assert missing.status == 404
        assert missing.header("Content-Type").startswith("text/plain")
        assert missing.body == b"404 Not Found\n"
        after = client.read_response()
        assert (after.status, after.body) == (200, SITE["small.txt"])
        client.assert_open()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_405_with_allow(files, site, method):
    response = requests.request(method, f"{files.url}/small.txt", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert (site / "small.txt").read_bytes() == SITE["small.txt"]


@pytest.mark.parametrize("target, location", [
    ("/docs", "/docs/"),
    ("/docs?x=1&y=a%20b", "/docs/?x=1&y=a%20b"),
    ("/listing/sub", "/listing/sub/"),
])
def test_directory_without_slash_redirected(files, target, location):
    response = requests.get(f"{files.url}{target}", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == location
    followed = requests.get(f"{files.url}{target}", timeout=10)
    assert followed.url == f"{files.url}{location}"
    assert followed.status_code in (200, 403)  # docs/ has an index, listing/sub/ has none


def test_directory_without_index_forbidden_without_autoindex(files):
    assert requests.get(f"{files.url}/listing/", timeout=10).status_code == 403
    assert requests.get(f"{files.url}/no-such-dir/", timeout=10).status_code == 404
    docs = requests.get(f"{files.url}/docs/", timeout=10)
    assert (docs.status_code, docs.content) == (200, SITE["docs/index.html"])


def test_autoindex_lists_escaped_and_encoded_names(listing_server):
    base = f"{listing_server.url}/listing/"
    response = requests.get(base, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    text = response.text
    assert "<b>&" not in text  # the name is escaped, never markup
    assert "&lt;b&gt;&amp;" in text
    assert ".secret" not in text
    page = Links(text)
    assert page.title.strip() == "Index of /listing/"
    entries = [(href, label) for href, label in page.links if urllib.parse.unquote(href) not in ("../", "..")]
    names = [urllib.parse.unquote(href) for href, _ in entries]
    assert sorted(names) == sorted(["sub/", TRICKY_NAME, SPACE_NAME, "plain.txt"])
    assert names[0] == "sub/"  # directories first
    for href, label in entries:
        assert not re.search(r'[\s<>"]', href), href  # percent-encoded
        assert label.rstrip("/") == urllib.parse.unquote(href).rstrip("/")
    for href, _ in entries:
        followed = requests.get(urllib.parse.urljoin(base, href), timeout=10)
        assert followed.status_code == 200, href
        name = urllib.parse.unquote(href)
        if name == "sub/":
            assert "inner.txt" in followed.text
        else:
            assert followed.content == SITE[f"listing/{name}"]


def test_dotfiles_hidden_by_default(files):
    for target in ("/.hidden.txt", "/.git/config", "/listing/.secret", "/.git/"):
        assert requests.get(f"{files.url}{target}", timeout=10).status_code == 404, target


def test_dotfiles_served_and_listed_with_dotfiles(dotfiles_server):
    for name in (".hidden.txt", ".git/config", "listing/.secret"):
        response = requests.get(f"{dotfiles_server.url}/{name}", timeout=10)
        assert (response.status_code, response.content) == (200, SITE[name])
    listing = requests.get(f"{dotfiles_server.url}/listing/", timeout=10)
    assert ".secret" in [urllib.parse.unquote(href) for href, _ in Links(listing.text).links]


def test_cache_control_with_max_age_and_immutable(cached_server, make_request):
    response = requests.get(f"{cached_server.url}/style.css", timeout=10)
    assert response.headers["Cache-Control"] == "public, max-age=3600, immutable"
    revalidated = cached_server.request("GET", "/style.css", [("If-None-Match", response.headers["ETag"])])
    assert revalidated.status == 304
    assert revalidated.header("Cache-Control") == "public, max-age=3600, immutable"


def test_no_cache_control_by_default(files):
    response = requests.get(f"{files.url}/style.css", timeout=10)
    assert response.status_code == 200
    assert "Cache-Control" not in response.headers


def test_index_setting_names_the_index_file(other_index_server):
    root = requests.get(f"{other_index_server.url}/", timeout=10)
    assert (root.status_code, root.content) == (200, SITE["other.html"])
    # docs/ holds index.html but no other.html, and autoindex is off
    assert requests.get(f"{other_index_server.url}/docs/", timeout=10).status_code == 403
    direct = requests.get(f"{other_index_server.url}/docs/index.html", timeout=10)
    assert (direct.status_code, direct.content) == (200, SITE["docs/index.html"])


# ---- conditional requests ---------------------------------------------------------

LATER = http_date(1_600_000_000 + 86400)
EARLIER = http_date(1_600_000_000 - 86400)

CONDITIONALS = [
    # (id, [(field, value)], status); {etag} and {lm} are the file's own validators
    ("inm-exact", [("If-None-Match", "{etag}")], 304),
    ("inm-weak", [("If-None-Match", "W/{etag}")], 304),
    ("inm-list", [("If-None-Match", '"other", {etag}')], 304),
    ("inm-list-weak-no-space", [("If-None-Match", '"other",W/{etag}')], 304),
    ("inm-star", [("If-None-Match", "*")], 304),
    ("inm-other", [("If-None-Match", '"other"')], 200),
    ("ims-equal", [("If-Modified-Since", "{lm}")], 304),
    ("ims-later", [("If-Modified-Since", LATER)], 304),
    ("ims-earlier", [("If-Modified-Since", EARLIER)], 200),
    ("ims-invalid", [("If-Modified-Since", "yesterday at noon")], 200),
    ("ims-rfc850", [("If-Modified-Since", "Sunday, 13-Sep-20 12:26:40 GMT")], 304),  # RFC 9110 5.6.7
    ("ims-asctime", [("If-Modified-Since", "Sun Sep 13 12:26:40 2020")], 304),
    ("im-match", [("If-Match", "{etag}")], 200),
    ("im-list", [("If-Match", '"other", {etag}')], 200),
    ("im-star", [("If-Match", "*")], 200),
    ("im-other", [("If-Match", '"other"')], 412),
    ("im-weak", [("If-Match", "W/{etag}")], 412),  # If-Match compares strongly
    ("ius-earlier", [("If-Unmodified-Since", EARLIER)], 412),
    ("ius-equal", [("If-Unmodified-Since", "{lm}")], 200),
    ("ius-later", [("If-Unmodified-Since", LATER)], 200),
    ("ius-invalid", [("If-Unmodified-Since", "not a date")], 200),
    ("inm-other-wins-over-ims-later", [("If-None-Match", '"other"'), ("If-Modified-Since", LATER)], 200),
    ("inm-match-wins-over-ims-earlier", [("If-None-Match", "{etag}"), ("If-Modified-Since", EARLIER)], 304),
    ("im-other-before-inm-match", [("If-Match", '"other"'), ("If-None-Match", "{etag}")], 412),
    ("im-match-then-inm-match", [("If-Match", "{etag}"), ("If-None-Match", "{etag}")], 304),
    ("im-match-overrides-ius", [("If-Match", "{etag}"), ("If-Unmodified-Since", EARLIER)], 200),
    ("ius-earlier-before-inm-match", [("If-Unmodified-Since", EARLIER), ("If-None-Match", "{etag}")], 412),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("fields, status", [case[1:] for case in CONDITIONALS],
                         ids=[case[0] for case in CONDITIONALS])
def test_conditional_request(files, site, make_request, method, fields, status):
    etag = etag_of(site / "hundred.bin")
    fields = [(name, value.format(etag=etag, lm=FIXED_LAST_MODIFIED)) for name, value in fields]
    with files.connect() as client:
        # a request after it on the same connection proves the framing of a 304 / 412
        client.send(make_request(method, "/hundred.bin", fields) + make_request("GET", "/small.txt"))
        response = client.read_response(method)
        assert response.status == status, (fields, response)
        if status == 304:
            assert response.header("ETag") == etag
            assert response.header("Last-Modified") == FIXED_LAST_MODIFIED
        elif status == 412:
            assert response.header("Content-Type").startswith("text/plain")
        else:
            assert response.header("Content-Length") == "100"
            assert response.body == (b"" if method == "HEAD" else SITE["hundred.bin"])
        after = client.read_response()
        assert (after.status, after.body) == (200, SITE["small.txt"])


# ---- ranges on raw sockets --------------------------------------------------------

RangeCase = collections.namedtuple("RangeCase", "id fields status content_range body method")
HUNDRED = SITE["hundred.bin"]


def _case(id, fields, status, content_range=None, body=HUNDRED, method="GET"):
    if isinstance(fields, str):
        fields = [("Range", fields)]
    return RangeCase(id, fields, status, content_range, body, method)


RANGE_CASES = [
    _case("syntax-abc", "bytes=abc", 200),
    _case("reversed", "bytes=5-2", 200),
    _case("other-unit", "items=0-1", 200),
    _case("empty-set", "bytes=", 200),
    _case("double-dash", "bytes=--1", 200),
    _case("no-unit", "0-1", 200),
    _case("one-bad-of-two", "bytes=0-1,x-2", 200),
    _case("two-fields", [("Range", "bytes=0-1"), ("Range", "bytes=2-3")], 200),
    _case("unsatisfiable", "bytes=1000-", 416, "bytes */100", b""),
    _case("unsatisfiable-at-size", "bytes=100-150", 416, "bytes */100", b""),
    _case("unsatisfiable-all", "bytes=100-150,200-", 416, "bytes */100", b""),
    _case("suffix-zero", "bytes=-0", 416, "bytes */100", b""),
    _case("first-byte", "bytes=0-0", 206, "bytes 0-0/100", HUNDRED[:1]),
    _case("clamped", "bytes=90-1000", 206, "bytes 90-99/100", HUNDRED[90:]),
    _case("suffix", "bytes=-30", 206, "bytes 70-99/100", HUNDRED[70:]),
    _case("suffix-longer-than-file", "bytes=-500", 206, "bytes 0-99/100", HUNDRED),
    _case("open", "bytes=60-", 206, "bytes 60-99/100", HUNDRED[60:]),
    _case("one-satisfiable-of-two", "bytes=200-300,10-19", 206, "bytes 10-19/100", HUNDRED[10:20]),
    _case("two-ranges", "bytes=0-9,20-29", 206, body=[(0, 9), (20, 29)]),
    _case("max-ranges", "bytes=" + ",".join(f"{i * 5}-{i * 5}" for i in range(16)), 206,
          body=[(i * 5, i * 5) for i in range(16)]),
    _case("over-max-ranges", "bytes=" + ",".join(f"{i * 5}-{i * 5}" for i in range(17)), 200),
    _case("if-range-etag", [("Range", "bytes=10-19"), ("If-Range", "{etag}")], 206, "bytes 10-19/100",
          HUNDRED[10:20]),
    _case("if-range-stale-etag", [("Range", "bytes=10-19"), ("If-Range", '"1-2-3"')], 200),
    _case("if-range-weak-etag", [("Range", "bytes=10-19"), ("If-Range", "W/{etag}")], 200),
    _case("if-range-date", [("Range", "bytes=10-19"), ("If-Range", "{lm}")], 206, "bytes 10-19/100",
          HUNDRED[10:20]),
    _case("if-range-later-date", [("Range", "bytes=10-19"), ("If-Range", LATER)], 200),
    _case("head-ignores-range", "bytes=0-9", 200, method="HEAD"),
]


def _range_request(case, etag, make_request):
    fields = [(name, value.format(etag=etag, lm=FIXED_LAST_MODIFIED)) for name, value in case.fields]
    return make_request(case.method, "/hundred.bin", fields)


def _check_range(case, response):
    assert response.status == case.status, (case, response)
    if isinstance(case.body, list):
        parts = parse_byteranges(response.header("Content-Type"), response.body)
        assert [(p.first, p.last) for p in parts] == case.body
        assert all(p.size == 100 and p.content_type == "application/octet-stream" for p in parts), parts
        assert [p.data for p in parts] == [HUNDRED[first:last + 1] for first, last in case.body]
        return
    assert response.header("Content-Range") == case.content_range, response
    if case.method == "HEAD":
        assert (response.header("Content-Length"), response.body) == ("100", b"")
    else:
        assert response.header("Content-Length") == str(len(case.body))
        assert response.body == case.body
    if case.status in (200, 206):
        assert response.header("Content-Type") == "application/octet-stream"


@pytest.mark.parametrize("case", RANGE_CASES, ids=[case.id for case in RANGE_CASES])
def test_range(files, site, make_request, case):
    with files.connect() as client:
        client.send(_range_request(case, etag_of(site / "hundred.bin"), make_request))
        _check_range(case, client.read_response(case.method))
        client.assert_open(0.05)


def test_ranges_pipelined_on_one_connection_answered_in_order(files, site, make_request):
    etag = etag_of(site / "hundred.bin")
    with files.connect() as client:
        client.send(b"".join(_range_request(case, etag, make_request) for case in RANGE_CASES))
        for case in RANGE_CASES:
            _check_range(case, client.read_response(case.method))
        client.assert_open()


def test_ranges_on_a_sendfile_sized_file(files, make_request):
    data = SITE["medium.bin"]
    size = len(data)
    with files.connect() as client:
        client.send(make_request("GET", "/medium.bin", [("Range", "bytes=-500")])
                    + make_request("GET", "/medium.bin", [("Range", "bytes=100-")])
                    + make_request("GET", "/medium.bin", [("Range", "bytes=70000-70009,5-9")]))
        suffix = client.read_response()
        assert suffix.status == 206
        assert suffix.header("Content-Range") == f"bytes {size - 500}-{size - 1}/{size}"
        assert suffix.body == data[-500:]
        tail = client.read_response()
        assert tail.status == 206
        assert tail.header("Content-Range") == f"bytes 100-{size - 1}/{size}"
        assert tail.body == data[100:]
        multi = client.read_response()
        parts = parse_byteranges(multi.header("Content-Type"), multi.body)
        assert [(p.first, p.last, p.data) for p in parts] == [(70000, 70009, data[70000:70010]), (5, 9, data[5:10])]


# ---- a 20 MiB file, whole and in ranges -------------------------------------------

BIG_CUTS = [0, 1, 65536, 3_000_000, 3_000_001, 9_999_999, 15_000_000, BIG_SIZE]
BIG_SPECS = ([f"{first}-{last - 1}" for first, last in zip(BIG_CUTS[:-2], BIG_CUTS[1:-1])]
             + [f"-{BIG_SIZE - BIG_CUTS[-2]}"])  # 7 ranges, the last as a suffix
BIG_SHA256 = hashlib.sha256(SITE["big.bin"]).hexdigest()


def test_big_file_whole_hash(files):
    response = requests.get(f"{files.url}/big.bin", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(BIG_SIZE)
    assert hashlib.sha256(response.content).hexdigest() == BIG_SHA256


def test_big_file_seven_ranges_reassembled(files):
    assert len(BIG_SPECS) == 7
    pieces = []
    with requests.Session() as session:
        for spec, first, last in zip(BIG_SPECS, BIG_CUTS, BIG_CUTS[1:]):
            response = session.get(f"{files.url}/big.bin", headers={"Range": f"bytes={spec}"}, timeout=30)
            assert response.status_code == 206, spec
            assert response.headers["Content-Range"] == f"bytes {first}-{last - 1}/{BIG_SIZE}"
            pieces.append(response.content)
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == BIG_SHA256


def test_big_file_multipart_of_seven_ranges_reassembled(files):
    response = requests.get(f"{files.url}/big.bin", headers={"Range": "bytes=" + ",".join(BIG_SPECS)}, timeout=30)
    assert response.status_code == 206
    parts = parse_byteranges(response.headers["Content-Type"], response.content)
    assert [(p.first, p.last + 1) for p in parts] == list(zip(BIG_CUTS, BIG_CUTS[1:]))
    assert {p.size for p in parts} == {BIG_SIZE}
    assert hashlib.sha256(b"".join(p.data for p in parts)).hexdigest() == BIG_SHA256


# ---- precompressed siblings --------------------------------------------------------

PRECOMPRESSED = [
    # (id, Accept-Encoding or None, the Content-Encoding served or None)
    ("none", None, None),
    ("gzip", "gzip", "gzip"),
    ("br", "br", "br"),
    ("both-br-preferred", "gzip, deflate, br", "br"),
    ("br-refused", "gzip, br;q=0", "gzip"),
    ("gzip-refused", "gzip;q=0", None),
    ("all-refused", "br;q=0, gzip;q=0", None),
    ("zero-with-decimals", "gzip;q=0.000", None),
    ("weight-with-spaces", "deflate, gzip ; q=0.5", "gzip"),
    ("identity", "identity", None),
    ("case-insensitive", "GZIP", "gzip"),
]


@pytest.mark.parametrize("accept, encoding", [case[1:] for case in PRECOMPRESSED],
                         ids=[case[0] for case in PRECOMPRESSED])
def test_precompressed_sibling(files, site, accept, encoding):
    name = {None: "text.txt", "gzip": "text.txt.gz", "br": "text.txt.br"}[encoding]
    fields = [("Accept-Encoding", accept)] if accept is not None else []
    for method in ("GET", "HEAD"):
        response = files.request(method, "/text.txt", fields)
        assert response.status == 200
        assert response.header("Content-Encoding") == encoding, (accept, response)
        assert response.header("Content-Type") == "text/plain; charset=utf-8"
        assert response.header("Vary") == VARY
        assert response.header("Content-Length") == str(len(SITE[name]))
        assert response.header("ETag") == etag_of(site / name)
        assert response.body == (b"" if method == "HEAD" else SITE[name])


def test_precompressed_gzip_decodes_to_the_file(files):
    response = files.request("GET", "/gzonly.css", [("Accept-Encoding", "gzip, br")])
    assert response.header("Content-Encoding") == "gzip"  # there is no .br sibling
    assert gzip.decompress(response.body) == SITE["gzonly.css"]


def test_no_vary_without_sibling(files):
    response = files.request("GET", "/hundred.bin", [("Accept-Encoding", "gzip, br")])
    assert response.status == 200
    assert response.header("Vary") is None
    assert response.header("Content-Encoding") is None


def test_no_precompressed_serves_plain_without_vary(plain_server):
    response = plain_server.request("GET", "/text.txt", [("Accept-Encoding", "gzip, br")])
    assert response.status == 200
    assert response.header("Content-Encoding") is None
    assert response.header("Vary") is None
    assert response.body == SITE["text.txt"]


# ---- freshness of the file cache ---------------------------------------------------


def _body(server, target):
    response = server.request("GET", target)
    return response.status, response.body


def _write_in_place(path, data):
    with open(path, "r+b") as f:  # same inode
        f.write(data)
        f.truncate()


def _rename_over(path, data):
    temporary = path.with_name(".tmp-" + path.name)
    temporary.write_bytes(data)
    os.rename(temporary, path)


def test_changed_in_place_served_fresh_after_window(serve_files, tmp_path):
    path = tmp_path / "page.txt"
    path.write_bytes(b"version one\n")
    server = serve_files(tmp_path)
    assert _body(server, "/page.txt") == (200, b"version one\n")
    _write_in_place(path, b"version two, longer than one\n")
    _, waited = wait_for(lambda: _body(server, "/page.txt"), lambda got: got == (200, path.read_bytes()))
    assert waited < 2.5
    response = server.request("GET", "/page.txt")
    assert response.header("ETag") == etag_of(path)
    assert response.header("Content-Length") == str(len(b"version two, longer than one\n"))


@pytest.mark.parametrize("size", [1000, 300 * 1024], ids=["inline", "sendfile"])
def test_renamed_over_served_fresh_after_window(serve_files, tmp_path, size):
    rng = random.Random(size)
    old, new = rng.randbytes(size), rng.randbytes(size + 10)
    path = tmp_path / "data.bin"
    path.write_bytes(old)
    server = serve_files(tmp_path)
    assert _body(server, "/data.bin") == (200, old)
    _rename_over(path, new)
    _, waited = wait_for(lambda: _body(server, "/data.bin"), lambda got: got == (200, new))
    assert waited < 2.5
    assert server.request("GET", "/data.bin").header("ETag") == etag_of(path)


def test_deleted_file_404_after_window(serve_files, tmp_path):
    path = tmp_path / "gone.txt"
    path.write_bytes(b"about to go\n")
    server = serve_files(tmp_path)
    assert _body(server, "/gone.txt") == (200, b"about to go\n")
    path.unlink()
    _, waited = wait_for(lambda: _body(server, "/gone.txt")[0], lambda status: status == 404)
    assert waited < 2.5


def test_revalidate_zero_sees_every_change_at_once(serve_files, tmp_path):
    path = tmp_path / "page.txt"
    path.write_bytes(b"v0\n")
    server = serve_files(tmp_path, "--static-revalidate", "0")
    assert _body(server, "/page.txt") == (200, b"v0\n")
    for i in range(1, 4):
        data = b"version %d\n" % i * i
        _write_in_place(path, data)
        assert _body(server, "/page.txt") == (200, data)
        assert server.request("HEAD", "/page.txt").header("ETag") == etag_of(path)
    _rename_over(path, b"renamed over\n")
    assert _body(server, "/page.txt") == (200, b"renamed over\n")
    path.unlink()
    assert _body(server, "/page.txt")[0] == 404
    path.write_bytes(b"back again\n")
    assert _body(server, "/page.txt") == (200, b"back again\n")


# ---- large files, HEAD, slow readers --------------------------------------------------


@pytest.mark.parametrize("name", ["small.txt", "medium.bin"])
def test_small_and_large_files_intact(files, make_request, name):
    assert requests.get(f"{files.url}/{name}", timeout=10).content == SITE[name]
    with files.connect() as client:  # twice on one connection: the cached path too
        client.send(make_request("GET", f"/{name}") * 2)
        for _ in range(2):
            response = client.read_response()
            assert response.status == 200
            assert response.body == SITE[name]


def test_head_of_large_file_sends_no_body(files, make_request):
    with files.connect() as client:
        client.send(make_request("HEAD", "/big.bin") + make_request("GET", "/hundred.bin"))
        head = client.read_response("HEAD")
        assert head.status == 200
        assert head.header("Content-Length") == str(BIG_SIZE)
        after = client.read_response()  # starts right where the head ended
        assert (after.status, after.body) == (200, HUNDRED)


class RawReader:
    """Reads a socket in small steps, keeping what it over-read."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def read_until(self, marker):
        while marker not in self.buffer:
            data = self.sock.recv(8192)
            assert data, f"closed before {marker!r}: {self.buffer[-200:]!r}"
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    def take(self, limit):
        if not self.buffer:
            self.buffer = self.sock.recv(8192)
            assert self.buffer, "connection closed"
        data, self.buffer = self.buffer[:limit], self.buffer[limit:]
        return data

    def take_exactly(self, n):
        data = b""
        while len(data) < n:
            data += self.take(n - len(data))
        return data


def test_slow_reader_gets_every_byte(files, make_request):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.settimeout(10)
        sock.connect(("127.0.0.1", files.port))
        client = RawReader(sock)
        sock.sendall(make_request("GET", "/big.bin"))
        time.sleep(0.5)  # let the server's send buffer fill up
        head = client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert f"\r\nContent-Length: {BIG_SIZE}\r\n".encode() in head
        digest, left, next_pause = hashlib.sha256(), BIG_SIZE, BIG_SIZE - (2 << 20)
        deadline = time.monotonic() + 60
        while left:
            assert time.monotonic() < deadline, f"{left} bytes still missing after 60 s"
            data = client.take(min(left, 8192))
            digest.update(data)
            left -= len(data)
            if left < next_pause:  # a pause every 2 MiB
                next_pause -= 2 << 20
                time.sleep(0.1)
        assert digest.hexdigest() == BIG_SHA256
        # the connection is still usable afterwards
        sock.sendall(make_request("GET", "/hundred.bin"))
        head = client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert client.take_exactly(100) == HUNDRED
    finally:
        sock.close()


@pytest.mark.parametrize("name", ["small.txt", "medium.bin", "big.bin"])
def test_request_pipelined_behind_a_file_answered(files, make_request, name):
    # The second request is already in the server's buffer when the first
    # response starts; it must be answered once the file has gone out,
    # without the client sending anything more.
    with files.connect() as client:
        client.send(make_request("GET", f"/{name}") + make_request("GET", "/hundred.bin"))
        first = client.read_response()
        assert (first.status, len(first.body)) == (200, len(SITE[name]))
        assert first.body == SITE[name]
        second = client.read_response()
        assert (second.status, second.body) == (200, HUNDRED)


@pytest.mark.parametrize("name", ["small.txt", "big.bin"])
def test_idle_connection_after_a_file_closed_by_keepalive_timeout(serve_files, site, make_request, name):
    server = serve_files(site, "--keepalive-timeout", "1")
    with server.connect() as client:
        client.send(make_request("GET", f"/{name}"))
        response = client.read_response()
        assert (response.status, response.body) == (200, SITE[name])
        started = time.monotonic()
        assert client.read_until_closed(5.0) == b""
        assert time.monotonic() - started < 3.0


# ---- static locations next to an application --------------------------------------

MARKER = "SOURCE-MARKER-7f3a9c"
APP = f'''
# {MARKER}: this line must never reach a client
def app(environ, start_response):
    body = ("app:" + environ["PATH_INFO"]).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def app_with_assets(serve_files, tmp_path):
    # app.py sits right above the static root: "/assets/../app.py" names it
    # unless the path is normalised before it is mapped.
    (tmp_path / "app.py").write_text(APP)
    public = tmp_path / "public"
    public.mkdir()
    (public / "x.css").write_bytes(SITE["style.css"])
    (public / "sub").mkdir()
    (public / "sub" / "y.js").write_bytes(SITE["app.js"])
    server = serve_files(tmp_path, "app:app", "--static", "/assets=./public")
    server.public = public
    return server


def test_static_location_beside_app(app_with_assets):
    server = app_with_assets
    # printed just after the listening line that made the server ready
    server.wait_for_stderr(re.escape(f"fastcore: serving {os.path.realpath(server.public)} at /assets (pid "))
    css = requests.get(f"{server.url}/assets/x.css", timeout=10)
    assert (css.status_code, css.content) == (200, SITE["style.css"])
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert "ETag" in css.headers
    query = requests.get(f"{server.url}/assets/sub/y.js?v=3", timeout=10)
    assert (query.status_code, query.content) == (200, SITE["app.js"])
    redirect = requests.get(f"{server.url}/assets", allow_redirects=False, timeout=10)
    assert (redirect.status_code, redirect.headers["Location"]) == (301, "/assets/")
    for target in ("/assetsfoo", "/assetsfoo/x.css", "/other", "/", "/x.css"):
        response = requests.get(f"{server.url}{target}", timeout=10)
        assert (response.status_code, response.content) == (200, f"app:{target}".encode()), target


@pytest.mark.parametrize("target", [
    "/assets/../app.py",
    "/assets/%2e%2e/app.py",
    "/assets/.%2E/app.py",
    "/assets/sub/../../app.py",
    "/assets/..%2fapp.py",
    "/assets/%2e%2e%2fapp.py",
])
def test_static_location_never_returns_app_source(app_with_assets, target):
    response = app_with_assets.request("GET", target)
    assert MARKER.encode() not in response.body, (target, response)
    # refused, or (normalised to "/app.py", under no location) handed to the application
    assert response.status == 400 or (response.status == 200 and response.body.startswith(b"app:")), response


# ---- requests with a body ----------------------------------------------------------


@pytest.mark.parametrize("method, status", [("GET", 200), ("POST", 405)])
def test_request_body_to_static_path_closes(files, make_request, method, status):
    with files.connect() as client:
        client.send(make_request(method, "/hundred.bin", body=b"0123456789"))
        response = client.read_response()
        assert response.status == status
        assert response.header("Connection").lower() == "close"
        if status == 200:
            assert response.body == HUNDRED
        assert client.read_until_closed(5.0) == b""


def test_chunked_body_to_static_path_closes(files, make_request):
    with files.connect() as client:
        client.send(make_request("GET", "/hundred.bin", [("Transfer-Encoding", "chunked")])
                    + b"5\r\nhello\r\n0\r\n\r\n")
        response = client.read_response()
        assert (response.status, response.body) == (200, HUNDRED)
        assert response.header("Connection").lower() == "close"
        assert client.read_until_closed(5.0) == b""


@pytest.mark.parametrize("send_body", [True, False], ids=["body-sent", "body-withheld"])
def test_expect_continue_to_static_path_answered_and_closed(files, make_request, send_body):
    with files.connect(timeout=5.0) as client:
        request = make_request("GET", "/hundred.bin", [("Content-Length", "10"), ("Expect", "100-continue")])
        client.send(request + (b"0123456789" if send_body else b""))
        response = client.read_response()
        while 100 <= response.status < 200:  # an interim answer is allowed, never a wait
            response = client.read_response()
        assert (response.status, response.body) == (200, HUNDRED)
        assert response.header("Connection").lower() == "close"
        assert client.read_until_closed(5.0) == b""


# ---- bad settings ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["/x=/nonexistent", "nodir", "x=.", "/x=/nonexistent/../tmp"])
def test_bad_static_setting_one_line_exit_2(tmp_path, value):
    done = subprocess.run([sys.executable, "-m", "fastcore", "serve", "--bind", "127.0.0.1:0", "--static", value],
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "static" in lines[0]
    assert value in lines[0]
    assert "Traceback" not in lines[0]


def test_large_file_over_a_unix_socket_is_intact(serve_files, tmp_path):
    # head and file go out with sendmsg(MSG_MORE) then sendfile: on a unix
    # socket too, where MSG_MORE has no TCP meaning
    site = tmp_path / "unix-site"
    site.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 17)
    (site / "big.bin").write_bytes(data)
    path = tmp_path / "fc.sock"
    serve_files(site, "--bind", f"unix:{path}")
    out = subprocess.run(["curl", "-s", "-D", "-", "--unix-socket", str(path), "http://localhost/big.bin",
                          "-o", str(tmp_path / "got.bin")], capture_output=True, timeout=30)
    assert out.returncode == 0
    assert b" 200 " in out.stdout.splitlines()[0]
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_static_requests_in_metrics_and_access_log(serve_files, tmp_path):
    import json

    from prometheus_client.parser import text_string_to_metric_families

    site = tmp_path / "logged-site"
    site.mkdir()
    (site / "a.txt").write_bytes(b"a" * 10)
    log = tmp_path / "access.json"
    server = serve_files(site, "--admin", "127.0.0.1:0", "--access-log", str(log), "--access-log-format", "json")
    admin_url = server.wait_for_stderr(r"fastcore: admin on (\S+) ").group(1)
    sent = [("/a.txt", 200, 10)] * 3 + [("/missing", 404, 14)] * 2
    with requests.Session() as session:
        for path, status, size in sent:
            response = session.get(server.url + path, headers={"User-Agent": "static-test"}, timeout=5)
            assert (response.status_code, len(response.content)) == (status, size)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (log.exists() and len(log.read_text().splitlines()) == len(sent)):
        time.sleep(0.05)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((r["path"], r["status"], r["bytes"]) for r in records) == sorted(sent)
    assert all(r["method"] == "GET" and r["user_agent"] == "static-test" and r["request_id"] for r in records)
    samples = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = requests.get(admin_url + "/metrics", timeout=5).text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        if samples.get(("fastcore_requests_by_route_total", (("route", "static"),))) == len(sent):
            break
        time.sleep(0.1)
    assert samples[("fastcore_requests_by_route_total", (("route", "static"),))] == len(sent)
    assert samples[("fastcore_requests_by_route_total", (("route", "wsgi"),))] == 0
