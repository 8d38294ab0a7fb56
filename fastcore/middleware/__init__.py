"""WSGI middleware shipped with fastcore, for the ``middleware`` setting
(``fastcore.middleware:RequestID``, ``:Compress``, ``:ProxyFix``), and the
chain that applies the setting (``chain``) and lists every layer a request
passes (``listing``, ``fastcore middlewares``).

Each middleware is a plain WSGI middleware with no dependency on the rest
of the server: it works under any WSGI server too.
"""
from fastcore.middleware.compress import Compress
from fastcore.middleware.proxy_fix import ProxyFix
from fastcore.middleware.request_id import RequestID

__all__ = ["Compress", "ProxyFix", "RequestID"]
