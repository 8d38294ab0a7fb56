# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Static files: one Location per configured prefix.

Theory of operation
-------------------
The router has normalised the path and chosen this location; on_head maps
the rest of the path to a file under the root, asks the FileCache for it,
decides the status and queues the whole response before returning. No
Python-level code runs on this path: the objects touched are the cached
entry's prebuilt bytes.

- Methods: GET and HEAD; anything else is 405 with Allow.
- A path ending in '/' names a directory: its index file, else a listing
  (autoindex) or 403 when the directory exists, else 404. A path naming a
  directory without the '/' is redirected (301) to it.
- Names starting with '.' are 404 unless `dotfiles` is on.
- Preconditions, in the order of RFC 9110 13.2.2: If-Match (strong) or
  else If-Unmodified-Since may give 412; If-None-Match (weak) or else
  If-Modified-Since gives 304 (GET and HEAD); then Range, for GET only,
  guarded by If-Range (strong ETag, or exactly the Last-Modified date),
  gives 206 (one part, or multipart/byteranges), 416 with
  "Content-Range: bytes */SIZE" when nothing is satisfiable, or 200 when
  the field is invalid or asks for more than max_ranges parts.
- FILE.br / FILE.gz are served in place of FILE, with Content-Encoding,
  when they exist and Accept-Encoding allows them (br first); a file that
  has such a sibling always carries "Vary: Accept-Encoding".
- A request with a body gets its answer and "Connection: close": the body
  is not worth reading.

