"""fastcore: an HTTP/1.1 server for Python web applications with a Cython core."""

__version__ = "0.1.0"
