"""Public HTTP/1.1 parsing API.

    from fastcore.http import RequestParser, ResponseParser, ParseError

``RequestParser(max_body=..., max_request_line=..., max_header_bytes=...,
max_headers=..., max_chunk_line=...)`` frames a byte stream into requests:
``feed(data)`` returns the list of requests completed by ``data`` (zero or
more; partial input stays buffered, pipelined requests all come out).
After a ``ParseError`` the stream is unusable: a server answers
``err.status`` and closes the connection.

``ResponseParser`` does the same for responses (the reverse proxy's side);
``feed(data, request_method="GET")``.
"""

from fastcore._core.parser import (  # noqa: F401
    DEFAULT_LIMITS,
    ParseError,
    Request,
    RequestParser,
    Response,
    ResponseParser,
)

__all__ = ["ParseError", "Request", "RequestParser", "Response", "ResponseParser", "DEFAULT_LIMITS"]