The response head is the entry's prebuilt bytes (status line, type,
validators, length), the worker's Date line and the line that ends the head;
the body is the cached content (one writev with the head) or a sendfile
segment of the cached descriptor.
"""
import logging
import os
import stat as stat_module

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memrchr
from libc.time cimport time

from fastcore._core.buffer cimport FileSegment
from fastcore._core.connection cimport Connection, RequestHandler
from fastcore._core.response cimport date_line, reason
from fastcore._core.filecache cimport CachedFile, FileCache, Root
from fastcore._core.includes.fc_http cimport (
    FC_REQ_CHUNKED, FC_REQ_HAS_LENGTH, fc_header_t, fc_request_head_t,
)
from fastcore._core.includes.fc_static cimport *
from fastcore._core.includes.syscalls cimport EACCES, EISDIR, ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR, EPERM, EXDEV
from fastcore._core.parser cimport RequestParser, is_head_request, method_str, text
from fastcore._core.router cimport Router
from fastcore._core.stats cimport WorkerStats

# ---- media types ----------------------------------------------------------------
# By extension, lower case. Text types carry their charset: browsers would
# otherwise guess, and guess wrong for UTF-8.
cdef dict MEDIA_TYPES = {
    b"html": b"text/html; charset=utf-8", b"htm": b"text/html; charset=utf-8",
    b"css": b"text/css; charset=utf-8", b"js": b"text/javascript; charset=utf-8",
    b"mjs": b"text/javascript; charset=utf-8", b"json": b"application/json; charset=utf-8",
    b"map": b"application/json; charset=utf-8", b"txt": b"text/plain; charset=utf-8",
    b"md": b"text/markdown; charset=utf-8", b"csv": b"text/csv; charset=utf-8",
    b"xml": b"application/xml; charset=utf-8", b"rss": b"application/rss+xml; charset=utf-8",
    b"atom": b"application/atom+xml; charset=utf-8", b"svg": b"image/svg+xml; charset=utf-8",
    b"webmanifest": b"application/manifest+json; charset=utf-8",
    b"jsonld": b"application/ld+json; charset=utf-8", b"ics": b"text/calendar; charset=utf-8",
    b"vtt": b"text/vtt; charset=utf-8", b"wasm": b"application/wasm",
    b"png": b"image/png", b"jpg": b"image/jpeg", b"jpeg": b"image/jpeg", b"gif": b"image/gif",
    b"webp": b"image/webp", b"avif": b"image/avif", b"ico": b"image/vnd.microsoft.icon",
    b"bmp": b"image/bmp", b"tif": b"image/tiff", b"tiff": b"image/tiff",
    b"woff": b"font/woff", b"woff2": b"font/woff2", b"ttf": b"font/ttf", b"otf": b"font/otf",
    b"eot": b"application/vnd.ms-fontobject",
    b"mp4": b"video/mp4", b"m4v": b"video/mp4", b"webm": b"video/webm", b"ogv": b"video/ogg",
    b"mov": b"video/quicktime", b"mp3": b"audio/mpeg", b"ogg": b"audio/ogg", b"oga": b"audio/ogg",
    b"wav": b"audio/wav", b"flac": b"audio/flac", b"m4a": b"audio/mp4", b"aac": b"audio/aac",
    b"opus": b"audio/ogg",
    b"pdf": b"application/pdf", b"zip": b"application/zip", b"gz": b"application/gzip",
    b"tgz": b"application/gzip", b"br": b"application/octet-stream", b"tar": b"application/x-tar",
    b"bz2": b"application/x-bzip2", b"xz": b"application/x-xz", b"zst": b"application/zstd",
    b"7z": b"application/x-7z-compressed", b"rar": b"application/vnd.rar",
    b"doc": b"application/msword", b"xls": b"application/vnd.ms-excel",
    b"ppt": b"application/vnd.ms-powerpoint",
    b"docx": b"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"xlsx": b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"pptx": b"application/vnd.openxmlformats-officedocument.presentationml.presentation",
    b"odt": b"application/vnd.oasis.opendocument.text", b"epub": b"application/epub+zip",
    b"rtf": b"application/rtf", b"py": b"text/x-python; charset=utf-8",
    b"sh": b"text/x-shellscript; charset=utf-8", b"yaml": b"application/yaml; charset=utf-8",
    b"yml": b"application/yaml; charset=utf-8", b"toml": b"application/toml; charset=utf-8",
    b"apk": b"application/vnd.android.package-archive", b"exe": b"application/octet-stream",
    b"bin": b"application/octet-stream", b"iso": b"application/octet-stream",
    b"dmg": b"application/octet-stream", b"deb": b"application/vnd.debian.binary-package",
}
cdef bytes DEFAULT_TYPE = b"application/octet-stream"
cdef object error_log = logging.getLogger("fastcore.error")


cdef bytes media_type(bytes rel):
    """The Content-Type of a file from the extension of its name."""
    cdef const char *at = PyBytes_AS_STRING(rel)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(rel)
    cdef const char *dot = <const char *>memrchr(at, c'.', n)
    cdef const char *slash = <const char *>memrchr(at, c'/', n)
    if dot == NULL or (slash != NULL and dot < slash) or dot == at + n - 1:
        return DEFAULT_TYPE
    ext = PyBytes_FromStringAndSize(dot + 1, at + n - dot - 1).lower()
    return MEDIA_TYPES.get(ext, DEFAULT_TYPE)


# ---- request fields the handler reads ---------------------------------------------

cdef enum Field:
    F_NONE = 0
    F_IF_MATCH
    F_IF_NONE_MATCH
    F_IF_MODIFIED_SINCE
    F_IF_UNMODIFIED_SINCE
    F_RANGE
    F_IF_RANGE
    F_ACCEPT_ENCODING
    F_USER_AGENT
    F_REFERER
    F_X_REQUEST_ID


cdef inline bint same_name(const char *at, const char *lower, size_t n) noexcept:
    """ASCII case-insensitive comparison of a field name with a lower-case one."""
    cdef size_t i
    cdef char c
    for i in range(n):
        c = at[i]
        if c'A' <= c <= c'Z':
            c = c + 32
        if c != lower[i]:
            return False
    return True


cdef Field field_of(const char *at, size_t n) noexcept:
    cdef char first = at[0] | 0x20
    if first == c'i':
        if n == 8 and same_name(at, "if-match", 8):
            return F_IF_MATCH
        if n == 8 and same_name(at, "if-range", 8):
            return F_IF_RANGE
        if n == 13 and same_name(at, "if-none-match", 13):
            return F_IF_NONE_MATCH
        if n == 17 and same_name(at, "if-modified-since", 17):
            return F_IF_MODIFIED_SINCE
        if n == 19 and same_name(at, "if-unmodified-since", 19):
            return F_IF_UNMODIFIED_SINCE
    elif first == c'r':
        if n == 5 and same_name(at, "range", 5):
            return F_RANGE
        if n == 7 and same_name(at, "referer", 7):
            return F_REFERER
    elif first == c'a':
        if n == 15 and same_name(at, "accept-encoding", 15):
            return F_ACCEPT_ENCODING
    elif first == c'u':
        if n == 10 and same_name(at, "user-agent", 10):
            return F_USER_AGENT
    elif first == c'x':
        if n == 12 and same_name(at, "x-request-id", 12):
            return F_X_REQUEST_ID
    return F_NONE


cdef struct Conditions:
    # index of the first field of each kind in the parser's array, -1 if absent
    int if_match
    int if_none_match
    int if_modified_since
    int if_unmodified_since
    int range
    int if_range
    int ranges_fields            # how many Range fields (more than one: ignored)
    unsigned accepted            # FC_ENC_* from every Accept-Encoding field


cdef int list_match(RequestParser p, Field kind, bytes etag, int weak) noexcept:
    """fc_etag_match over every field of this kind (a list may be split
    across fields): 1 if one matches, 0 if none does, -1 if none was valid."""
    cdef size_t i
    cdef fc_header_t *f
    cdef int r, result = -1
    for i in range(p.head.num_headers):
        f = &p.fields[i]
        if field_of(f.name.at, f.name.len) == kind:
            r = fc_etag_match(f.value.at, f.value.len, PyBytes_AS_STRING(etag), PyBytes_GET_SIZE(etag), weak)
            if r == 1:
                return 1
            if r == 0:
                result = 0
    return result


cdef bint field_date(RequestParser p, int index, int64_t *out) noexcept:
    cdef fc_header_t *f = &p.fields[index]
    return fc_http_date_parse(f.value.at, f.value.len, out) == 0


cdef str field_text(RequestParser p, Field kind):
    cdef size_t i
    cdef fc_header_t *f
    for i in range(p.head.num_headers):
        f = &p.fields[i]
        if field_of(f.name.at, f.name.len) == kind:
            return text(f.value.at, f.value.len, False)
    return ""


# ---- fixed responses --------------------------------------------------------------

cdef object KEEP = "keep-alive"   # conn.exchange between on_head and on_end
cdef object CLOSE = "close"
cdef bytes END_KEEP = b"\r\n"
cdef bytes END_KEEP_10 = b"Connection: keep-alive\r\n\r\n"
cdef bytes END_CLOSE = b"Connection: close\r\n\r\n"
cdef enum:
    # entries of the ranges array serve_file keeps on its stack; a Range field
    # listing more parts than this (or than max_ranges) is served whole
    MAX_RANGES_ON_STACK = 64


cdef bytes html_escape(bytes raw):
    return (raw.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
            .replace(b'"', b"&quot;").replace(b"'", b"&#39;"))


cdef bytes HEX = b"0123456789ABCDEF"


cdef bytes quote(bytes raw, bytes safe):
    """Percent-encodes every byte but unreserved characters (RFC 3986 2.3)
    and those in `safe`."""
    cdef bytearray out = bytearray()
    cdef unsigned char c
    cdef Py_ssize_t i
    cdef const char *at = PyBytes_AS_STRING(raw)
    for i in range(PyBytes_GET_SIZE(raw)):
        c = <unsigned char>at[i]
        if (c'a' <= c <= c'z') or (c'A' <= c <= c'Z') or (c'0' <= c <= c'9') or c in b"-._~" or c in safe:
            out.append(c)
        else:
            out.append(b'%')
            out.append(HEX[c >> 4])
            out.append(HEX[c & 15])
    return bytes(out)


# an href that must stay one path segment whatever the file is called
cdef bytes SEGMENT_SAFE = b""
# a normalised path in a Location header: '/' and sub-delimiters stay (RFC 3986 3.3)
cdef bytes PATH_SAFE = b"/!$&'()*+,;=:@"


cdef class Location(RequestHandler):

    def __init__(self, Router router, FileCache cache, location, config, bytes boundary):
        """location: a fastcore.config.StaticLocation with its options resolved."""
        self.router = router
        self.cache = cache
        self.root = Root(location.root, not location.follow_symlinks)
        self.index = location.index.encode("utf-8", "surrogateescape")
        self.autoindex = location.autoindex
        self.dotfiles = location.dotfiles
        self.precompressed = location.precompressed
        self.limit_rate = location.limit_rate or 0
        self.limit_rate_after = location.limit_rate_after or 0
        self.server_line = b"Server: fastcore\r\n" if config.server_header else b""
        self.max_ranges = config.static_max_ranges
        self.listing_max = config.autoindex_max_entries
        self.prefix = location.prefix
        self.boundary = boundary
        if location.max_age is None:
            self.cache_control = b""
        else:
            self.cache_control = b"Cache-Control: public, max-age=%d%s\r\n" % (
                location.max_age, b", immutable" if location.immutable else b"")

    # -- RequestHandler --------------------------------------------------------------

    cdef int on_head(self, Connection conn) except -1:
        cdef RequestParser p = conn.parser
        cdef fc_request_head_t *h = &p.head
        cdef Router router = self.router
        cdef double began = conn.loop.clock()
        cdef bint is_head, keep
        cdef bint has_body = (p.info.flags & FC_REQ_CHUNKED) != 0 or (
            (p.info.flags & FC_REQ_HAS_LENGTH) != 0 and p.info.content_length > 0)
        cdef const char *rel_at = router.path + router.match_len
        cdef size_t rel_len = router.path_len - router.match_len
        cdef bytes end, rel
        cdef CachedFile entry
        self.queued_before = conn.out.pending
        keep = conn.may_keep_alive() and not has_body
        self.kept = keep
        if not keep:
            end = END_CLOSE
        elif h.minor_version == 1:
            end = END_KEEP
        else:
            end = END_KEEP_10
        if h.method.len == 3 and memcmp(h.method.at, b"GET", 3) == 0:
            is_head = False
        elif is_head_request(p):
            is_head = True
        else:
            self.simple(conn, 405, False, end, began, b"Allow: GET, HEAD\r\n")
            return self.finish_early(conn, has_body)
        if rel_len == 0:
            # the location's prefix itself, without the slash: it names a directory
            self.redirect(conn, is_head, end, began)
            return self.finish_early(conn, has_body)
        if not self.dotfiles and fc_path_has_dotfile(rel_at, rel_len):
            self.simple(conn, 404, is_head, end, began)
            return self.finish_early(conn, has_body)
        rel = PyBytes_FromStringAndSize(rel_at + 1, rel_len - 1)
        self.root.refresh(conn.loop.now, self.cache.revalidate)
        if rel_at[rel_len - 1] == c'/':
            entry = self.cache.lookup(self.root, rel + self.index, 0, self.precompressed, conn.loop.now)
            if entry is not None:
                self.serve_file(conn, rel + self.index, entry, is_head, end, began)
            elif self.cache.error == ENOENT:
                self.listing(conn, rel, is_head, end, began)
            else:
                self.lookup_failed(conn, rel + self.index, is_head, end, began)
            return self.finish_early(conn, has_body)
        entry = self.cache.lookup(self.root, rel, 0, self.precompressed, conn.loop.now)
        if entry is not None:
            self.serve_file(conn, rel, entry, is_head, end, began)
        elif self.cache.error == EISDIR:
            self.redirect(conn, is_head, end, began)
        else:
            self.lookup_failed(conn, rel, is_head, end, began)
        return self.finish_early(conn, has_body)

    cdef int lookup_failed(self, Connection conn, bytes rel, bint is_head, bytes end, double began) except -1:
        """No file to serve: 404 when there is none to be had (missing, not a
        directory on the way, a link out of the root), 403 when it is not a
        regular file, 503 when the worker itself is short of something
        (descriptors, memory: a client or cache must not take that as 404)."""
        cdef int error = self.cache.error
        if error == ENOENT or error == ENOTDIR or error == EXDEV or error == ELOOP or error == ENAMETOOLONG:
            return self.simple(conn, 404, is_head, end, began)
        if error == EACCES or error == EPERM:
            return self.simple(conn, 403, is_head, end, began)
        error_log.error("static %s: cannot open %s: %s", self.prefix, rel.decode("utf-8", "replace"),
                        os.strerror(error))
        return self.simple(conn, 503, is_head, end, began, b"Retry-After: 1\r\n")

    cdef int finish_early(self, Connection conn, bint has_body) except -1:
        """A request with a body is answered now and the connection closed
        (its body is not read); one without gets on_end at once, which keeps
        the connection as the head just sent said (even if the worker began
        draining in between, say at max_requests)."""
        if has_body:
            conn.end_response(False)
        else:
            conn.exchange = KEEP if self.kept else CLOSE
        return 0

    cdef int on_end(self, Connection conn) except -1:
        conn.end_response(conn.exchange is KEEP)
        return 0

    # -- responses -------------------------------------------------------------------

    cdef int respond(self, Connection conn, int status, Py_ssize_t body_bytes, double began) except -1:
        """Accounts for a queued response (stats; access log when on)."""
        cdef WorkerStats stats = conn.server.stats
        cdef RequestParser p
        cdef double seconds = conn.loop.clock() - began
        if stats is not None:
            stats.record_response(status, conn.out.pending - self.queued_before
                                  if conn.out.pending >= self.queued_before else 0, seconds)
            stats.s.route_static += 1
        if self.access_log is not None:
            p = conn.parser
            request_id = field_text(p, F_X_REQUEST_ID) or self.new_request_id()
            self.access_log.log(conn.client_text(), method_str(p.head.method.at, p.head.method.len),
                                text(p.head.target.at, p.head.target.len, False),
                                "HTTP/1.1" if p.head.minor_version == 1 else "HTTP/1.0", status, body_bytes,
                                int(seconds * 1e6), field_text(p, F_USER_AGENT), field_text(p, F_REFERER),
                                request_id)
        return 0

    cdef tuple heads(self, CachedFile entry, bytes rel, bint vary):
        """(200 head without its end, 304 head without its end, Content-Type
        line, the fields every 2xx of this file carries), built once per entry."""
        if entry.heads is not None:
            return <tuple>entry.heads
        ctype = b"Content-Type: " + media_type(rel) + b"\r\n"
        fields = [b"Last-Modified: ", entry.last_modified, b"\r\nETag: ", entry.etag,
                  b"\r\nAccept-Ranges: bytes\r\n", self.cache_control]
        if entry.encoding == FC_ENC_GZIP:
            fields.append(b"Content-Encoding: gzip\r\n")
        elif entry.encoding == FC_ENC_BR:
            fields.append(b"Content-Encoding: br\r\n")
        if vary:
            fields.append(b"Vary: Accept-Encoding\r\n")
        fields.append(self.server_line)
        common = b"".join(fields)
        head_200 = b"HTTP/1.1 200 OK\r\n" + ctype + common + b"Content-Length: %d\r\n" % entry.size
        head_304 = (b"HTTP/1.1 304 Not Modified\r\nLast-Modified: " + entry.last_modified + b"\r\nETag: " +
                    entry.etag + b"\r\n" + self.cache_control + (b"Vary: Accept-Encoding\r\n" if vary else b"") +
                    self.server_line)
        entry.heads = (head_200, head_304, ctype, common)
        return <tuple>entry.heads

    cdef int serve_file(self, Connection conn, bytes rel, CachedFile entry, bint is_head, bytes end,
                        double began) except -1:
        cdef RequestParser p = conn.parser
        cdef Conditions c
        cdef size_t i
        cdef fc_header_t *f
        cdef Field kind
        cdef CachedFile variant
        cdef int64_t when
        cdef int r, n, k
        cdef fc_range_t ranges[MAX_RANGES_ON_STACK]
        cdef tuple heads
        cdef bint vary = self.precompressed and entry.siblings != 0
        cdef uint64_t total
        c.if_match = c.if_none_match = c.if_modified_since = c.if_unmodified_since = -1
        c.range = c.if_range = -1
        c.ranges_fields = 0
        c.accepted = 0
        for i in range(p.head.num_headers):
            f = &p.fields[i]
            kind = field_of(f.name.at, f.name.len)
            if kind == F_NONE:
                continue
            if kind == F_ACCEPT_ENCODING:
                c.accepted |= fc_accept_encoding(f.value.at, f.value.len)
            elif kind == F_IF_MATCH and c.if_match < 0:
                c.if_match = i
            elif kind == F_IF_NONE_MATCH and c.if_none_match < 0:
                c.if_none_match = i
            elif kind == F_IF_MODIFIED_SINCE and c.if_modified_since < 0:
                c.if_modified_since = i
            elif kind == F_IF_UNMODIFIED_SINCE and c.if_unmodified_since < 0:
                c.if_unmodified_since = i
            elif kind == F_RANGE:
                c.range = i
                c.ranges_fields += 1
            elif kind == F_IF_RANGE and c.if_range < 0:
                c.if_range = i

        # a precompressed sibling the client accepts (br first)
        if vary and c.accepted & entry.siblings:
            variant = None
            if c.accepted & entry.siblings & FC_ENC_BR:
                variant = self.cache.lookup(self.root, rel, FC_ENC_BR, False, conn.loop.now)
            if variant is None and c.accepted & entry.siblings & FC_ENC_GZIP:
                variant = self.cache.lookup(self.root, rel, FC_ENC_GZIP, False, conn.loop.now)
            if variant is not None:
                entry = variant
        heads = self.heads(entry, rel, vary)

        # preconditions (RFC 9110 13.2.2)
        if c.if_match >= 0:
            if list_match(p, F_IF_MATCH, entry.etag, 0) == 0:
                return self.simple(conn, 412, is_head, end, began)
        elif c.if_unmodified_since >= 0 and field_date(p, c.if_unmodified_since, &when):
            if entry.mtime > when:
                return self.simple(conn, 412, is_head, end, began)
        if c.if_none_match >= 0:
            r = list_match(p, F_IF_NONE_MATCH, entry.etag, 1)
            if r == 1:
                return self.not_modified(conn, heads, end, began)
        elif c.if_modified_since >= 0 and field_date(p, c.if_modified_since, &when):
            if entry.mtime <= when:
                return self.not_modified(conn, heads, end, began)

        # ranges (GET only)
        if c.range >= 0 and c.ranges_fields == 1 and not is_head and self.if_range_holds(p, c.if_range, entry):
            f = &p.fields[c.range]
            # bounded here, by the array, whatever built this Location
            n = fc_range_parse(f.value.at, f.value.len, entry.size, ranges,
                               min(self.max_ranges, MAX_RANGES_ON_STACK))
            if n == 0:
                conn.send(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%d\r\n"
                          b"Content-Length: 0\r\n%s" % (entry.size, self.server_line))
                conn.send(date_line())
                conn.send(end)
                return self.respond(conn, 416, 0, began)
            if n == 1:
                total = ranges[0].last - ranges[0].first + 1
                conn.send(b"HTTP/1.1 206 Partial Content\r\n" + <bytes>PyTuple_GET_ITEM(heads, 2) +
                          <bytes>PyTuple_GET_ITEM(heads, 3) +
                          b"Content-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n" % (
                              ranges[0].first, ranges[0].last, entry.size, total))
                conn.send(date_line())
                conn.send(end)
                self.send_body(conn, entry, ranges[0].first, total)
                return self.respond(conn, 206, total, began)
            if n > 1 and self.ranges_reasonable(ranges, n, entry.size):
                return self.multipart(conn, entry, heads, ranges, n, end, began)

        conn.send(<bytes>PyTuple_GET_ITEM(heads, 0))
        conn.send(date_line())
        conn.send(end)
        if not is_head:
            self.send_body(conn, entry, 0, entry.size)
        return self.respond(conn, 200, 0 if is_head else entry.size, began)

    cdef bint if_range_holds(self, RequestParser p, int index, CachedFile entry) noexcept:
        """No If-Range, or one that still names this representation: an
        entity tag by strong comparison, or exactly its Last-Modified date."""
        cdef fc_header_t *f
        cdef int64_t when
        if index < 0:
            return True
        f = &p.fields[index]
        if f.value.len and (f.value.at[0] == c'"' or (f.value.len > 1 and f.value.at[0] == c'W' and
                                                     f.value.at[1] == c'/')):
            return fc_etag_match(f.value.at, f.value.len, PyBytes_AS_STRING(entry.etag),
                                 PyBytes_GET_SIZE(entry.etag), 0) == 1
        # a date names this representation only if it is exactly Last-Modified,
        # and that is a strong validator only when the file was last changed
        # at least a second ago (RFC 9110 8.8.2.2): a file changed twice within
        # one second has two versions under one date
        return (fc_http_date_parse(f.value.at, f.value.len, &when) == 0 and when == entry.mtime and
                entry.mtime < <int64_t>time(NULL) - 1)

    cdef bint ranges_reasonable(self, fc_range_t *ranges, int n, uint64_t size) noexcept:
        """Several ranges are answered only while they ask for no more bytes
        than the file holds: `bytes=0-,0-,0-` on a large file would turn one
        small request into many copies of it (RFC 9110 14.2 lets a server
        ignore such a Range; it gets the file once, 200)."""
        cdef uint64_t total = 0
        cdef int k
        for k in range(n):
            total += ranges[k].last - ranges[k].first + 1
            if total > size:
                return False
        return True

    cdef int not_modified(self, Connection conn, tuple heads, bytes end, double began) except -1:
        conn.send(<bytes>PyTuple_GET_ITEM(heads, 1))
        conn.send(date_line())
        conn.send(end)
        return self.respond(conn, 304, 0, began)

    cdef int send_body(self, Connection conn, CachedFile entry, uint64_t offset, uint64_t count) except -1:
        if count == 0:
            return 0
        if entry.content is not None:
            if offset == 0 and count == entry.size:
                conn.send(entry.content)
            else:
                conn.send(entry.content[offset:offset + count])
        else:
            conn.send_file(FileSegment.borrowed(entry.fd, offset, count, entry))
        return 0

    cdef int multipart(self, Connection conn, CachedFile entry, tuple heads, fc_range_t *ranges, int n,
                       bytes end, double began) except -1:
        """206 multipart/byteranges (RFC 9110 14.6): each part has its own
        Content-Type and Content-Range; the total length is known up front."""
        cdef int k
        cdef uint64_t total = 0
        cdef list part_heads = []
        cdef bytes ctype = <bytes>PyTuple_GET_ITEM(heads, 2)
        cdef bytes closing = b"\r\n--" + self.boundary + b"--\r\n"
        for k in range(n):
            part = (b"\r\n--" + self.boundary + b"\r\n" + ctype +
                    b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (ranges[k].first, ranges[k].last, entry.size))
            part_heads.append(part)
            total += PyBytes_GET_SIZE(part) + ranges[k].last - ranges[k].first + 1
        total += PyBytes_GET_SIZE(closing)
        conn.send(b"HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=" +
                  self.boundary + b"\r\n" + <bytes>PyTuple_GET_ITEM(heads, 3) + b"Content-Length: %d\r\n" % total)
        conn.send(date_line())
        conn.send(end)
        for k in range(n):
            conn.send(<bytes>part_heads[k])
            self.send_body(conn, entry, ranges[k].first, ranges[k].last - ranges[k].first + 1)
        conn.send(closing)
        return self.respond(conn, 206, total, began)

    cdef int simple(self, Connection conn, int status, bint is_head, bytes end, double began,
                    bytes extra=b"") except -1:
        """A short plain-text answer (403, 404, 405, 412)."""
        body = b"%d %s\n" % (status, reason(status))
        conn.send(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s%s" % (
            status, reason(status), len(body), extra, self.server_line))
        conn.send(date_line())
        conn.send(end)
        if not is_head:
            conn.send(body)
        return self.respond(conn, status, 0 if is_head else len(body), began)

    cdef int redirect(self, Connection conn, bint is_head, bytes end, double began) except -1:
        """301 to the same path with a trailing slash (query kept). The path
        is the normalised one, percent-encoded again: never the raw one, in
        which "//evil.example/.." would make a link to another site."""
        cdef RequestParser p = conn.parser
        cdef Router router = self.router
        location = quote(PyBytes_FromStringAndSize(router.path, router.path_len), PATH_SAFE) + b"/"
        if p.info.query.len:
            location += b"?" + PyBytes_FromStringAndSize(p.info.query.at, p.info.query.len)
        body = b"301 Moved Permanently\n"
        conn.send(b"HTTP/1.1 301 Moved Permanently\r\nLocation: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  b"Content-Length: %d\r\n%s" % (location, len(body), self.server_line))
        conn.send(date_line())
        conn.send(end)
        if not is_head:
            conn.send(body)
        return self.respond(conn, 301, 0 if is_head else len(body), began)

    cdef int listing(self, Connection conn, bytes rel, bint is_head, bytes end, double began) except -1:
        """The directory's entries as an HTML page (autoindex), 403 when
        listings are off, 404 when there is no such directory."""
        cdef Router router = self.router
        cdef int fd
        cdef char date[FC_HTTP_DATE_LEN + 1]
        try:
            fd = self.root.open_relative(rel)
        except OSError:
            return self.simple(conn, 404, is_head, end, began)
        try:
            if not stat_module.S_ISDIR(os.fstat(fd).st_mode):
                return self.simple(conn, 404, is_head, end, began)
            if not self.autoindex:
                return self.simple(conn, 403, is_head, end, began)
            rows = []
            truncated = False
            with os.scandir(fd) as scan:
                for item in scan:
                    if len(rows) >= self.listing_max:
                        truncated = True
                        break
                    name = item.name
                    if name.startswith(".") and not self.dotfiles:
                        continue
                    try:
                        if item.is_symlink() and self.root.beneath:
                            # where it leads may be outside the root: say nothing of it
                            is_dir, size, mtime = False, b"-", 0
                        else:
                            is_dir = item.is_dir()
                            info = item.stat(follow_symlinks=True)
                            size = b"-" if is_dir else b"%d" % info.st_size
                            mtime = int(info.st_mtime)
                    except OSError:
                        is_dir, size, mtime = False, b"-", 0
                    rows.append((not is_dir, name.encode("utf-8", "surrogateescape"), is_dir, size, mtime))
        finally:
            os.close(fd)
        rows.sort()
        title = html_escape(PyBytes_FromStringAndSize(router.path, router.path_len)
                            .decode("utf-8", "replace").encode("utf-8"))
        out = [b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ", title,
               b"</title></head>\n<body><h1>Index of ", title, b"</h1>\n<table>\n"]
        if router.path_len > 1:
            out.append(b"<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n")
        for _, raw, is_dir, size, mtime in rows:
            shown = html_escape(raw.decode("utf-8", "replace").encode("utf-8"))
            slash = b"/" if is_dir else b""
            fc_http_date_format(mtime, date)
            out += [b"<tr><td><a href=\"", quote(raw, SEGMENT_SAFE), slash, b"\">", shown, slash, b"</a></td><td>",
                    size, b"</td><td>", PyBytes_FromStringAndSize(date, FC_HTTP_DATE_LEN), b"</td></tr>\n"]
        out.append(b"</table>\n")
        if truncated:
            out.append(b"<p>Only the first %d entries are listed (autoindex_max_entries).</p>\n" % self.listing_max)
        out.append(b"</body></html>\n")
        body = b"".join(out)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
                  b"Cache-Control: no-cache\r\n%s" % (len(body), self.server_line))
        conn.send(date_line())
        conn.send(end)
        if not is_head:
            conn.send(body)
        return self.respond(conn, 200, 0 if is_head else len(body), began)
