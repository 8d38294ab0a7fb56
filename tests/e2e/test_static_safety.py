"""The static server never hands out a file outside its root: traversal
attempts sent as raw request targets, symbolic links, dotfiles and special
files, against `fastcore serve` with no application.

The layout every test builds (`layout`):

    tmp_path/secret.txt          SECRET, outside the root
    tmp_path/outside/inner.txt   SECRET, outside the root, reached by a linked directory
    tmp_path/site/               the root
        index.html               INDEX
        sub/page.txt
        sub/deeper/

/etc/passwd ("root:") is the other file an escape would reach. Every
response, head and body, must contain neither marker.

Expected statuses follow the spec: 400 (and the connection closed) for a
path the normaliser refuses (bad escape, NUL, %2F, backslash, control
character, invalid or overlong UTF-8, ".." above "/"); 404 for a name that
does not exist under the root (including every name that merely looks like
a dot segment after one decoding); 200 only where the path resolves,
lexically, to /index.html; 414 past --max-request-line.
"""
import os
import re
import stat
import time
import urllib.parse

import pytest

SECRET = b"fastcore-traversal-secret-5d41402abc4b2a76"
PASSWD = b"root:"
INDEX = b"<!DOCTYPE html><title>home</title><p>fastcore static root</p>\n"
PAGE = b"a page under sub\n"
NEW_CONNECTION_TIMEOUT = 5.0

