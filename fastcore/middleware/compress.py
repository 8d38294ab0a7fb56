"""Compress: gzip (and brotli, where the ``brotli`` package is installed)
for responses worth it, streamed chunk by chunk.

Theory of operation
-------------------
The decision needs the response head (status, Content-Type, ...), which the
application gives through ``start_response``, often before it returns its
body. So the middleware holds the head back (``_Exchange``) until it can
decide, then forwards it, changed or not:

- the application returned (the usual case): a list's size is known, so a
  small body is left alone; any other body has the size its Content-Length
  says, or none (compressed);
- the application returns a generator that calls ``start_response`` when
  first pulled: the decision is taken at its first chunk;
- the application calls ``write()``: at the first write.

A response is compressed when all of these hold: the request is not HEAD;
the status is 2xx to 5xx but not 204, 206 or 304; no Content-Encoding other
than identity, no Content-Range, no ``Cache-Control: no-transform``; the
Content-Type is one of ``types``; its size is unknown or at least
``min_size``. Such a response carries ``Vary: Accept-Encoding`` whether or
not this client accepted a coding, so that a cache keeps both forms apart.
The coding is the client's preferred one of br (if installed) and gzip by
``Accept-Encoding`` weights, br first on a tie; none acceptable, none used.

Compressing drops Content-Length (the body goes chunked) and weakens a
strong ETag (``W/``), as the bytes differ from the identity form's.

Streaming: each chunk the application yields is compressed and flushed
(``Z_SYNC_FLUSH``; brotli's flush) before the next is pulled, so a chunk
reaches the client before the application produces the next; a list body
is flushed once, at its end. Nothing is buffered whole. A body from
``wsgi.file_wrapper`` that is not compressed passes through untouched (so
it still goes out with sendfile).
"""
import zlib

from fastcore.middleware.options import check_bool, check_int, check_strings

try:
    import brotli
except ImportError:  # optional: gzip only
    brotli = None

__all__ = ["Compress", "DEFAULT_TYPES"]

DEFAULT_TYPES = (
    "text/*",
    "application/json", "application/javascript", "application/x-javascript", "application/xml",
    "application/xhtml+xml", "application/rss+xml", "application/atom+xml", "application/ld+json",
    "application/manifest+json", "application/wasm", "image/svg+xml",
    "*+json", "*+xml",
)
_NO_BODY = frozenset((204, 206, 304))


def accepted_weights(header):
    """{coding: q} from an Accept-Encoding value; a malformed q counts as 0."""
    weights = {}
    for part in header.split(","):
        coding, _, parameters = part.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights["gzip" if coding == "x-gzip" else coding] = weight
    return weights


class _Gzip:
    name = "gzip"

    def __init__(self, level):
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: a gzip header and trailer

    def compress(self, data):
        return self._z.compress(data)

    def flush(self):
        return self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self):
        return self._z.flush(zlib.Z_FINISH)


class _Brotli:
    name = "br"

    def __init__(self, quality):
        self._c = brotli.Compressor(quality=quality)

    def compress(self, data):
        return self._c.process(data)

    def flush(self):
        return self._c.flush()

    def finish(self):
        return self._c.finish()


class Compress:
    """WSGI middleware: ``Compress(app, min_size=1024, level=6, brotli=True,
    brotli_quality=4, types=DEFAULT_TYPES)``."""

    def __init__(self, app, min_size=1024, level=6, brotli=True, brotli_quality=4, types=DEFAULT_TYPES):
        self.app = app
        self.min_size = check_int("min_size", min_size, 0)
        self.level = check_int("level", level, 1, 9)
        self.brotli_quality = check_int("brotli_quality", brotli_quality, 0, 11)
        self.types = check_strings("types", types)
        self.brotli = check_bool("brotli", brotli) and _brotli_installed()
        self._exact = frozenset(t.lower() for t in self.types if "*" not in t)
        self._majors = tuple(t.lower()[:-1] for t in self.types if t.endswith("/*"))
        self._suffixes = tuple(t.lower()[1:] for t in self.types if t.startswith("*+"))
        self._codings = ("br", "gzip") if self.brotli else ("gzip",)

    # decisions

    def choose_coding(self, accept_encoding):
        """The coding to use for this client: "br", "gzip" or None."""
        if not accept_encoding:
            return None
        weights = accepted_weights(accept_encoding)
        best, best_weight = None, 0.0
        for coding in self._codings:
            weight = weights.get(coding, weights.get("*", 0.0))
            if weight > best_weight:
                best, best_weight = coding, weight
        return best

    def compressible_type(self, content_type):
        media = content_type.partition(";")[0].strip().lower()
        return media in self._exact or media.startswith(self._majors) or media.endswith(self._suffixes)

    def compressible(self, status, headers, length):
        """May this response be compressed? ``length`` is the body's size when
        known without reading it (a list), else None."""
        try:
            code = int(status[:3])
        except (TypeError, ValueError):
            return False
        if code < 200 or code in _NO_BODY:
            return False
        content_type = None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type":
                content_type = value
            elif lower == "content-encoding":
                if value.strip().lower() not in ("", "identity"):
                    return False
            elif lower == "cache-control":
                if "no-transform" in value.lower():
                    return False
            elif lower == "content-range":
                return False
            elif lower == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    return False
        if content_type is None or not self.compressible_type(content_type):
            return False
        return length is None or length >= self.min_size

    def encoder(self, coding):
        return _Brotli(self.brotli_quality) if coding == "br" else _Gzip(self.level)

    # the WSGI call

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "HEAD":
            return self.app(environ, start_response)
        exchange = _Exchange(self, start_response, self.choose_coding(environ.get("HTTP_ACCEPT_ENCODING", "")))
        result = self.app(environ, exchange.start_response)
        if not exchange.decided:
            if exchange.status is None:  # a generator that starts the response when pulled
                return _DeferredBody(exchange, result)
            exchange.decide(sum(map(len, result)) if type(result) in (list, tuple) else None)
        if exchange.encoder is None:
            return result
        return _CompressedBody(result, exchange.encoder, flush_each=type(result) not in (list, tuple))


