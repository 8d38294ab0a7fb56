"""RequestID: every request carries an id, the same in the application's
environ, the response header and the access log.

An incoming ``X-Request-ID`` (or the configured ``header``) is kept only
when the peer that sent it is a trusted proxy (``forwarded_allow_ips``, the
server's setting unless given), so that one id follows a request across
machines; from anyone else, or when it is not a plain token of at most 200
visible characters, a new id is made (16 hex digits, as the access log's).
A client cannot choose the id its request is logged under.

The id goes in ``environ["fastcore.request_id"]``, replaces the header's
``HTTP_*`` key (so an application or library that reads the header sees the
trusted value), and is added to the response unless the application set the
header itself. The access log records ``fastcore.request_id``.
"""
import re

from fastcore.logs import make_request_id
from fastcore.middleware.options import check_header_name
from fastcore.middleware.trust import trust_option

__all__ = ["ENVIRON_KEY", "RequestID"]

ENVIRON_KEY = "fastcore.request_id"
DEFAULT_TRUSTED = ("127.0.0.1/8", "::1")
# visible ASCII but the characters that would need escaping in a log or a header
_VALID_ID = re.compile(r"[!#-\[\]-~]{1,200}\Z")


class RequestID:
    """WSGI middleware: ``RequestID(app, header="X-Request-ID", forwarded_allow_ips=...)``."""

    def __init__(self, app, header="X-Request-ID", forwarded_allow_ips=DEFAULT_TRUSTED):
        self.app = app
        self.header = check_header_name("header", header)
        self.forwarded_allow_ips = forwarded_allow_ips
        self._trusted = trust_option(forwarded_allow_ips)
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")
        self._lower = header.lower()

    def request_id(self, environ):
        """The incoming id when a trusted peer sent a valid one, else a new one."""
        incoming = environ.get(self._environ_key)
        if incoming and _VALID_ID.match(incoming) and self._trusted(environ.get("REMOTE_ADDR", "")):
            return incoming
        return make_request_id()

    def __call__(self, environ, start_response):
        request_id = environ[ENVIRON_KEY] = environ[self._environ_key] = self.request_id(environ)
        header, lower = self.header, self._lower

        def start_with_id(status, headers, exc_info=None):
            if not any(name.lower() == lower for name, _ in headers):
                headers = [*headers, (header, request_id)]
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_id)
