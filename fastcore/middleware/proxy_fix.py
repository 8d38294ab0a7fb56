"""ProxyFix: the scheme, host and path prefix the client used, as a trusted
proxy in front of the server reports them, applied to environ.

Only a request whose peer is in ``forwarded_allow_ips`` (the server's
setting unless given) is changed; anyone else's ``X-Forwarded-*`` fields are
ignored. Of a field a chain of proxies appended to, the last value is used:
the one our peer wrote.

- ``X-Forwarded-Proto`` (``http`` or ``https``) -> ``wsgi.url_scheme``;
- ``X-Forwarded-Host`` (``host[:port]``) -> ``HTTP_HOST``, ``SERVER_NAME``
  and ``SERVER_PORT`` (the scheme's port when none is given);
- ``X-Forwarded-Prefix`` (``/path``, where the proxy mounted this server)
  goes in front of ``SCRIPT_NAME``, so URLs the application builds lead
  back through the proxy.

A malformed value is ignored. What environ held before goes in
``environ["fastcore.proxy_fix.original"]``.
"""
import re
from urllib.parse import unquote_to_bytes

from fastcore.middleware.options import check_bool
from fastcore.middleware.trust import trust_option

__all__ = ["ProxyFix"]

DEFAULT_TRUSTED = ("127.0.0.1/8", "::1")
_HOST = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?\Z")
_PREFIX = re.compile(r"/[^\x00-\x20\x7f?#\\]*\Z")
_KEYS = ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME")


def _last(value):
    return value.rsplit(",", 1)[-1].strip()


class ProxyFix:
    """WSGI middleware: ``ProxyFix(app, proto=True, host=True, prefix=True, forwarded_allow_ips=...)``."""

    def __init__(self, app, proto=True, host=True, prefix=True, forwarded_allow_ips=DEFAULT_TRUSTED):
        self.app = app
        self.proto = check_bool("proto", proto)
        self.host = check_bool("host", host)
        self.prefix = check_bool("prefix", prefix)
        self.forwarded_allow_ips = forwarded_allow_ips
        self._trusted = trust_option(forwarded_allow_ips)

    def apply(self, environ):
        """Rewrites environ from a trusted peer's forwarding fields."""
        original = {key: environ.get(key) for key in _KEYS}
        changed = False
        proto = environ.get("HTTP_X_FORWARDED_PROTO") if self.proto else None
        if proto and _last(proto).lower() in ("http", "https"):
            environ["wsgi.url_scheme"] = _last(proto).lower()
            changed = True
        host = environ.get("HTTP_X_FORWARDED_HOST") if self.host else None
        match = _HOST.match(_last(host)) if host else None
        if match and (match.group("port") is None or int(match.group("port")) < 65536):
            environ["HTTP_HOST"] = match.group(0)
            environ["SERVER_NAME"] = match.group("name").strip("[]")
            environ["SERVER_PORT"] = match.group("port") or (
                "443" if environ.get("wsgi.url_scheme") == "https" else "80")
            changed = True
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX") if self.prefix else None
        if prefix and _PREFIX.match(_last(prefix)):
            # SCRIPT_NAME is decoded, as PATH_INFO: bytes read as latin-1 (PEP 3333)
            mount = unquote_to_bytes(_last(prefix)).decode("latin-1").rstrip("/")
            environ["SCRIPT_NAME"] = mount + environ.get("SCRIPT_NAME", "")
            changed = True
        if changed:
            environ["fastcore.proxy_fix.original"] = original

    def __call__(self, environ, start_response):
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            self.apply(environ)
        return self.app(environ, start_response)