def _brotli_installed():
    return brotli is not None


def _with_vary(headers):
    for name, value in headers:
        if name.lower() == "vary" and any(item.strip().lower() in ("*", "accept-encoding")
                                           for item in value.split(",")):
            return headers
    return [*headers, ("Vary", "Accept-Encoding")]


def _compressed_headers(headers, coding):
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower == "content-length":
            continue
        if lower == "etag" and value.startswith('"'):
            value = "W/" + value
        out.append((name, value))
    out.append(("Content-Encoding", coding))
    return _with_vary(out)


class _Exchange:
    """One response whose head is held until the middleware decides."""

    __slots__ = ("middleware", "real_start", "coding", "status", "headers", "exc_info", "decided", "encoder",
                 "real_write")

    def __init__(self, middleware, real_start, coding):
        self.middleware = middleware
        self.real_start = real_start
        self.coding = coding
        self.status = self.headers = self.exc_info = None
        self.decided = False
        self.encoder = None
        self.real_write = None

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None and self.decided:
            return self.real_start(status, headers, exc_info)  # the server re-raises: the head is out
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self.write

    def decide(self, length):
        """Forwards the head, for a compressed body or not."""
        self.decided = True
        headers = list(self.headers)
        if self.middleware.compressible(self.status, headers, length):
            if self.coding is not None:
                self.encoder = self.middleware.encoder(self.coding)
                headers = _compressed_headers(headers, self.coding)
            else:
                headers = _with_vary(headers)
        exc_info, self.exc_info = self.exc_info, None
        self.real_write = self.real_start(self.status, headers, exc_info)

    def write(self, data):
        """The legacy write() callable (PEP 3333): the head goes at the first call."""
        if not self.decided:
            self.decide(None)
        if self.encoder is not None:
            data = self.encoder.compress(data) + self.encoder.flush()
        if data:
            self.real_write(data)


def _close(result):
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _CompressedBody:
    """The application's body, compressed as it is pulled; close() reaches it."""

    def __init__(self, result, encoder, flush_each):
        self.result = result
        self.encoder = encoder
        self.flush_each = flush_each

    def __iter__(self):
        encoder = self.encoder
        for chunk in self.result:
            data = encoder.compress(chunk)
            if self.flush_each:
                data += encoder.flush()
            if data:
                yield data
        tail = encoder.finish()
        if tail:
            yield tail

    def close(self):
        _close(self.result)


class _DeferredBody:
    """A body whose application starts the response only when first pulled:
    the head is decided at the first chunk, and the rest follows as above."""

    def __init__(self, exchange, result):
        self.exchange = exchange
        self.result = result

    def __iter__(self):
        exchange = self.exchange
        for chunk in self.result:
            if not exchange.decided:
                if exchange.status is None:
                    if not chunk:
                        continue
                    raise AssertionError("the application yielded a body before calling start_response")
                exchange.decide(None)
            encoder = exchange.encoder
            if encoder is not None:
                chunk = encoder.compress(chunk) + encoder.flush()
            if chunk:
                yield chunk
        if not exchange.decided:
            if exchange.status is None:
                raise AssertionError("the application returned without calling start_response")
            exchange.decide(0)
        if exchange.encoder is not None:
            tail = exchange.encoder.finish()
            if tail:
                yield tail

    def close(self):
        _close(self.result)