# (raw request target, expected status, why). Sent as "GET TARGET HTTP/1.1".
TRAVERSALS = [
    # plain ".." climbing above the root
    ("/../secret.txt", 400, "one .. above the root"),
    ("/../../../../../../../../etc/passwd", 400, ".. chain to /etc/passwd"),
    ("/sub/../../secret.txt", 400, "down one, up two"),
    ("/sub/deeper/../../../secret.txt", 400, "down two, up three"),
    ("/..", 400, "a final .. at the root"),
    ("/../", 400, ".. then a slash"),
    ("/sub/page.txt/../../../secret.txt", 400, ".. through a file name"),
    ("/index.html/../../secret.txt", 400, ".. through the index file"),
    # percent-encoded dots
    ("/%2e%2e/secret.txt", 400, "%2e%2e lower case"),
    ("/%2E%2E/secret.txt", 400, "%2E%2E upper case"),
    ("/%2e%2E/secret.txt", 400, "%2e%2E mixed case"),
    ("/.%2e/secret.txt", 400, "half-encoded .%2e"),
    ("/%2e./secret.txt", 400, "half-encoded %2e."),
    ("/sub/%2e%2e/%2e%2e/secret.txt", 400, "encoded dots after a real segment"),
    ("/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 400, "encoded .. chain to /etc/passwd"),
    ("/sub/.%2e/.%2E/secret.txt", 400, "mixed encodings in one chain"),
    # "." and "//" variants
    ("/./../secret.txt", 400, "a . segment before .."),
    ("//../secret.txt", 400, "empty segment then .."),
    ("/sub//../../secret.txt", 400, "// inside the chain"),
    ("/sub/./././../../secret.txt", 400, "several . then .."),
    ("/.//./../secret.txt", 400, "mixed ./ and //"),
    ("//etc/passwd", 404, "// is collapsed, never a file-system absolute path"),
    ("///etc/passwd", 404, "/// collapsed too"),
    ("/./etc/passwd", 404, "./ then a root-relative name that does not exist"),
    ("/etc/passwd", 404, "an absolute file path is relative to the root"),
    # encoded slash
    ("/..%2fsecret.txt", 400, "..%2f"),
    ("/..%2Fsecret.txt", 400, "..%2F"),
    ("/%2e%2e%2fsecret.txt", 400, "everything encoded"),
    ("/%2f../secret.txt", 400, "%2f before .."),
    ("/sub%2f..%2f..%2fsecret.txt", 400, "%2f as the only separators"),
    ("/sub/%2e%2e%2f%2e%2e%2fsecret.txt", 400, "encoded .. and / after a segment"),
    # backslash, raw and encoded
    ("/..%5csecret.txt", 400, "..%5c"),
    ("/..%5Csecret.txt", 400, "..%5C"),
    ("/%2e%2e%5c%2e%2e%5csecret.txt", 400, "encoded dots and backslashes"),
    ("/..\\secret.txt", 400, "raw backslash"),
    ("/sub\\..\\..\\secret.txt", 400, "raw backslashes as the only separators"),
    ("/\\..\\secret.txt", 400, "leading raw backslash"),
    # NUL and control characters
    ("/%00../secret.txt", 400, "NUL before .."),
    ("/../secret.txt%00", 400, "NUL after the name"),
    ("/index.html%00.txt", 400, "NUL truncation of an existing name"),
    ("/sub/.%00./secret.txt", 400, "NUL inside a dot segment"),
    ("/..%09/secret.txt", 400, "tab"),
    ("/..%0d%0a/secret.txt", 400, "CR LF"),
    ("/..%7f/secret.txt", 400, "DEL"),
    # invalid and overlong UTF-8
    ("/%c0%ae%c0%ae/secret.txt", 400, "overlong 2-byte '.'"),
    ("/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", 400, "overlong 2-byte chain"),
    ("/%e0%80%ae%e0%80%ae/secret.txt", 400, "overlong 3-byte '.'"),
    ("/%f0%80%80%ae%f0%80%80%ae/secret.txt", 400, "overlong 4-byte '.'"),
    ("/..%c0%afsecret.txt", 400, "overlong 2-byte '/'"),
    ("/..%e0%80%afsecret.txt", 400, "overlong 3-byte '/'"),
    ("/..%c1%9csecret.txt", 400, "overlong 2-byte '\\'"),
    ("/%c0%2e%c0%2e/secret.txt", 400, "C0 lead byte with an ASCII follower"),
    ("/sub/..%ff/secret.txt", 400, "0xFF is never UTF-8"),
    ("/%ed%a0%80/../../secret.txt", 400, "an encoded surrogate"),
    # malformed escapes
    ("/%u002e%u002e/secret.txt", 400, "IIS %u escapes are not escapes"),
    ("/%%32%65%%32%65/secret.txt", 400, "nested escape %%32%65"),
    ("/..%2", 400, "truncated escape"),
    # double encoding: decoded once, so the literal names do not exist
    ("/%252e%252e/secret.txt", 404, "%252e%252e is the literal name %2e%2e"),
    ("/%252e%252e/%252e%252e/etc/passwd", 404, "double-encoded chain"),
    ("/..%252fsecret.txt", 404, "literal name ..%2fsecret.txt"),
    ("/%25c0%25ae%25c0%25ae/secret.txt", 404, "double-encoded overlong dot"),
    ("/%252e%252e%255csecret.txt", 404, "double-encoded backslash"),
    # look-alike dots: real names that do not exist
    ("/.../secret.txt", 404, "three dots is a name (and a dotfile)"),
    ("/..../secret.txt", 404, "four dots"),
    ("/....//....//secret.txt", 404, "....// filter-bypass pattern"),
    ("/%2e%2e%2e/secret.txt", 404, "encoded three dots"),
    ("/%e2%80%a4%e2%80%a4/secret.txt", 404, "U+2024 one dot leader"),
    ("/%ef%bc%8e%ef%bc%8e/secret.txt", 404, "U+FF0E fullwidth full stop"),
    ("/%e3%80%82%e3%80%82/secret.txt", 404, "U+3002 ideographic full stop"),
    ("/%ef%b9%92%ef%b9%92/secret.txt", 404, "U+FE52 small full stop"),
    ("/%20../secret.txt", 404, "' ..' is a name, not a dot segment"),
    ("/..%20/secret.txt", 404, "'.. ' is a name (and a dotfile)"),
    # trailing dots and spaces (no Windows-style stripping)
    ("/secret.txt.", 404, "trailing dot, and the file is not under the root anyway"),
    ("/sub/page.txt.", 404, "trailing dot on an existing file"),
    ("/sub/page.txt..", 404, "two trailing dots"),
    ("/sub./page.txt", 404, "trailing dot on a directory"),
    ("/sub/page.txt%20", 404, "trailing space"),
    ("/sub/page.txt::$DATA", 404, "NTFS stream syntax"),
    ("/../secret.txt.", 400, "trailing dot after a climb"),
    # ";" parameters are part of the name (no servlet-style stripping)
    ("/..;/secret.txt", 404, "..; is a name"),
    ("/sub/..;/..;/secret.txt", 404, "..; chain"),
    ("/;/../secret.txt", 404, "; segment popped by .., then a name not under the root"),
    ("/sub;x=1/page.txt", 404, "parameter on a directory"),
    ("/sub/page.txt;jsessionid=1", 404, "parameter on a file"),
    ("/sub/page.txt#frag", 400, "a fragment is never sent: no target form has one (RFC 9112 3.2)"),
    # absolute-form (RFC 9112 3.2.2)
    ("http://127.0.0.1/../secret.txt", 400, "absolute-form .."),
    ("http://127.0.0.1/%2e%2e/%2e%2e/etc/passwd", 400, "absolute-form encoded .. chain"),
    ("http://127.0.0.1/sub/../../secret.txt", 400, "absolute-form down one, up two"),
    ("http://127.0.0.1//../secret.txt", 400, "absolute-form // then .."),
    ("http://127.0.0.1/etc/passwd", 404, "absolute-form path is root-relative"),
    ("file:///etc/passwd", 404, "file: absolute-form is still a URL path under the root"),
    # not origin-form at all
    ("../secret.txt", 400, "relative target"),
    ("%2e%2e/secret.txt", 400, "relative encoded target"),
    ("secret.txt", 400, "bare name"),
    ("*", 400, "asterisk-form is for OPTIONS only"),
    # the query is not part of the path
    ("/sub/..?/../../secret.txt", 200, "/sub/.. is /; the query is not a path"),
    ("/sub?../../secret.txt", 301, "directory redirect; the query is carried, not resolved"),
    # lexical resolution that stays inside the root: legitimate
    ("/sub/..", 200, "resolves to /"),
    ("/sub/%2e%2e", 200, "encoded, resolves to /"),
    ("/sub/.%2e/", 200, "resolves to /"),
    ("/%2e", 200, "resolves to /"),
    ("/sub", 301, "a directory without its slash"),
    # very long chains
    ("/" + "../" * 2700 + "etc/passwd", 400, "2700 x ../, just under the request-line limit"),
    ("/" + "%2e%2e/" * 1150 + "etc/passwd", 400, "1150 x %2e%2e/"),
    ("/" + "sub/" * 1000 + "../" * 1001 + "secret.txt", 400, "1000 down, 1001 up"),
    ("/" + "../" * 3000 + "etc/passwd", 414, "past --max-request-line (8190)"),
]


@pytest.fixture
def layout(tmp_path):
    """The root tmp_path/site with the secrets beside it; returns the root."""
    (tmp_path / "secret.txt").write_bytes(SECRET + b"\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "inner.txt").write_bytes(SECRET + b" inner\n")
    site = tmp_path / "site"
    (site / "sub" / "deeper").mkdir(parents=True)
    (site / "index.html").write_bytes(INDEX)
    (site / "sub" / "page.txt").write_bytes(PAGE)
    return site


def exchange(server, target, method="GET", timeout=NEW_CONNECTION_TIMEOUT):
    """One request on a new connection: (response, everything after it up to
    the close when the server said it closes, else b"")."""
    with server.connect(timeout=timeout) as client:
        client.send(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1"))
        response = client.read_response(method)
        rest = b""
        if (response.header("Connection") or "").lower() == "close":
            rest = client.read_until_closed(timeout)
        return response, rest


def leaked(response, rest=b""):
    """The markers found anywhere in what the server sent."""
    raw = repr(response.headers).encode() + response.body + rest
    return [marker for marker in (SECRET, PASSWD) if marker in raw]


def worker_pids(server):
    """The arbiter's children: its workers."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server.pid:
            pids.add(int(entry))
    return pids


def test_static_safety_table_has_enough_cases():
    assert len(TRAVERSALS) >= 50
    assert len({target for target, _, _ in TRAVERSALS}) == len(TRAVERSALS), "duplicate targets"


def test_static_safety_traversal_attempts_never_leak_and_get_their_status(layout, serve_files):
    with open("/etc/passwd", "rb") as f:
        assert PASSWD in f.read(), "the test needs /etc/passwd to hold 'root:'"
    server = serve_files(layout)
    first, _ = exchange(server, "/")
    assert first.status == 200 and first.body == INDEX
    workers = worker_pids(server)
    assert workers, "no worker process found under the arbiter"

    failures = []
    for target, expected, why in TRAVERSALS:
        try:
            response, rest = exchange(server, target)
        except Exception as e:  # reported with its case: every case runs
            failures.append(f"{target[:80]!r} ({why}): expected {expected}, got {type(e).__name__}: {e}")
            continue
        found = leaked(response, rest)
        problems = []
        if found:
            problems.append(f"LEAKED {found}")
        if response.status != expected:
            problems.append(f"expected {expected}, got {response.status} {response.body[:120]!r}")
        closes = (response.header("Connection") or "").lower() == "close"
        if expected in (400, 414) and not closes:
            problems.append("a refused request must close the connection")
        if expected in (404, 200, 301) and closes:
            problems.append("a 404/200/301 keeps the connection alive")
        if expected == 200 and response.body != INDEX:
            problems.append(f"200 must be the index page, got {response.body[:120]!r}")
        if problems:
            failures.append(f"{target[:80]!r} ({why}): " + "; ".join(problems))
    assert not failures, f"{len(failures)} of {len(TRAVERSALS)} cases failed:\n" + "\n".join(failures)

    # still the same worker, still serving, nothing logged as a crash
    again, _ = exchange(server, "/sub/page.txt")
    assert again.status == 200 and again.body == PAGE
    assert worker_pids(server) == workers
    log = server.stderr_text()
    assert "Traceback" not in log and "replacing it" not in log, log


def test_static_safety_head_traversal_is_refused_like_get(layout, serve_files):
    server = serve_files(layout)
    for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%c0%ae%c0%ae/secret.txt"):
        response, rest = exchange(server, target, method="HEAD")
        assert response.status == 400, (target, response)
        assert not leaked(response, rest)
        # RFC 9110 9.3.2: no content in a response to HEAD, refusals included
        assert rest == b"", f"HEAD {target}: bytes after the 400 head: {rest!r}"


def test_static_safety_very_long_chain_past_a_raised_line_limit_is_refused_quickly(layout, serve_files):
    # 100 000 climbs reach the normaliser itself once the line limit allows them
    server = serve_files(layout, "--max-request-line", "1m", "--max-header-bytes", "2m")
    for target in ("/" + "../" * 100_000 + "etc/passwd",
                   "/" + "%2e%2e/" * 50_000 + "secret.txt",
                   "/" + "a/" * 100_000 + "../" * 100_001 + "secret.txt"):
        began = time.monotonic()
        response, rest = exchange(server, target, timeout=10)
        assert response.status == 400, response
        assert not leaked(response, rest)
        assert time.monotonic() - began < 5
    ok, _ = exchange(server, "/")
    assert ok.status == 200 and ok.body == INDEX


def test_static_safety_prefix_location_keeps_climbs_inside_the_url_space(layout, serve_files):
    # cwd is tmp_path, where secret.txt is: the location must be the only thing served
    server = serve_files(layout.parent, "--static", f"/files={layout}")
    cases = [
        ("/files/sub/page.txt", 200),
        ("/files/../secret.txt", 404),        # lexically /secret.txt: under no location
        ("/files/%2e%2e/secret.txt", 404),
        ("/files/../../secret.txt", 400),     # climbs above "/", raw path under the location
        ("/files/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/files/..%2fsecret.txt", 400),
        ("/files%2f..%2fsecret.txt", 404),    # not under /files: no location, no app
        ("/filesx/../secret.txt", 404),
        ("/secret.txt", 404),
    ]
    for target, expected in cases:
        response, rest = exchange(server, target)
        assert response.status == expected, (target, response)
        assert not leaked(response, rest), target
        if expected == 200:
            assert response.body == PAGE


def browser_host(location, own_host):
    """The host a browser goes to when it follows `location` from a page on
    own_host. WHATWG URL, for http(s): a reference that starts with two or
    more slashes or backslashes is scheme-relative, its host is what follows
    them (where Python's urljoin would keep "///x" on the same host)."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", location):
        return urllib.parse.urlsplit(location).netloc
    relative = re.match(r"[/\\]{2,}([^/\\?#]*)", location)
    return relative.group(1) if relative else own_host


@pytest.mark.parametrize("target", [
    "/sub",                       # controls: ordinary redirects
    "/sub/../sub",
    "//evil.example/%2e%2e/sub",
    "//evil.example/../sub",
    "///evil.example/%2e%2e/sub",
    "http://127.0.0.1//evil.example/%2e%2e/sub",
])
def test_static_safety_directory_redirect_stays_on_the_same_origin(layout, serve_files, target):
    # The path names the directory /sub; its redirect must not become a
    # scheme-relative URL ("//host/...") that a browser follows off-site.
    server = serve_files(layout, "--no-autoindex")
    response, _ = exchange(server, target)
    assert response.status == 301, response
    location = response.header("Location")
    own_host = f"127.0.0.1:{server.port}"
    assert browser_host(location, own_host) == own_host, f"GET {target} redirects off-site: Location: {location}"
    parts = urllib.parse.urlsplit(location)
    followed, _ = exchange(server, parts.path + (f"?{parts.query}" if parts.query else ""))
    assert followed.status == 403  # /sub/ exists, no index, autoindex off


def test_static_safety_double_encoding_is_decoded_exactly_once(layout, serve_files):
    (layout / "%2e%2e.txt").write_bytes(b"literal percent name\n")
    server = serve_files(layout)
    response, _ = exchange(server, "/%252e%252e.txt")
    assert response.status == 200
    assert response.body == b"literal percent name\n"
    response, _ = exchange(server, "/%2e%2e.txt")  # once-decoded: "...txt", a different name
    assert response.status == 404


def test_static_safety_symlink_out_of_the_root_is_404(layout, serve_files):
    os.symlink("../secret.txt", layout / "leak.txt")
    os.symlink(str(layout.parent / "secret.txt"), layout / "leak-absolute.txt")
    os.symlink("../outside", layout / "outdir")
    server = serve_files(layout, "--autoindex")
    for target in ("/leak.txt", "/leak-absolute.txt", "/outdir/inner.txt", "/outdir/", "/outdir",
                   "/sub/../leak.txt", "/outdir/./inner.txt"):
        response, rest = exchange(server, target)
        assert response.status == 404, (target, response)
        assert not leaked(response, rest), target
    # the listing of the root names the links but serves nothing through them
    listing, _ = exchange(server, "/")
    assert listing.status == 200
    assert SECRET not in listing.body


def test_static_safety_follow_symlinks_serves_targets_outside_the_root(layout, serve_files):
    # the documented opt-in: --follow-symlinks trusts whatever the links say
    os.symlink("../secret.txt", layout / "leak.txt")
    os.symlink("../outside", layout / "outdir")
    server = serve_files(layout, "--follow-symlinks")
    response, _ = exchange(server, "/leak.txt")
    assert response.status == 200
    assert response.body == SECRET + b"\n"
    response, _ = exchange(server, "/outdir/inner.txt")
    assert response.status == 200
    assert response.body == SECRET + b" inner\n"
    # following links never makes ".." climb out
    response, rest = exchange(server, "/outdir/../../secret.txt")
    assert response.status == 400 and not leaked(response, rest)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_static_safety_symlink_to_a_file_inside_the_root_is_served(layout, serve_files, kind):
    target = "sub/page.txt" if kind == "relative" else str(layout / "sub" / "page.txt")
    os.symlink(target, layout / "alias.txt")
    server = serve_files(layout)
    response, _ = exchange(server, "/alias.txt")
    assert response.status == 200, f"symlink alias.txt -> {target} (inside the root): {response}"
    assert response.body == PAGE


def test_static_safety_dotfiles_hidden_by_default(layout, serve_files):
    (layout / ".env").write_bytes(b"SECRET_KEY=" + SECRET + b"\n")
    (layout / ".git").mkdir()
    (layout / ".git" / "config").write_bytes(b"[core]\n" + SECRET + b"\n")
    (layout / "sub" / ".hidden").write_bytes(SECRET + b"\n")
    server = serve_files(layout, "--autoindex")
    for target in ("/.env", "/.git/config", "/.git/", "/.git", "/sub/.hidden", "/%2eenv", "/%2Egit/config",
                   "/sub/../.env", "/sub/./.hidden", "//.env"):
        response, rest = exchange(server, target)
        assert response.status == 404, (target, response)
        assert not leaked(response, rest), target
        assert (response.header("Connection") or "").lower() != "close"  # a 404 keeps the connection
    listing, _ = exchange(server, "/")
    assert listing.status == 200
    assert b".env" not in listing.body and b".git" not in listing.body


def test_static_safety_dotfiles_served_with_the_flag(layout, serve_files):
    (layout / ".env").write_bytes(b"KEY=value\n")
    (layout / ".git").mkdir()
    (layout / ".git" / "config").write_bytes(b"[core]\n")
    server = serve_files(layout, "--dotfiles")
    response, _ = exchange(server, "/.env")
    assert response.status == 200 and response.body == b"KEY=value\n"
    response, _ = exchange(server, "/.git/config")
    assert response.status == 200 and response.body == b"[core]\n"
    # dotfiles on does not mean dot segments are names
    response, rest = exchange(server, "/../secret.txt")
    assert response.status == 400 and not leaked(response, rest)


def test_static_safety_fifo_is_refused_without_blocking_the_worker(layout, serve_files):
    os.mkfifo(layout / "pipe")
    assert stat.S_ISFIFO(os.stat(layout / "pipe").st_mode)
    server = serve_files(layout)
    for method in ("GET", "HEAD"):
        began = time.monotonic()
        response, _ = exchange(server, "/pipe", method=method)
        assert response.status == 403, response  # exists but is not a regular file
        assert time.monotonic() - began < NEW_CONNECTION_TIMEOUT
    began = time.monotonic()
    response, _ = exchange(server, "/sub/page.txt")
    assert response.status == 200 and response.body == PAGE
    assert time.monotonic() - began < NEW_CONNECTION_TIMEOUT


def test_static_safety_device_behind_a_followed_link_is_refused(layout, serve_files):
    # with links followed, one to an endless device must not be read
    os.symlink("/dev/zero", layout / "zero.bin")
    os.symlink("/dev/urandom", layout / "random.bin")
    server = serve_files(layout, "--follow-symlinks")
    for target in ("/zero.bin", "/random.bin"):
        began = time.monotonic()
        response, _ = exchange(server, target)
        assert response.status == 403, (target, response)
        assert time.monotonic() - began < NEW_CONNECTION_TIMEOUT
    response, _ = exchange(server, "/")
    assert response.status == 200 and response.body == INDEX
