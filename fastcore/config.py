"""Every setting of fastcore, declared once.

Theory of operation
-------------------
``SETTINGS`` is the one table. Each ``Setting`` names itself once; from it
we derive, and never write by hand:

- the ``fastcore serve``/``check`` options (``add_setting_arguments``),
- the TOML key (the setting's name, top level of the ``--config`` file),
- the environment variable (``FASTCORE_<NAME>``),
- the attributes of ``Config`` (one per setting, frozen),
- the README table (``settings_markdown``, ``python -m fastcore.config --markdown``).

A value is looked up in this order, first hit wins: command line,
environment, config file, default. Whatever its origin, the raw value goes
through the setting's parser, so a default is checked exactly like a user's
value. A parser either returns the value in its final Python type or raises
``_Invalid(expected, got)``; ``_resolve`` turns that into a one-line
``ConfigError`` that names the setting, where the value came from and the
value itself, because a user who mistyped a flag needs that line and no
traceback.

Paths (``chdir``, log files, ``unix:`` sockets) are made absolute against
the directory fastcore was started from, before anything changes directory.
"""

import argparse
import dataclasses
import difflib
import ipaddress
import math
import os
import re
import sys
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = [
    "Address",
    "Config",
    "ConfigError",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "Setting",
    "StaticLocation",
    "TLSCertificate",
    "listeners",
    "MiddlewareEntry",
    "ProxyLocation",
    "UpstreamServer",
    "LIMIT_KEYS",
    "limits_active",
    "add_setting_arguments",
    "build_config",
    "load_config",
    "parse_address",
    "parse_bool",
    "parse_duration",
    "parse_middleware",
    "parse_size",
    "read_config_file",
    "settings_markdown",
]

ENV_PREFIX = "FASTCORE_"
SECTIONS = ("server", "tls", "static", "proxy", "limits", "protection", "timeouts", "wsgi", "logging")
_MAX_REPR = 80  # a pasted blob in an error line helps nobody past this


class ConfigError(Exception):
    """A setting has a bad value. The message is one line, meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


class _Invalid(Exception):
    """Raised by a value parser: what it expected, and the offending value."""

    def __init__(self, expected: str, got: Any) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = got


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) <= _MAX_REPR:
        return text
    if isinstance(value, str):  # keep the quotes, so the line still reads as a value
        return repr(value[: _MAX_REPR - 8])[:-1] + "...'"
    return text[: _MAX_REPR - 3] + "..."


# ---------------------------------------------------------------------------
# Value parsers. Each accepts what a command line or environment gives (str)
# and what TOML gives (int, float, bool, str, list), and returns the final
# value. bool is an int subclass in Python; it is never accepted as a number.

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_SIZE_RE = re.compile(r"([0-9]+)\s*([kmg]?)\Z", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_MAX_SIZE = (1 << 63) - 1  # the core holds sizes in a signed 64-bit integer
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m)?\Z", re.IGNORECASE)
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0}
_MAX_DURATION = 365 * 24 * 3600.0  # keeps millisecond timer arithmetic far from overflow
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _integer(value: Any, expected: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    raise _Invalid(expected, value)


def integer(minimum: int, maximum: Optional[int] = None) -> Callable[[Any], int]:
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(value: Any) -> int:
        number = _integer(value, expected)
        if number < minimum or (maximum is not None and number > maximum):
            raise _Invalid(expected, value)
        return number

    return parse


def parse_size(value: Any) -> int:
    """Bytes from ``4096``, ``"4096"``, ``"64k"``, ``"16m"``, ``"1g"`` (KiB, MiB, GiB)."""
    expected = "a size in bytes such as 4096, 64k, 16m or 1g"
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _SIZE_RE.match(value.strip()):
        digits, unit = _SIZE_RE.match(value.strip()).groups()
        number = int(digits) * _SIZE_UNITS[unit.lower()]
    else:
        raise _Invalid(expected, value)
    if not 0 <= number <= _MAX_SIZE:
        raise _Invalid(expected, value)
    return number


def size(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = parse_size(value)
        if number < minimum:
            raise _Invalid(f"a size of at least {minimum} byte{'s' if minimum != 1 else ''}", value)
        return number

    return parse


def parse_duration(value: Any) -> float:
    """Seconds (float > 0) from ``20``, ``1.5``, ``"20s"``, ``"500ms"``, ``"2m"``."""
    expected = "a duration > 0 such as 30, 1.5, 30s, 500ms or 2m"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.match(value.strip()):
        number, unit = _DURATION_RE.match(value.strip()).groups()
        seconds = float(number) * _DURATION_UNITS[(unit or "").lower()]
    else:
        raise _Invalid(expected, value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise _Invalid(expected, value)
    if seconds > _MAX_DURATION:
        raise _Invalid("a duration of at most one year", value)
    return seconds


def parse_bool(value: Any) -> bool:
    """true/false/1/0/yes/no/on/off in any case, or a TOML boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Invalid("a boolean (true/false, 1/0, yes/no, on/off)", value)


def choice(*options: str) -> Callable[[Any], str]:
    expected = "one of " + ", ".join(options)

    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
        raise _Invalid(expected, value)

    return parse


def parse_workers(value: Any) -> int:
    """A count >= 1, or ``auto``: the CPUs this process may run on."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        if hasattr(os, "sched_getaffinity"):
            return max(1, len(os.sched_getaffinity(0)))
        return os.cpu_count() or 1
    try:
        return integer(1)(value)
    except _Invalid:
        raise _Invalid("an integer >= 1 or 'auto'", value) from None


def parse_threads(value: Any):
    """A count >= 1, or ``auto`` (inline while calls are quick, threads after a slow one)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return integer(1)(value)
    except _Invalid:
        raise _Invalid("an integer >= 1 or 'auto'", value) from None


def _nonempty_string(value: Any, expected: str) -> str:
    if isinstance(value, str) and value and "\0" not in value:
        return value
    raise _Invalid(expected, value)


def parse_directory(value: Any) -> str:
    path = _nonempty_string(value, "an existing directory")
    if not os.path.isdir(path):
        raise _Invalid("an existing directory", value)
    return os.path.abspath(path)


def parse_file_path(value: Any) -> str:
    return _nonempty_string(value, "a file path")


def parse_log_target(value: Any) -> str:
    """``-`` for the standard stream, else a file path (made absolute)."""
    target = _nonempty_string(value, "'-' or a file path")
    return target if target == "-" else os.path.abspath(target)


def parse_admin_address(value: Any) -> str:
    """HOST:PORT or [IPV6]:PORT for the admin listener (no unix sockets)."""
    text = _nonempty_string(value, "HOST:PORT")
    address = parse_address(text)
    if address.family == "unix":
        raise _Invalid("HOST:PORT (a TCP address)", value)
    return text


def parse_account(value: Any) -> str:
    """A user or group: a name, or a number."""
    return _nonempty_string(value, "a user or group name, or a number")


def parse_root_path(value: Any) -> str:
    """The WSGI SCRIPT_NAME prefix: empty, or ``/a/b`` (PEP 3333: no trailing slash)."""
    expected = "an empty string or a path that starts with '/' and does not end with '/'"
    if isinstance(value, str) and (value == "" or (value.startswith("/") and not value.endswith("/"))):
        return value
    raise _Invalid(expected, value)


def parse_duration_or_zero(value: Any) -> float:
    """Like parse_duration, but 0 is allowed (meaning: every time)."""
    if value in (0, "0") or (isinstance(value, float) and value == 0.0 and not isinstance(value, bool)):
        return 0.0
    try:
        return parse_duration(value)
    except _Invalid:
        raise _Invalid("a duration >= 0 such as 0, 1, 1.5, 500ms or 2m", value) from None


_AGE_RE = re.compile(r"([0-9]+)\s*([smhd]?)\Z", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_max_age(value: Any) -> int:
    """Whole seconds for Cache-Control max-age: ``3600``, ``"90s"``, ``"10m"``, ``"12h"``, ``"365d"``."""
    expected = "a number of seconds >= 0 such as 3600, 10m, 12h or 365d"
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _AGE_RE.match(value.strip()):
        digits, unit = _AGE_RE.match(value.strip()).groups()
        seconds = int(digits) * _AGE_UNITS[unit.lower()]
    else:
        raise _Invalid(expected, value)
    if not 0 <= seconds <= 2**31 - 1:  # RFC 9111 1.2.2: delta-seconds saturate at 2^31
        raise _Invalid(expected, value)
    return seconds


def parse_index_name(value: Any) -> str:
    """A file name (no '/'), served for a request that names a directory."""
    name = _nonempty_string(value, "a file name without '/'")
    if "/" in name or name in (".", ".."):
        raise _Invalid("a file name without '/'", value)
    return name


# ---------------------------------------------------------------------------
# Traffic protection: per-client limits, per location. Each key below is a
# top-level setting (the default, and what the application location uses)
# and a key of every [[static]] and [[proxy]] table.

_MAX_RATE = 1_000_000.0   # requests a second; the core counts thousandths in 64 bits
_MAX_BURST = 2_000_000    # the table keeps the excess in thousandths, in 32 bits (fc_limits.h)
_REAL_IP_HEADERS = {"x-forwarded-for": "X-Forwarded-For", "x-real-ip": "X-Real-IP",
                    "cf-connecting-ip": "CF-Connecting-IP", "forwarded": "Forwarded"}


def parse_limit_rate(value: Any) -> float:
    """Requests a second (a number >= 0.001, or 0 for no limit)."""
    expected = f"requests a second, a number from 0.001 to {_MAX_RATE:.0f} (0: no limit)"
    if isinstance(value, bool):
        raise _Invalid(expected, value)
    try:
        rate = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _Invalid(expected, value) from None
    if rate == 0:
        return 0.0
    if not (math.isfinite(rate) and 0.001 <= rate <= _MAX_RATE):
        raise _Invalid(expected, value)
    return rate


def parse_networks(value: Any) -> Tuple[str, ...]:
    """Addresses or networks (CIDR), repeated or comma-separated; ``all`` is
    every IPv4 and IPv6 address."""
    expected = "addresses or networks such as 10.0.0.0/8, 2001:db8::/32 or all"
    if isinstance(value, str):
        items: List[Any] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid(expected, value)
    out: List[str] = []
    for item in items:
        if not isinstance(item, str):
            raise _Invalid(expected, value)
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() == "all":
                out.extend(("0.0.0.0/0", "::/0"))
                continue
            try:
                out.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                raise _Invalid(expected, part) from None
    return tuple(out)


def parse_real_ip_header(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in _REAL_IP_HEADERS:
        return _REAL_IP_HEADERS[value.strip().lower()]
    raise _Invalid("one of " + ", ".join(_REAL_IP_HEADERS.values()), value)


_LIMIT_OPTIONS: Dict[str, Callable[[Any], Any]] = {
    "limit_req_rate": parse_limit_rate,
    "limit_req_burst": lambda value: integer(0, _MAX_BURST)(value),
    "limit_req_nodelay": parse_bool,
    "limit_conn": lambda value: integer(0, 1_000_000)(value),
    "allow": parse_networks,
    "deny": parse_networks,
    "limit_dry_run": parse_bool,
}


LIMIT_KEYS = tuple(_LIMIT_OPTIONS)


def limits_active(options: Any) -> bool:
    """Does a location (or the top level, for the application) limit anything?"""
    return bool(options.limit_req_rate or options.limit_conn or options.allow or options.deny)


@dataclasses.dataclass(frozen=True)
class StaticLocation:
    """One ``static`` location: requests under ``prefix`` are files under
    ``root``. An option left as None takes the top-level setting of the same
    name (``build_config`` fills them in)."""

    prefix: str
    root: str
    index: Optional[str] = None
    autoindex: Optional[bool] = None
    max_age: Optional[int] = None
    immutable: Optional[bool] = None
    dotfiles: Optional[bool] = None
    follow_symlinks: Optional[bool] = None
    precompressed: Optional[bool] = None
    limit_rate: Optional[int] = None
    limit_rate_after: Optional[int] = None
    limit_req_rate: Optional[float] = None
    limit_req_burst: Optional[int] = None
    limit_req_nodelay: Optional[bool] = None
    limit_conn: Optional[int] = None
    allow: Optional[Tuple[str, ...]] = None
    deny: Optional[Tuple[str, ...]] = None
    limit_dry_run: Optional[bool] = None

    def __str__(self) -> str:
        return f"{self.prefix}={self.root}"


# The bandwidth limit of a location's responses: keys of a [[static]] or a
# [[proxy]] table, each defaulting to the top-level setting of its name
# (which is also the limit of the application's responses).
_RATE_OPTIONS: Dict[str, Callable[[Any], Any]] = {
    "limit_rate": lambda value: size(0)(value),
    "limit_rate_after": lambda value: size(0)(value),
}


# The per-location options of a [[static]] table, with their parsers; each
# is also a top-level setting giving the default for every location.
_LOCATION_OPTIONS: Dict[str, Callable[[Any], Any]] = {
    "index": parse_index_name,
    "autoindex": parse_bool,
    "max_age": parse_max_age,
    "immutable": parse_bool,
    "dotfiles": parse_bool,
    "follow_symlinks": parse_bool,
    "precompressed": parse_bool,
    **_RATE_OPTIONS,
}


def _static_prefix(value: Any) -> str:
    expected = "a URL path prefix starting with '/' (such as /assets)"
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in "?#%\\\0 "):
        raise _Invalid(expected, value)
    segments = [segment for segment in value.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise _Invalid(expected, value)
    return "/" + "/".join(segments)  # no trailing slash: matching is by whole segments


def _static_root(value: Any, whole: Any) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise _Invalid("PREFIX=DIR with an existing directory", whole)
    if not os.path.isdir(value):
        raise _Invalid("PREFIX=DIR with an existing directory", whole)
    # absolute, but links kept: a deploy that flips `current -> releases/N`
    # is followed by the worker (it re-resolves the root)
    return os.path.abspath(value)


def _static_location(item: Any) -> StaticLocation:
    if isinstance(item, str):
        prefix, sep, root = item.partition("=")
        if not sep:
            raise _Invalid("PREFIX=DIR, such as /assets=./public", item)
        try:
            prefix = _static_prefix(prefix.strip())
        except _Invalid:
            raise _Invalid("PREFIX=DIR with PREFIX starting with '/' (such as /assets=./public)", item) from None
        return StaticLocation(prefix, _static_root(root.strip(), item))
    if isinstance(item, dict):
        unknown = set(item) - {"prefix", "root"} - set(_LOCATION_OPTIONS) - set(_LIMIT_OPTIONS)
        if unknown:
            key = sorted(unknown)[0]
            close = difflib.get_close_matches(key, ["prefix", "root", *_LOCATION_OPTIONS, *_LIMIT_OPTIONS], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _Invalid(f"a [[static]] table without the unknown key {key!r}{hint}", item)
        if "prefix" not in item or "root" not in item:
            raise _Invalid("a [[static]] table with 'prefix' and 'root'", item)
        prefix = _static_prefix(item["prefix"])
        options = {}
        for key, parse in {**_LOCATION_OPTIONS, **_LIMIT_OPTIONS}.items():
            if key in item:
                try:
                    options[key] = parse(item[key])
                except _Invalid as invalid:
                    raise _Invalid(f"[[static]] {prefix}: {key} as {invalid.expected}", invalid.got) from None
        return StaticLocation(prefix, _static_root(item["root"], item["root"]), **options)
    raise _Invalid("PREFIX=DIR or a [[static]] table", item)


def parse_static(value: Any) -> Tuple[StaticLocation, ...]:
    """Static locations from repeated ``--static PREFIX=DIR``, a comma-separated
    string (environment) or a TOML list of strings or ``[[static]]`` tables."""
    if isinstance(value, str):
        items: List[Any] = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid("PREFIX=DIR entries or [[static]] tables", value)
    locations: List[StaticLocation] = []
    for item in items:
        location = _static_location(item)
        if any(other.prefix == location.prefix for other in locations):
            raise _Invalid("each prefix once", item)
        locations.append(location)
    return tuple(locations)


@dataclasses.dataclass(frozen=True)
class UpstreamServer:
    """One server of a proxy pool: HOST:PORT, [IPV6]:PORT, unix:PATH, or a
    DNS name with a port (re-resolved every resolve_interval); any but
    unix:PATH after https:// for a server that speaks TLS."""

    address: str
    weight: int = 1
    backup: bool = False
    max_conns: int = 0

    @property
    def is_name(self) -> bool:
        """A DNS name rather than an address."""
        address = self.address[len("https://"):] if self.address.startswith("https://") else self.address
        if address.startswith(("unix:", "[")):
            return False
        host = address.rpartition(":")[0]
        try:
            ipaddress.ip_address(host)
            return False
        except ValueError:
            return True


@dataclasses.dataclass(frozen=True)
class ProxyLocation:
    """One ``proxy`` location: requests under ``prefix`` go to ``servers``.
    An option left as None takes the top-level ``proxy_<option>`` setting
    (``build_config`` fills them in)."""

    prefix: str
    servers: Tuple[UpstreamServer, ...]
    name: Optional[str] = None
    balance: Optional[str] = None
    hash_key: Optional[str] = None
    strip_prefix: Optional[bool] = None
    host: Optional[str] = None
    connect_timeout: Optional[float] = None
    read_timeout: Optional[float] = None
    send_timeout: Optional[float] = None
    retries: Optional[int] = None
    keepalive: Optional[int] = None
    keepalive_requests: Optional[int] = None
    keepalive_idle: Optional[float] = None
    max_fails: Optional[int] = None
    fail_timeout: Optional[float] = None
    slow_start: Optional[float] = None
    panic: Optional[str] = None
    health_path: Optional[str] = None
    health_interval: Optional[float] = None
    health_timeout: Optional[float] = None
    health_status: Optional[str] = None
    health_rise: Optional[int] = None
    health_fall: Optional[int] = None
    resolve_interval: Optional[float] = None
    websocket: Optional[bool] = None
    forwarded: Optional[bool] = None
    via: Optional[bool] = None
    tls_verify: Optional[bool] = None
    tls_ca_certs: Optional[str] = None
    tls_server_name: Optional[str] = None
    tls_certfile: Optional[str] = None
    tls_keyfile: Optional[str] = None
    limit_rate: Optional[int] = None
    limit_rate_after: Optional[int] = None
    limit_req_rate: Optional[float] = None
    limit_req_burst: Optional[int] = None
    limit_req_nodelay: Optional[bool] = None
    limit_conn: Optional[int] = None
    allow: Optional[Tuple[str, ...]] = None
    deny: Optional[Tuple[str, ...]] = None
    limit_dry_run: Optional[bool] = None

    @property
    def pool_name(self) -> str:
        return self.name or self.prefix

    def __str__(self) -> str:
        return f"{self.prefix}={','.join(server.address for server in self.servers)}"


_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")


def parse_upstream_address(value: Any) -> str:
    """HOST:PORT, [IPV6]:PORT, unix:PATH or NAME:PORT (a DNS name); any but
    unix:PATH after https:// for a TLS server (http:// is dropped: plain)."""
    expected = "HOST:PORT, [IPV6]:PORT, unix:PATH or a DNS name with a port, after https:// for TLS"
    if not isinstance(value, str):
        raise _Invalid(expected, value)
    text = value.strip()
    scheme = text[:text.find("://") + 3].lower() if "://" in text else ""
    if scheme not in ("", "http://", "https://"):
        raise _Invalid(expected, value)
    text = text[len(scheme):]
    if scheme == "https://":
        if text.startswith("unix:") or "://" in text:
            raise _Invalid(expected, value)
        return "https://" + parse_upstream_address(text)
    if text.startswith("unix:"):
        if len(text) <= 5 or "\0" in text:
            raise _Invalid(expected, value)
        return text
    match = _HOST_PORT.match(text)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise _Invalid(expected, value)
    if text.startswith("["):
        try:
            ipaddress.IPv6Address(text[1:text.index("]")])
        except ValueError:
            raise _Invalid(expected, value) from None
    return text


def parse_tls_server_name(value: Any) -> Optional[str]:
    """A DNS name or an IP address (the name an upstream's certificate must carry)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            pass
        if re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?", value):
            return value.rstrip(".").lower()
    raise _Invalid("a DNS name or an IP address", value)


def parse_hash_key(value: Any) -> Optional[str]:
    """client_ip, uri or header:NAME."""
    if value is None:
        return None
    if value in ("client_ip", "uri") or (isinstance(value, str) and value.startswith("header:")
                                         and re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value[7:])):
        return value
    raise _Invalid("client_ip, uri or header:NAME", value)


def parse_host_mode(value: Any) -> str:
    """pass (the client's Host), upstream (the server's address) or a fixed value."""
    if isinstance(value, str) and value and not any(c in value for c in "\r\n\0 ,"):
        return value
    raise _Invalid("pass, upstream or a host name", value)


def parse_health_status(value: Any) -> str:
    """Status codes and ranges: 200-399, 200,204."""
    if isinstance(value, str) and re.fullmatch(r"\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*", value.replace(" ", "")):
        return value.replace(" ", "")
    raise _Invalid("status codes and ranges such as 200-399", value)


def parse_health_path(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith("/") and not any(c in value for c in " \r\n\0#"):
        return value
    raise _Invalid("a path starting with '/' (active health checks), or empty for none", value)


def _positive_int(value: Any) -> int:
    return integer(1)(value)


# The per-location options of a [[proxy]] table, with their parsers; each
# is also a top-level setting ``proxy_<option>`` giving the default.
_PROXY_OPTIONS: Dict[str, Callable[[Any], Any]] = {
    "balance": lambda value: choice("round_robin", "least_conn", "random_two", "hash")(value),
    "hash_key": parse_hash_key,
    "strip_prefix": parse_bool,
    "host": parse_host_mode,
    "connect_timeout": parse_duration,
    "read_timeout": parse_duration,
    "send_timeout": parse_duration,
    "retries": lambda value: integer(0)(value),
    "keepalive": lambda value: integer(0)(value),
    "keepalive_requests": _positive_int,
    "keepalive_idle": parse_duration,
    "max_fails": lambda value: integer(0)(value),
    "fail_timeout": parse_duration,
    "slow_start": lambda value: parse_duration_or_zero(value),
    "panic": lambda value: choice("all", "refuse")(value),
    "health_path": parse_health_path,
    "health_interval": parse_duration,
    "health_timeout": parse_duration,
    "health_status": parse_health_status,
    "health_rise": _positive_int,
    "health_fall": _positive_int,
    "resolve_interval": parse_duration,
    "websocket": parse_bool,
    "forwarded": parse_bool,
    "via": parse_bool,
    "tls_verify": parse_bool,
    "tls_ca_certs": lambda value: parse_absolute_file(value),
    "tls_server_name": parse_tls_server_name,
    "tls_certfile": lambda value: parse_absolute_file(value),
    "tls_keyfile": lambda value: parse_absolute_file(value),
}


def _upstream_server(item: Any, prefix: str) -> UpstreamServer:
    if isinstance(item, str):
        return UpstreamServer(parse_upstream_address(item))
    if isinstance(item, dict):
        unknown = set(item) - {"address", "weight", "backup", "max_conns"}
        if unknown or "address" not in item:
            raise _Invalid(f"[[proxy]] {prefix}: servers as strings or tables with address, weight, backup, "
                           f"max_conns", item)
        return UpstreamServer(parse_upstream_address(item["address"]),
                              weight=integer(1)(item.get("weight", 1)),
                              backup=parse_bool(item.get("backup", False)),
                              max_conns=integer(0)(item.get("max_conns", 0)))
    raise _Invalid(f"[[proxy]] {prefix}: a server address", item)


def _proxy_location(item: Any) -> ProxyLocation:
    if isinstance(item, str):
        prefix, sep, servers = item.partition("=")
        if not sep or not servers.strip():
            raise _Invalid("PREFIX=ADDR[,ADDR...], such as /api=127.0.0.1:9000", item)
        try:
            prefix = _static_prefix(prefix.strip())
        except _Invalid:
            raise _Invalid("PREFIX=ADDR[,ADDR...] with PREFIX starting with '/'", item) from None
        return ProxyLocation(prefix, tuple(_upstream_server(address.strip(), prefix)
                                           for address in servers.split(",") if address.strip()))
    if isinstance(item, dict):
        known = {"prefix", "name", "servers", *_PROXY_OPTIONS, *_RATE_OPTIONS, *_LIMIT_OPTIONS}
        unknown = set(item) - known
        if unknown:
            key = sorted(unknown)[0]
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _Invalid(f"a [[proxy]] table without the unknown key {key!r}{hint}", item)
        if "prefix" not in item or "servers" not in item:
            raise _Invalid("a [[proxy]] table with 'prefix' and 'servers'", item)
        prefix = _static_prefix(item["prefix"])
        servers = item["servers"]
        if isinstance(servers, str) or not isinstance(servers, (list, tuple)) or not servers:
            raise _Invalid(f"[[proxy]] {prefix}: servers as a non-empty list", servers)
        options = {}
        for key, parse in {**_PROXY_OPTIONS, **_RATE_OPTIONS, **_LIMIT_OPTIONS}.items():
            if key in item:
                try:
                    options[key] = parse(item[key])
                except _Invalid as invalid:
                    raise _Invalid(f"[[proxy]] {prefix}: {key} as {invalid.expected}", invalid.got) from None
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name)):
            raise _Invalid(f"[[proxy]] {prefix}: name as letters, digits, '_', '.', '-'", name)
        return ProxyLocation(prefix, tuple(_upstream_server(server, prefix) for server in servers), name=name,
                             **options)
    raise _Invalid("PREFIX=ADDR[,ADDR...] or a [[proxy]] table", item)


def parse_proxy(value: Any) -> Tuple[ProxyLocation, ...]:
    """Proxy locations from repeated ``--proxy PREFIX=ADDR[,ADDR...]``, a
    whitespace-separated string (environment) or a TOML list of strings or
    ``[[proxy]]`` tables."""
    if isinstance(value, str):
        items: List[Any] = value.split()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid("PREFIX=ADDR[,ADDR...] entries or [[proxy]] tables", value)
    locations: List[ProxyLocation] = []
    for item in items:
        location = _proxy_location(item)
        if any(other.prefix == location.prefix for other in locations):
            raise _Invalid("each prefix once", item)
        if any(other.pool_name == location.pool_name for other in locations):
            raise _Invalid("each pool name once", item)
        locations.append(location)
    return tuple(locations)


def parse_cidrs(value: Any) -> Tuple[str, ...]:
    """Comma-separated addresses or networks (CIDR); '*' trusts everyone."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise _Invalid("addresses or networks such as 127.0.0.1/8,::1", value)
    out = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise _Invalid("addresses or networks such as 127.0.0.1/8,::1", value) from None
        out.append(item)
    return tuple(out)


def parse_resolver(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    match = isinstance(value, str) and re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d{1,5})", value)
    if match and 0 < int(match.group(2)) < 65536:
        try:
            ipaddress.ip_address(match.group(1).strip("[]"))
            return value
        except ValueError:
            pass
    raise _Invalid("HOST:PORT of a DNS server (an IP address), or empty for the system's", value)


@dataclasses.dataclass(frozen=True)
class MiddlewareEntry:
    """One entry of ``middleware``: the factory ``package.module:Factory``,
    called with the application and ``options`` as keyword arguments."""

    factory: str
    options: Tuple[Tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> Dict[str, Any]:
        return dict(self.options)

    def __str__(self) -> str:
        if not self.options:
            return self.factory
        return f"{self.factory}({', '.join(f'{key}={value!r}' for key, value in self.options)})"


_FACTORY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
                         r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_MIDDLEWARE_EXPECTED = "'package.module:Factory', 'package.module:Factory(option=value, ...)' or an inline table " \
                       "{factory = 'package.module:Factory', option = value, ...}"


def _middleware_entry(item: Any) -> MiddlewareEntry:
    import ast

    if isinstance(item, dict):
        factory = item.get("factory")
        if not isinstance(factory, str) or not _FACTORY_RE.match(factory.strip()):
            raise _Invalid("an inline table whose 'factory' is 'package.module:Factory'", item)
        options = tuple((key, value) for key, value in item.items() if key != "factory")
        for key, _ in options:
            if not key.isidentifier():
                raise _Invalid(f"middleware {factory}: option names that are Python identifiers", key)
        return MiddlewareEntry(factory.strip(), options)
    if not isinstance(item, str):
        raise _Invalid(_MIDDLEWARE_EXPECTED, item)
    text = item.strip()
    path, paren, call = text.partition("(")
    if not _FACTORY_RE.match(path.strip()):
        raise _Invalid(_MIDDLEWARE_EXPECTED, item)
    if not paren:
        return MiddlewareEntry(path.strip())
    try:
        tree = ast.parse("f(" + call, mode="eval").body
        if not isinstance(tree, ast.Call) or tree.args or any(k.arg is None for k in tree.keywords):
            raise ValueError
        options = tuple((keyword.arg, ast.literal_eval(keyword.value)) for keyword in tree.keywords)
    except (SyntaxError, ValueError):
        raise _Invalid("options as keywords with literal values, as in package.module:Factory(level=5)",
                       item) from None
    return MiddlewareEntry(path.strip(), options)


def _split_top_level(text: str) -> List[str]:
    """Entries of the environment variable: separated by whitespace or commas
    outside parentheses (an entry's options may hold either)."""
    entries, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and (char.isspace() or char == ","):
            if current:
                entries.append(current)
            current = ""
        else:
            current += char
    if current:
        entries.append(current)
    return entries


def parse_middleware(value: Any) -> Tuple[MiddlewareEntry, ...]:
    """WSGI middleware from repeated ``--middleware``, a whitespace-separated
    string (environment) or a TOML list of strings and inline tables; the
    first entry is the outermost layer."""
    if isinstance(value, str):
        items: List[Any] = _split_top_level(value)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid("a list of " + _MIDDLEWARE_EXPECTED, value)
    return tuple(_middleware_entry(item) for item in items)


class Address(NamedTuple):
    """One parsed ``bind`` entry. ``family`` is ``"inet"``, ``"inet6"`` or ``"unix"``."""

    family: str
    host: str = ""
    port: int = 0
    path: str = ""


_BIND_EXPECTED = "HOST:PORT, [IPV6]:PORT or unix:PATH"
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_UNIX_PATH = 107


def _port(text: str, whole: str) -> int:
    if not _PORT_RE.match(text) or int(text) > 65535:
        raise _Invalid("a port from 0 to 65535", whole)
    return int(text)


def parse_address(text: str) -> Address:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH`` → ``Address``; raises ``_Invalid``."""
    if not isinstance(text, str):
        raise _Invalid(_BIND_EXPECTED, text)
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path or "\0" in path:
            raise _Invalid("a socket path after 'unix:'", text)
        path = os.path.abspath(path)
        if len(os.fsencode(path)) > _MAX_UNIX_PATH:
            raise _Invalid(f"a unix socket path of at most {_MAX_UNIX_PATH} bytes", text)
        return Address("unix", path=path)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise _Invalid(_BIND_EXPECTED, text)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid("an IPv6 address between the brackets", text) from None
        return Address("inet6", host, _port(port, text))
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise _Invalid(_BIND_EXPECTED, text)
    if ":" in host:
        raise _Invalid("an IPv6 address in brackets, as in [::1]:8000", text)
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _Invalid("a valid IPv4 address", text) from None
    elif not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise _Invalid("a host name or IP address before ':PORT'", text)
    return Address("inet", host, _port(port, text))


def parse_bind(value: Any) -> Tuple[str, ...]:
    """One address or several: a list (TOML, repeated ``--bind``) or a comma-separated string."""
    if isinstance(value, str):
        items: List[Any] = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid("a list of addresses", value)
    if not items:
        raise _Invalid("at least one address", value)
    addresses: List[str] = []
    seen = set()
    for item in items:
        address = parse_address(item)
        # A second socket on the same address would be accepted silently
        # under SO_REUSEPORT and split the traffic; refuse it here.
        if address in seen:
            raise _Invalid("each address once", item)
        seen.add(address)
        addresses.append(f"unix:{address.path}" if address.family == "unix" else item)
    return tuple(addresses)


# ---------------------------------------------------------------------------
# TLS.

# Mozilla's "intermediate" TLS 1.2 suites that need no DH parameters: ECDHE
# key exchange, AEAD ciphers only (TLS 1.3's own suites are all of that kind)
DEFAULT_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                   "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
_SERVER_NAME_RE = re.compile(r"(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                             r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def parse_absolute_file(value: Any) -> str:
    """A file path, made absolute against the starting directory."""
    return os.path.abspath(_nonempty_string(value, "a file path"))


def parse_http_url(value: Any) -> str:
    """An http:// URL (OCSP responders speak plain HTTP: RFC 6960 A.1)."""
    text = _nonempty_string(value, "an http:// URL")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise _Invalid("an http:// URL (http://HOST[:PORT]/PATH)", value)
    try:
        parts.port
    except ValueError:
        raise _Invalid("an http:// URL with a port from 1 to 65535", value) from None
    return text


def parse_bind_tls(value: Any) -> Tuple[str, ...]:
    """Like bind, but none is allowed (the default: no separate TLS addresses)."""
    if value in ([], (), ""):
        return ()
    return parse_bind(value)


def parse_cipher_list(value: Any) -> str:
    """An OpenSSL cipher list (OpenSSL itself checks it, fastcore.preflight)."""
    return _nonempty_string(value, "an OpenSSL cipher list")


def parse_tls_version(value: Any) -> str:
    """"1.2" or "1.3" (also written TLSv1.2, tls1.3)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if isinstance(text, float):
        text = str(text)
    if isinstance(text, str):
        text = text.replace("tlsv", "").replace("tls", "")
        if text in ("1.2", "1.3"):
            return text
    raise _Invalid("1.2 or 1.3 (TLS 1.0 and 1.1 are not offered)", value)


@dataclasses.dataclass(frozen=True)
class TLSCertificate:
    """One ``[[tls]]`` table: the certificate of these SNI names."""

    server_names: Tuple[str, ...]
    certfile: str
    keyfile: str
    stapling_file: Optional[str] = None     # a DER OCSP response to staple to it


def _tls_certificate(item: Any) -> TLSCertificate:
    if isinstance(item, str):
        # NAME[,NAME...]=CERTFILE:KEYFILE (command line, environment)
        names, sep, files = item.partition("=")
        certfile, sep2, keyfile = files.rpartition(":")
        if not sep or not sep2 or not names.strip():
            raise _Invalid("NAME[,NAME...]=CERTFILE:KEYFILE or a [[tls]] table", item)
        item = {"server_names": [n.strip() for n in names.split(",")], "certfile": certfile, "keyfile": keyfile}
    if not isinstance(item, dict):
        raise _Invalid("NAME[,NAME...]=CERTFILE:KEYFILE or a [[tls]] table", item)
    unknown = set(item) - {"server_names", "certfile", "keyfile", "stapling_file"}
    if unknown:
        raise _Invalid(f"a [[tls]] table without the unknown key {sorted(unknown)[0]!r} "
                       f"(keys: server_names, certfile, keyfile, stapling_file)", item)
    missing = [key for key in ("server_names", "certfile", "keyfile") if key not in item]
    if missing:
        raise _Invalid(f"a [[tls]] table with {missing[0]!r}", item)
    names = item["server_names"]
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise _Invalid("[[tls]] server_names as a non-empty list of host names", names)
    for name in names:
        if not isinstance(name, str) or not _SERVER_NAME_RE.match(name):
            raise _Invalid("[[tls]] server_names as host names (or *.example.com)", name)
    stapling_file = item.get("stapling_file")
    return TLSCertificate(tuple(name.lower() for name in names), parse_absolute_file(item["certfile"]),
                          parse_absolute_file(item["keyfile"]),
                          parse_absolute_file(stapling_file) if stapling_file is not None else None)


def parse_tls(value: Any) -> Tuple[TLSCertificate, ...]:
    """Certificates chosen by SNI: repeated ``--tls`` entries, entries
    separated by ';' (environment) or ``[[tls]]`` tables."""
    if isinstance(value, str):
        items: List[Any] = [item.strip() for item in value.split(";") if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid("NAME[,NAME...]=CERTFILE:KEYFILE entries or [[tls]] tables", value)
    certificates = [_tls_certificate(item) for item in items]
    seen = set()
    for certificate in certificates:
        for name in certificate.server_names:
            if name in seen:
                raise _Invalid("each server name in one [[tls]] table", name)
            seen.add(name)
    return tuple(certificates)


def listeners(config: Any) -> Tuple[Tuple[str, bool], ...]:
    """(address, is_tls) of every listening address, in the order the
    arbiter binds them: `bind` then `bind_tls`. With a certificate and no
    `bind_tls`, every `bind` address is TLS; with `bind_tls`, `bind` is plain."""
    if config.certfile is None:
        return tuple((address, False) for address in config.bind)
    if not config.bind_tls:
        return tuple((address, True) for address in config.bind)
    return tuple((address, False) for address in config.bind) + tuple((address, True) for address in config.bind_tls)


# ---------------------------------------------------------------------------
# The table.


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting. ``default`` is written as a user would write it and parsed
    like any other value; ``None`` means unset and skips the parser."""

    name: str
    section: str
    flags: Tuple[str, ...]
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    kind: str = "value"  # "value", "list" (repeatable flag) or "flag" (--x/--no-x)
    in_file: bool = True  # may the TOML file set it?
    annotation: Any = Any  # the Python type of the parsed value, for Config

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def toml_key(self) -> str:
        return self.name

    @property
    def default_text(self) -> str:
        """The default as a user would write it, for help and docs."""
        if self.default is None:
            return "(none)"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, (list, tuple)):
            if not self.default:
                return "(none)"
            return ", ".join(str(item) for item in self.default)
        if self.default == "":
            return '""'
        return str(self.default)


SETTINGS: Tuple[Setting, ...] = (
    # server
    Setting("bind", "server", ("--bind", "-b"), parse_bind, ["127.0.0.1:8000"],
            "Address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH; repeat for several.",
            metavar="ADDRESS", kind="list", annotation=Tuple[str, ...]),
    Setting("chdir", "server", ("--chdir",), parse_directory, None,
            "Change to this directory before loading the application.",
            metavar="DIR", annotation=Optional[str]),
    Setting("root_path", "server", ("--root-path",), parse_root_path, "",
            "Mount point of the application, given to it as the WSGI SCRIPT_NAME.",
            metavar="PATH", annotation=str),
    Setting("threads", "server", ("--threads",), parse_threads, "auto",
            "Application threads per worker. 'auto': the application runs on the event loop while its calls "
            "are quick, and on up to auto_threads threads for auto_threads_hold seconds once two calls within "
            "that time took auto_threads_after or longer (it waits on something: a database, a service). 1: always on the "
            "event loop (an application that is not thread-safe). N > 1: always on N threads.",
            metavar="N|auto", annotation=Union[int, str]),
    Setting("auto_threads", "server", ("--auto-threads",), integer(2), 64,
            "With --threads auto: the most application threads a worker starts (started as needed).",
            metavar="N", annotation=int),
    Setting("auto_threads_after", "server", ("--auto-threads-after",), parse_duration, 0.005,
            "With --threads auto: two application calls on the event loop that took this long (within "
            "auto_threads_hold) move the worker's calls to its threads, so the next slow one does not hold the "
            "other connections.",
            metavar="SECONDS", annotation=float),
    Setting("auto_threads_hold", "server", ("--auto-threads-hold",), parse_duration, 30,
            "With --threads auto: how long the calls stay on threads after the last slow one.",
            metavar="SECONDS", annotation=float),
    Setting("interface", "server", ("--interface",), choice("auto", "wsgi", "asgi"), "auto",
            "How the application is called. 'auto': ASGI when it is a coroutine function or an object whose "
            "__call__ is one (an ASGI 2 double callable: a class whose instances' __call__ is one), else WSGI.",
            metavar="INTERFACE", annotation=str),
    Setting("lifespan", "server", ("--lifespan",), choice("auto", "on", "off"), "auto",
            "ASGI lifespan protocol (startup, shutdown). 'auto': run it, and run without it an application "
            "that raises before answering startup (Django's handler); 'on': that is an error; 'off': never.",
            metavar="MODE", annotation=str),
    Setting("asyncio_loop", "server", ("--asyncio-loop",), choice("auto", "asyncio", "uvloop"), "auto",
            "The event loop of an ASGI worker. 'auto': uvloop when it is installed (as uvicorn chooses), else "
            "asyncio's; 'asyncio'; 'uvloop' (it must be installed).",
            metavar="LOOP", annotation=str),
    Setting("lifespan_timeout", "server", ("--lifespan-timeout",), parse_duration, 60,
            "Time an ASGI application's lifespan startup, and its shutdown, may take.",
            metavar="SECONDS", annotation=float),
    Setting("ws_max_size", "server", ("--ws-max-size",), size(1), "16m",
            "Largest WebSocket message an ASGI application is given (after decompression); a larger one closes "
            "the connection with 1009.",
            metavar="SIZE", annotation=int),
    Setting("ws_ping_interval", "server", ("--ws-ping-interval",), parse_duration_or_zero, 20,
            "Seconds between the server's pings on an ASGI WebSocket; 0: no pings.",
            metavar="SECONDS", annotation=float),
    Setting("ws_ping_timeout", "server", ("--ws-ping-timeout",), parse_duration, 20,
            "Time a WebSocket client has to answer the server's ping (else the connection closes with 1011), "
            "and to answer the server's close frame.",
            metavar="SECONDS", annotation=float),
    Setting("ws_per_message_deflate", "server", ("--ws-per-message-deflate", "--no-ws-per-message-deflate"),
            parse_bool, True,
            "Agree to per-message-deflate (RFC 7692) on ASGI WebSockets when the client offers it.",
            kind="flag", annotation=bool),
    Setting("workers", "server", ("--workers", "-w"), parse_workers, 1,
            "Worker processes, or 'auto' for one per available CPU.",
            metavar="N", annotation=int),
    Setting("backlog", "server", ("--backlog",), integer(1), 2048,
            "Length of the queue of connections waiting to be accepted.",
            metavar="N", annotation=int),
    Setting("max_connections", "server", ("--max-connections",), integer(1), 10000,
            "Open client connections per worker; above it accepting pauses.",
            metavar="N", annotation=int),
    Setting("server_header", "server", ("--server-header", "--no-server-header"), parse_bool, True,
            "Send a Server header in responses.",
            kind="flag", annotation=bool),
    Setting("reuse_port", "server", ("--reuse-port", "--no-reuse-port"), parse_bool, False,
            "One SO_REUSEPORT socket per worker, the kernel hashes each connection to one of them even when that "
            "worker is busy; off (the default): workers share one socket and only a worker waiting for work "
            "accepts (EPOLLEXCLUSIVE, idle workers take turns).",
            kind="flag", annotation=bool),
    Setting("preload", "server", ("--preload", "--no-preload"), parse_bool, False,
            "Import the application in the arbiter before forking (shared memory; a reload then keeps the old code).",
            kind="flag", annotation=bool),
    Setting("reload", "server", ("--reload", "--no-reload"), parse_bool, False,
            "For development: watch the application's .py files (inotify) and restart the workers when one "
            "changes; an edit that does not import shows its error once and the running workers keep serving "
            "until the next edit that does.",
            kind="flag", annotation=bool),
    Setting("max_requests", "server", ("--max-requests",), integer(0), 0,
            "Recycle a worker (gracefully) after about this many requests; 0 never.",
            metavar="N", annotation=int),
    Setting("max_requests_jitter", "server", ("--max-requests-jitter",), integer(0), 0,
            "Random extra requests (0 to N) added to max_requests per worker, so workers do not recycle together.",
            metavar="N", annotation=int),
    Setting("pid", "server", ("--pid",), parse_file_path, None,
            "Write the arbiter's process id to this file.",
            metavar="FILE", annotation=Optional[str]),
    Setting("user", "server", ("--user",), parse_account, None,
            "When started as root: the user workers run as, after the sockets are bound.",
            metavar="USER", annotation=Optional[str]),
    Setting("group", "server", ("--group",), parse_account, None,
            "When started as root: the group workers run as.",
            metavar="GROUP", annotation=Optional[str]),
    Setting("admin", "server", ("--admin",), parse_admin_address, None,
            "Admin listener HOST:PORT serving /metrics, /status and /health; off when unset.",
            metavar="ADDRESS", annotation=Optional[str]),
    Setting("admin_allow_remote", "server", ("--admin-allow-remote", "--no-admin-allow-remote"), parse_bool, False,
            "Allow the admin listener on a non-loopback address.",
            kind="flag", annotation=bool),
    Setting("config", "server", ("--config", "-c"), parse_file_path, None,
            "TOML file whose top-level keys are setting names.",
            metavar="PATH", in_file=False, annotation=Optional[str]),
    # tls
    Setting("certfile", "tls", ("--certfile",), parse_absolute_file, None,
            "TLS certificate (PEM, chain after it): with it the bind addresses speak HTTPS (or only those of "
            "bind_tls, when given). Read again on reload (HUP).",
            metavar="PATH", annotation=Optional[str]),
    Setting("keyfile", "tls", ("--keyfile",), parse_absolute_file, None,
            "Private key of certfile (PEM); refused if others may read it or if it does not match.",
            metavar="PATH", annotation=Optional[str]),
    Setting("bind_tls", "tls", ("--bind-tls",), parse_bind_tls, [],
            "Addresses that speak HTTPS beside plain bind ones (HOST:PORT; repeat for several); when given, "
            "bind stays plain and defaults to none.",
            metavar="ADDRESS", kind="list", annotation=Tuple[str, ...]),
    Setting("ca_certs", "tls", ("--ca-certs",), parse_absolute_file, None,
            "CA certificates (PEM) that sign client certificates, for cert_reqs optional or required.",
            metavar="PATH", annotation=Optional[str]),
    Setting("cert_reqs", "tls", ("--cert-reqs",), choice("none", "optional", "required"), "none",
            "Client certificates (mTLS): none, optional (checked when given) or required (a client without one "
            "signed by ca_certs fails the handshake).",
            metavar="WHAT", annotation=str),
    Setting("ssl_min_version", "tls", ("--ssl-min-version",), parse_tls_version, "1.2",
            "Oldest TLS version accepted: 1.2 or 1.3.",
            metavar="VERSION", annotation=str),
    Setting("ciphers", "tls", ("--ciphers",), parse_cipher_list, DEFAULT_CIPHERS,
            "TLS 1.2 cipher suites (OpenSSL's list syntax); TLS 1.3 uses OpenSSL's own suites. The default is "
            "ECDHE with AES-GCM or ChaCha20-Poly1305.",
            metavar="LIST", annotation=str),
    Setting("ssl_ticket_rotate", "tls", ("--ssl-ticket-rotate",), parse_duration, 3600,
            "Session tickets: every worker shares the key, which the arbiter replaces this often; a ticket "
            "resumes for one rotation more (then a new one is issued), so at most twice this long.",
            metavar="SECONDS", annotation=float),
    Setting("ssl_stapling", "tls", ("--ssl-stapling", "--no-ssl-stapling"), parse_bool, False,
            "OCSP stapling: the arbiter fetches each certificate's status from the OCSP responder it names (or "
            "ssl_stapling_responder), checks it, and every worker staples it to the handshakes of clients that "
            "ask. The certificate file must hold its issuer after it (the full chain).",
            kind="flag", annotation=bool),
    Setting("ssl_stapling_file", "tls", ("--ssl-stapling-file",), parse_absolute_file, None,
            "A DER OCSP response to staple to certfile's handshakes instead of fetching one (nginx's "
            "ssl_stapling_file; [[tls]] tables take stapling_file). Checked, and read again on reload (HUP).",
            metavar="PATH", annotation=Optional[str]),
    Setting("ssl_stapling_responder", "tls", ("--ssl-stapling-responder",), parse_http_url, None,
            "The OCSP responder (http:// URL) asked for every certificate's status, instead of the one the "
            "certificate names.",
            metavar="URL", annotation=Optional[str]),
    Setting("ssl_stapling_timeout", "tls", ("--ssl-stapling-timeout",), parse_duration, 10,
            "How long the OCSP responder may take to accept the connection, and each wait for its answer; a "
            "fetcher still running after this per certificate plus 5 s (a name lookup that hangs) is killed.",
            metavar="SECONDS", annotation=float),
    Setting("ssl_stapling_refresh", "tls", ("--ssl-stapling-refresh",), parse_duration, 3600,
            "How often a stapled response is fetched again (sooner, at half the time left, when its nextUpdate "
            "is closer); a failed fetch is tried again after 300 s or this, if shorter, while the last good "
            "response stays stapled until its nextUpdate.",
            metavar="SECONDS", annotation=float),
    Setting("ssl_ktls", "tls", ("--ssl-ktls", "--no-ssl-ktls"), parse_bool, False,
            "Kernel TLS: after each handshake OpenSSL hands the keys to the kernel (its tls module), which "
            "then encrypts, so static files go out with sendfile as without TLS. Where the kernel or the "
            "cipher suite does not offer it, user space encrypts, as with this off (a warning at start when "
            "the kernel has no tls module).",
            kind="flag", annotation=bool),
    Setting("tls", "tls", ("--tls",), parse_tls, [],
            "Certificates chosen by the client's SNI: NAME[,NAME...]=CERTFILE:KEYFILE, repeat for several, or "
            "[[tls]] tables with server_names, certfile, keyfile (and stapling_file); other names get certfile.",
            metavar="ENTRY", kind="list", annotation=Tuple[TLSCertificate, ...]),
    Setting("https_redirect", "tls", ("--https-redirect", "--no-https-redirect"), parse_bool, False,
            "Plain listeners answer every request 301 to the same URL over https:// (the first TLS port).",
            kind="flag", annotation=bool),
    # static
    Setting("static", "static", ("--static",), parse_static, [],
            "Serve files: PREFIX=DIR maps requests under PREFIX to files under DIR; repeat for several (the longest "
            "prefix wins); [[static]] tables in the config file also take the per-location options below. With no "
            "application and no location, the current directory is served at /.",
            metavar="PREFIX=DIR", kind="list", annotation=Tuple[StaticLocation, ...]),
    Setting("index", "static", ("--index",), parse_index_name, "index.html",
            "File served for a request naming a directory (per location in [[static]]).",
            metavar="NAME", annotation=str),
    Setting("autoindex", "static", ("--autoindex", "--no-autoindex"), parse_bool, None,
            "List a directory that has no index file as an HTML page (per location). Unset: on when "
            "fastcore serve serves the current directory by itself (no application, no location), else off.",
            kind="flag", annotation=Optional[bool]),
    Setting("max_age", "static", ("--max-age",), parse_max_age, None,
            "Cache-Control max-age of static files, in seconds (10m, 12h, 365d also work); no Cache-Control "
            "header when unset (per location).",
            metavar="SECONDS", annotation=Optional[int]),
    Setting("immutable", "static", ("--immutable", "--no-immutable"), parse_bool, False,
            "Add 'immutable' to Cache-Control, for files whose names change with their content (per location).",
            kind="flag", annotation=bool),
    Setting("dotfiles", "static", ("--dotfiles", "--no-dotfiles"), parse_bool, False,
            "Serve files and directories whose name starts with '.' (.git, .env); off: they give 404 (per location).",
            kind="flag", annotation=bool),
    Setting("follow_symlinks", "static", ("--follow-symlinks", "--no-follow-symlinks"), parse_bool, False,
            "Follow symbolic links that lead outside the location's root; off: only links that stay inside it "
            "are followed (per location).",
            kind="flag", annotation=bool),
    Setting("precompressed", "static", ("--precompressed", "--no-precompressed"), parse_bool, True,
            "Serve FILE.br or FILE.gz, when it exists, to clients that accept it (per location).",
            kind="flag", annotation=bool),
    Setting("etag_inode", "static", ("--etag-inode", "--no-etag-inode"), parse_bool, True,
            "Put the file's inode in its ETag (with size and modification time); turn off when several machines "
            "serve the same files behind a balancer, so that they give a file the same tag.",
            kind="flag", annotation=bool),
    Setting("static_revalidate", "static", ("--static-revalidate",), parse_duration_or_zero, 1,
            "A cached file is checked against the disk (stat) at most this often; 0 checks on every request.",
            metavar="SECONDS", annotation=float),
    Setting("static_inline_max", "static", ("--static-inline-max",), size(0), "64k",
            "Files up to this size are cached in memory and sent with one writev; larger ones with sendfile.",
            metavar="SIZE", annotation=int),
    Setting("static_cache_entries", "static", ("--static-cache-entries",), integer(1), 10000,
            "Most files in a worker's file cache; the least recently used are evicted.",
            metavar="N", annotation=int),
    Setting("static_cache_bytes", "static", ("--static-cache-bytes",), size(0), "64m",
            "Most file content a worker's file cache keeps in memory.",
            metavar="SIZE", annotation=int),
    Setting("static_cache_fds", "static", ("--static-cache-fds",), integer(1), 1000,
            "Most open file descriptors a worker's file cache keeps (a response being sent holds its file's "
            "until done).",
            metavar="N", annotation=int),
    Setting("static_max_ranges", "static", ("--static-max-ranges",), integer(1, 64), 16,
            "Most ranges answered in one Range request (up to 64); a request with more, or whose ranges add up "
            "to more than the file, gets the whole file (200).",
            metavar="N", annotation=int),
    Setting("autoindex_max_entries", "static", ("--autoindex-max-entries",), integer(1), 10000,
            "Most entries in a directory listing; the rest of a larger directory is left out, and the page says so.",
            metavar="N", annotation=int),
    Setting("static_allow_app", "static", ("--static-allow-app", "--no-static-allow-app"), parse_bool, False,
            "Start even when a static root holds the application's own module or package (its source would be "
            "served as files); without it that is refused at start-up.",
            kind="flag", annotation=bool),
    # proxy
    Setting("proxy", "proxy", ("--proxy",), parse_proxy, [],
            "Proxy requests: PREFIX=ADDR[,ADDR...] sends requests under PREFIX to these servers (HOST:PORT, "
            "[IPV6]:PORT, unix:PATH or NAME:PORT, after https:// for servers that speak TLS); repeat for several (the longest prefix wins across static, "
            "proxy and the application); [[proxy]] tables in the config file also take name, servers as tables "
            "(address, weight, backup, max_conns) and the per-location options below without their proxy_ "
            "prefix. In the environment, entries are separated by spaces.",
            metavar="PREFIX=ADDR,...", kind="list", annotation=Tuple[ProxyLocation, ...]),
    Setting("proxy_balance", "proxy", ("--proxy-balance",), _PROXY_OPTIONS["balance"], "round_robin",
            "How a proxy location picks a server: round_robin (smooth weighted), least_conn (weighted), "
            "random_two (the less busy of two at random) or hash (consistent, on proxy_hash_key).",
            metavar="ALGORITHM", annotation=str),
    Setting("proxy_hash_key", "proxy", ("--proxy-hash-key",), parse_hash_key, None,
            "What balance hash keys on: client_ip, uri or header:NAME.",
            metavar="KEY", annotation=Optional[str]),
    Setting("proxy_strip_prefix", "proxy", ("--proxy-strip-prefix", "--no-proxy-strip-prefix"), parse_bool, False,
            "Remove the location's prefix from the path sent to the server (/api/x goes as /x).",
            kind="flag", annotation=bool),
    Setting("proxy_host", "proxy", ("--proxy-host",), parse_host_mode, "pass",
            "The Host sent to the server: pass (the client's), upstream (the server's address) or a fixed name.",
            metavar="pass|upstream|NAME", annotation=str),
    Setting("proxy_connect_timeout", "proxy", ("--proxy-connect-timeout",), parse_duration, 5,
            "Time allowed to connect to a server; over it the server counts as failed and the next is tried.",
            metavar="SECONDS", annotation=float),
    Setting("proxy_read_timeout", "proxy", ("--proxy-read-timeout",), parse_duration, 60,
            "Time allowed between two reads from a server once the request is sent; over it: 504 (or the "
            "connection cut if the response had begun).",
            metavar="SECONDS", annotation=float),
    Setting("proxy_send_timeout", "proxy", ("--proxy-send-timeout",), parse_duration, 60,
            "Time allowed for a server to accept more of a request.",
            metavar="SECONDS", annotation=float),
    Setting("proxy_retries", "proxy", ("--proxy-retries",), _PROXY_OPTIONS["retries"], 2,
            "Extra tries on other servers after a failure before any response byte (connect errors always; "
            "resets and timeouts for idempotent methods or before any body byte was sent).",
            metavar="N", annotation=int),
    Setting("proxy_keepalive", "proxy", ("--proxy-keepalive",), _PROXY_OPTIONS["keepalive"], 256,
            "Idle connections kept open per server per worker (0: a new connection per request). Below the "
            "requests a worker has in flight at once, connections churn (each one over it is closed, and "
            "opened again for the next request).",
            metavar="N", annotation=int),
    Setting("proxy_keepalive_requests", "proxy", ("--proxy-keepalive-requests",), _positive_int, 10000,
            "Requests one upstream connection carries before it is closed.",
            metavar="N", annotation=int),
    Setting("proxy_keepalive_idle", "proxy", ("--proxy-keepalive-idle",), parse_duration, 60,
            "How long an idle upstream connection is kept.",
            metavar="SECONDS", annotation=float),
    Setting("proxy_max_fails", "proxy", ("--proxy-max-fails",), _PROXY_OPTIONS["max_fails"], 1,
            "Failures (connect error, timeout, invalid response) within proxy_fail_timeout that mark a server "
            "down for proxy_fail_timeout; 0 never.",
            metavar="N", annotation=int),
    Setting("proxy_fail_timeout", "proxy", ("--proxy-fail-timeout",), parse_duration, 10,
            "The window in which proxy_max_fails counts, and how long a server then stays down.",
            metavar="SECONDS", annotation=float),
    Setting("proxy_slow_start", "proxy", ("--proxy-slow-start",), parse_duration_or_zero, 0,
            "A server back from down gets its weight ramped up over this long; 0: at once.",
            metavar="SECONDS", annotation=float),
    Setting("proxy_panic", "proxy", ("--proxy-panic",), _PROXY_OPTIONS["panic"], "all",
            "When fewer than half the servers of a pool are healthy: all (send to every server, healthy or "
            "not, as Envoy's panic mode) or refuse (503).",
            metavar="all|refuse", annotation=str),
    Setting("proxy_health_path", "proxy", ("--proxy-health-path",), parse_health_path, None,
            "Active health checks: the path each worker GETs from every server every proxy_health_interval; "
            "off when unset.",
            metavar="PATH", annotation=Optional[str]),
    Setting("proxy_health_interval", "proxy", ("--proxy-health-interval",), parse_duration, 5,
            "Time between two health checks of a server (with 15% jitter).",
            metavar="SECONDS", annotation=float),
    Setting("proxy_health_timeout", "proxy", ("--proxy-health-timeout",), parse_duration, 2,
            "Time a health check may take.",
            metavar="SECONDS", annotation=float),
    Setting("proxy_health_status", "proxy", ("--proxy-health-status",), parse_health_status, "200-399",
            "Statuses that pass a health check.",
            metavar="CODES", annotation=str),
    Setting("proxy_health_rise", "proxy", ("--proxy-health-rise",), _positive_int, 2,
            "Passed checks in a row that bring a failing server back.",
            metavar="N", annotation=int),
    Setting("proxy_health_fall", "proxy", ("--proxy-health-fall",), _positive_int, 3,
            "Failed checks in a row that take a server out.",
            metavar="N", annotation=int),
    Setting("proxy_resolve_interval", "proxy", ("--proxy-resolve-interval",), parse_duration, 30,
            "How often a server given by DNS name is resolved again (sooner when its TTL is shorter).",
            metavar="SECONDS", annotation=float),
    Setting("proxy_websocket", "proxy", ("--proxy-websocket", "--no-proxy-websocket"), parse_bool, True,
            "Forward Upgrade requests (WebSocket): after a 101 both connections become a byte tunnel.",
            kind="flag", annotation=bool),
    Setting("proxy_forwarded", "proxy", ("--proxy-forwarded", "--no-proxy-forwarded"), parse_bool, False,
            "Also send the RFC 7239 Forwarded field (for, host, proto) upstream, appended to a trusted "
            "client's own; an untrusted client's Forwarded is dropped either way.",
            kind="flag", annotation=bool),
    Setting("proxy_via", "proxy", ("--proxy-via", "--no-proxy-via"), parse_bool, False,
            "Add 'Via: 1.1 fastcore' to requests going upstream and responses going to clients (RFC 9110 "
            "7.6.3; off by default, as in nginx and HAProxy).",
            kind="flag", annotation=bool),
    Setting("proxy_tls_verify", "proxy", ("--proxy-tls-verify", "--no-proxy-tls-verify"), parse_bool, True,
            "Check the certificate of an https:// server: its chain must reach a CA of proxy_tls_ca_certs and "
            "it must carry proxy_tls_server_name; a server that fails is a connect failure (502 when all do). "
            "Off: any certificate is taken (encryption without authentication).",
            kind="flag", annotation=bool),
    Setting("proxy_tls_ca_certs", "proxy", ("--proxy-tls-ca-certs",), parse_absolute_file, None,
            "The CA certificates (PEM) trusted for https:// servers; default: the system's CA store.",
            metavar="PATH", annotation=Optional[str]),
    Setting("proxy_tls_server_name", "proxy", ("--proxy-tls-server-name",), parse_tls_server_name, None,
            "The name sent as SNI to an https:// server and checked in its certificate; default: the host of "
            "its address (the DNS name it was resolved from, or the IP address itself, checked against the "
            "certificate's IP addresses, with no SNI).",
            metavar="NAME", annotation=Optional[str]),
    Setting("proxy_tls_certfile", "proxy", ("--proxy-tls-certfile",), parse_absolute_file, None,
            "A client certificate (PEM, chain after it) shown to https:// servers that ask for one (mTLS).",
            metavar="PATH", annotation=Optional[str]),
    Setting("proxy_tls_keyfile", "proxy", ("--proxy-tls-keyfile",), parse_absolute_file, None,
            "The private key of proxy_tls_certfile (PEM).",
            metavar="PATH", annotation=Optional[str]),
    Setting("forwarded_allow_ips", "proxy", ("--forwarded-allow-ips",), parse_cidrs, "127.0.0.1/8,::1",
            "Peers trusted as proxies: their real_ip_header names the client (REMOTE_ADDR, the access log, the "
            "limits), their X-Forwarded-Proto sets wsgi.url_scheme, and a proxy location passes their X-Forwarded-* "
            "and X-Real-IP on (appended to); from anyone else they are replaced. '*' trusts every peer.",
            metavar="CIDRS", annotation=Tuple[str, ...]),
    Setting("resolver", "proxy", ("--resolver",), parse_resolver, None,
            "HOST:PORT of the DNS server that resolves servers given by name; the system's when unset.",
            metavar="HOST:PORT", annotation=Optional[str]),
    # limits
    Setting("max_request_line", "limits", ("--max-request-line",), size(1), 8190,
            "Longest request line (method, target, version); longer gets 414.",
            metavar="SIZE", annotation=int),
    Setting("max_header_bytes", "limits", ("--max-header-bytes",), size(1), "32k",
            "Largest request head (request line and headers); larger gets 431.",
            metavar="SIZE", annotation=int),
    Setting("max_headers", "limits", ("--max-headers",), integer(1), 100,
            "Most header fields in a request; more gets 431.",
            metavar="N", annotation=int),
    Setting("max_body", "limits", ("--max-body",), size(0), "16m",
            "Largest request body; larger gets 413.",
            metavar="SIZE", annotation=int),
    Setting("max_chunk_line", "limits", ("--max-chunk-line",), size(1), 4096,
            "Longest chunk-size line (with extensions) in a chunked body; longer gets 400.",
            metavar="SIZE", annotation=int),
    Setting("body_buffer_size", "limits", ("--body-buffer-size",), size(0), "1m",
            "Request bodies larger than this are spooled to a temporary file.",
            metavar="SIZE", annotation=int),
    Setting("write_buffer_high", "limits", ("--write-buffer-high",), size(1), "256k",
            "Queued output per connection above which reading from it and producing the response pause.",
            metavar="SIZE", annotation=int),
    Setting("limit_rate", "limits", ("--limit-rate",), size(0), 0,
            "Bandwidth of each response, in bytes a second, once limit_rate_after bytes of it have gone; 0 for "
            "none. Applies to the application's responses; a [[static]] or [[proxy]] table may set its own.",
            metavar="SIZE", annotation=int),
    Setting("limit_rate_after", "limits", ("--limit-rate-after",), size(0), 0,
            "Bytes of each response (head included) sent at full speed before limit_rate applies.",
            metavar="SIZE", annotation=int),
    Setting("max_pending", "limits", ("--max-pending",), integer(1), 1024,
            "Requests a worker lets wait for a free application thread; more are answered 503 with "
            "Retry-After at once, and /health reports the worker overloaded while its queue is full.",
            metavar="N", annotation=int),
    Setting("min_body_rate", "limits", ("--min-body-rate",), size(0), 500,
            "Slowest request body accepted, in bytes a second on average once min_body_rate_grace has passed; "
            "slower gets 408. 0 for none (body_timeout still bounds a stall).",
            metavar="SIZE", annotation=int),
    Setting("min_body_rate_grace", "limits", ("--min-body-rate-grace",), parse_duration, 20,
            "Time a request body may take before min_body_rate applies (a body of N bytes may take this plus "
            "N / min_body_rate seconds).",
            metavar="SECONDS", annotation=float),
    Setting("read_buffer_size", "limits", ("--read-buffer-size",), size(512), "16k",
            "Bytes read from a connection per read() once a request head is parsed (bodies); a head being "
            "received starts in a 2 KiB buffer that doubles only as the head needs it.",
            metavar="SIZE", annotation=int),
    # protection: who the client is, and the per-client limits (README "Traffic protection")
    Setting("real_ip_header", "protection", ("--real-ip-header",), parse_real_ip_header, "X-Forwarded-For",
            "The field a trusted peer (forwarded_allow_ips) names the client in: X-Forwarded-For, X-Real-IP, "
            "CF-Connecting-IP or Forwarded (RFC 7239 for=); the client is its rightmost untrusted address.",
            metavar="FIELD", annotation=str),
    Setting("limit_req_rate", "protection", ("--limit-req-rate",), parse_limit_rate, 0,
            "Requests a second per client (0: no limit); above rate and burst, 429 with Retry-After. Also a key "
            "of [[static]] and [[proxy]] tables.",
            metavar="N", annotation=float),
    Setting("limit_req_burst", "protection", ("--limit-req-burst",), _LIMIT_OPTIONS["limit_req_burst"], 0,
            "Requests a client may send above limit_req_rate before 429; they are delayed to the rate unless "
            "limit_req_nodelay.",
            metavar="N", annotation=int),
    Setting("limit_req_nodelay", "protection", ("--limit-req-nodelay", "--no-limit-req-nodelay"), parse_bool, False,
            "Serve requests within the burst at once instead of delaying them to the rate.",
            kind="flag", annotation=bool),
    Setting("limit_conn", "protection", ("--limit-conn",), _LIMIT_OPTIONS["limit_conn"], 0,
            "Requests in progress at once per client (0: no limit); one more gets 503.",
            metavar="N", annotation=int),
    Setting("allow", "protection", ("--allow",), parse_networks, [],
            "Only these clients (CIDR; repeat or comma-separate) are served; any entry refuses everyone else "
            "with 403.",
            metavar="CIDR", kind="list", annotation=Tuple[str, ...]),
    Setting("deny", "protection", ("--deny",), parse_networks, [],
            "Clients refused with 403 (CIDR; repeat or comma-separate; 'all' for everyone); deny wins over allow.",
            metavar="CIDR", kind="list", annotation=Tuple[str, ...]),
    Setting("limit_dry_run", "protection", ("--limit-dry-run", "--no-limit-dry-run"), parse_bool, False,
            "Refuse nothing: log and count (fastcore_limit_refused_total{dry_run=\"true\"}) what the limits "
            "would refuse.",
            kind="flag", annotation=bool),
    Setting("limit_table_entries", "protection", ("--limit-table-entries",), integer(64, 100_000_000), 100000,
            "Clients the shared limits table holds (rounded up; 36.6 bytes each); when a bucket is full the client "
            "seen least recently is forgotten.",
            metavar="N", annotation=int),
    # timeouts
    Setting("header_timeout", "timeouts", ("--header-timeout",), parse_duration, 20,
            "Time allowed to receive a request head; slower gets 408.",
            metavar="SECONDS", annotation=float),
    Setting("body_timeout", "timeouts", ("--body-timeout",), parse_duration, 60,
            "Time allowed between two reads of a request body; slower gets 408.",
            metavar="SECONDS", annotation=float),
    Setting("keepalive_timeout", "timeouts", ("--keepalive-timeout",), parse_duration, 60,
            "Idle time allowed between two requests on a connection.",
            metavar="SECONDS", annotation=float),
    Setting("send_timeout", "timeouts", ("--send-timeout",), parse_duration, 60,
            "Time allowed for a client to accept more of a response before it is dropped.",
            metavar="SECONDS", annotation=float),
    Setting("linger_timeout", "timeouts", ("--linger-timeout",), parse_duration, 2,
            "After a last response, time spent reading and discarding what the client still sends before closing.",
            metavar="SECONDS", annotation=float),
    Setting("tunnel_idle_timeout", "timeouts", ("--tunnel-idle-timeout",), parse_duration, 300,
            "A proxied WebSocket (or any upgraded) tunnel with no byte either way for this long is closed.",
            metavar="SECONDS", annotation=float),
    Setting("accept_backoff", "timeouts", ("--accept-backoff",), parse_duration, 0.1,
            "A worker out of file descriptors answers the clients waiting to be accepted 503 (Retry-After) and "
            "stops accepting for this long; the other workers take new connections meanwhile.",
            metavar="SECONDS", annotation=float),
    Setting("timeout", "timeouts", ("--timeout", "-t"), parse_duration, 30,
            "A worker whose event loop has not turned for this long is stuck: its stack is dumped, it is killed "
            "and replaced.",
            metavar="SECONDS", annotation=float),
    Setting("graceful_idle_timeout", "timeouts", ("--graceful-idle-timeout",), parse_duration, 1,
            "On stop or reload, how long an idle keep-alive connection may still bring a request (answered "
            "with Connection: close) before it is closed.",
            metavar="SECONDS", annotation=float),
    Setting("graceful_timeout", "timeouts", ("--graceful-timeout",), parse_duration, 30,
            "Time given to in-flight requests on stop or reload before workers are killed.",
            metavar="SECONDS", annotation=float),
    # wsgi
    Setting("middleware", "wsgi", ("--middleware",), parse_middleware, [],
            "WSGI middleware around the application, first listed outermost: package.module:Factory, called "
            "with the application; options as Factory(option=value) or, in the config file, an inline table "
            "{factory = ..., option = value}. Shipped: fastcore.middleware:RequestID, :Compress, :ProxyFix.",
            metavar="FACTORY", kind="list", annotation=Tuple[MiddlewareEntry, ...]),
    # logging
    Setting("log_level", "logging", ("--log-level",),
            choice("debug", "info", "warning", "error", "critical"), "info",
            "Lowest level written to the error log: debug, info, warning, error or critical.",
            metavar="LEVEL", annotation=str),
    Setting("error_log", "logging", ("--error-log",), parse_log_target, "-",
            "Error log: '-' for stderr, or a file path.",
            metavar="PATH", annotation=str),
    Setting("access_log", "logging", ("--access-log",), parse_log_target, None,
            "Access log: '-' for stdout, or a file path; off when unset.",
            metavar="PATH", annotation=Optional[str]),
    Setting("refusal_log_rate", "logging", ("--refusal-log-rate",), integer(0), 10,
            "Error-log lines per second per worker that give the reason of a request the server refused "
            "itself (400, 408, 413, 429, ...); beyond it one line counts the rest each second (a flood of "
            "bad requests must not become a flood of writes). The access log still has each. 0: none.",
            metavar="N", annotation=int),
    Setting("access_log_format", "logging", ("--access-log-format",), choice("combined", "combined_id", "json"), "combined",
            "Access log line format: combined, combined_id (combined with the request id as a last quoted field) "
            "or json.",
            metavar="FORMAT", annotation=str),
)

SETTINGS_BY_NAME: Dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def _check_table() -> None:
    """The table's own invariants; a broken table fails at import, not in production."""
    seen_flags = set()
    for setting in SETTINGS:
        assert re.match(r"[a-z][a-z0-9_]*\Z", setting.name), setting.name
        assert setting.section in SECTIONS, setting
        assert setting.kind in ("value", "list", "flag"), setting
        assert "\n" not in setting.help and setting.help, setting
        for flag in setting.flags:
            assert flag not in seen_flags, flag
            seen_flags.add(flag)


_check_table()

Config = dataclasses.make_dataclass(
    "Config",
    [(setting.name, setting.annotation) for setting in SETTINGS],
    frozen=True,
    namespace={
        "__doc__": "The resolved configuration: one read-only attribute per entry of SETTINGS.",
        "__module__": __name__,
    },
)


# ---------------------------------------------------------------------------
# Sources.


def read_config_file(path: str, origin: str = "--config") -> Dict[str, Any]:
    """The settings in a TOML file, keys checked; values are checked later.
    ``origin`` names where the path came from, for the error message."""
    try:
        import tomllib  # type: ignore[import-not-found]
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[import-not-found,no-redef]
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(
            f"setting config ({origin}): cannot read {path!r}: {error.strerror or error}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: invalid TOML: {error}") from None
    for key, value in data.items():
        setting = SETTINGS_BY_NAME.get(key)
        if setting is None:
            hint = ""
            if isinstance(value, dict):
                hint = " (settings are top-level keys, not tables)"
            else:
                close = difflib.get_close_matches(key, [s.name for s in SETTINGS if s.in_file], n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            raise ConfigError(f"config file {path}: unknown setting {key!r}{hint}")
        if not setting.in_file:
            raise ConfigError(f"config file {path}: setting {key!r} is not allowed in a config file")
    return data


def _resolve(setting: Setting, raw: Any, origin: str) -> Any:
    if raw is None:
        return None
    try:
        return setting.parse(raw)
    except _Invalid as invalid:
        raise ConfigError(
            f"setting {setting.name} ({origin}): expected {invalid.expected}, got {_show(invalid.got)}"
        ) from None


def _source(origin: str, config_path: Optional[str]) -> Tuple[str, str]:
    """(kind, detail) of an origin as build_config writes it in its errors."""
    if origin == "default":
        return "default", ""
    if origin.startswith(ENV_PREFIX):
        return "environment", origin
    if origin.startswith("key "):
        return "file", str(config_path)
    return "flag", origin


def build_config(cli: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None,
                 sources: Optional[Dict[str, Tuple[str, str]]] = None) -> "Config":
    """Resolve every setting: ``cli`` (setting name → value given on the
    command line) > ``environ`` (default ``os.environ``) > config file > default.
    ``sources``, when given, is filled with where each value came from:
    name → (kind, detail), kind one of flag, environment, file, default.

    Raises ``ConfigError``."""
    cli = dict(cli or {})
    environ = os.environ if environ is None else environ
    unknown = set(cli) - set(SETTINGS_BY_NAME)
    if unknown:
        raise TypeError(f"not settings: {sorted(unknown)}")

    origins: Dict[str, Tuple[Any, str]] = {}
    for setting in SETTINGS:
        if setting.name in cli:
            origins[setting.name] = (cli[setting.name], setting.flags[0])
        elif setting.env in environ:
            origins[setting.name] = (environ[setting.env], setting.env)

    config_setting = SETTINGS_BY_NAME["config"]
    raw_path, path_origin = origins.get("config", (None, "default"))
    config_path = _resolve(config_setting, raw_path, path_origin)
    if config_path is not None:
        for key, value in read_config_file(config_path, path_origin).items():
            origins.setdefault(key, (value, f"key {key} in {config_path}"))

    values = {}
    for setting in SETTINGS:
        raw, origin = origins.get(setting.name, (setting.default, "default"))
        values[setting.name] = _resolve(setting, raw, origin)
        if sources is not None:
            sources[setting.name] = _source(origin, config_path)
    # a location option left unset takes the top-level setting of its name
    # (autoindex unset is off for a configured location: only the current
    # directory served by itself lists by default, see fastcore.worker)
    values["static"] = tuple(
        dataclasses.replace(location, **{key: (False if key == "autoindex" and values[key] is None else values[key])
                                         for key in _LOCATION_OPTIONS if getattr(location, key) is None})
        for location in values["static"])
    values["proxy"] = tuple(
        dataclasses.replace(location, **{key: values[f"proxy_{key}"] for key in _PROXY_OPTIONS
                                         if getattr(location, key) is None},
                            **{key: values[key] for key in _RATE_OPTIONS if getattr(location, key) is None})
        for location in values["proxy"])
    # and the limits, the top-level setting of the same name
    values["static"] = tuple(
        dataclasses.replace(location, **{key: values[key] for key in _LIMIT_OPTIONS
                                         if getattr(location, key) is None})
        for location in values["static"])
    values["proxy"] = tuple(
        dataclasses.replace(location, **{key: values[key] for key in _LIMIT_OPTIONS
                                         if getattr(location, key) is None})
        for location in values["proxy"])
    for location in values["proxy"]:
        if location.balance == "hash" and location.hash_key is None:
            raise ConfigError(f"setting proxy ({location.prefix}): balance hash needs hash_key "
                              f"(client_ip, uri or header:NAME)")
    _check_tls(values, origins)
    _check_proxy_tls(values)
    if values["reload"] and values["preload"]:
        raise ConfigError("setting reload (--reload): true cannot go with preload (--preload): the arbiter would "
                          "keep the old code, and --reload needs the workers to import the changed code")
    return Config(**values)


def _check_proxy_tls(values: Dict[str, Any]) -> None:
    """A client certificate to upstreams comes with its key, and the reverse."""
    for location in values["proxy"]:
        if (location.tls_certfile is None) != (location.tls_keyfile is None):
            given, missing = ("tls_certfile", "tls_keyfile") if location.tls_keyfile is None else \
                ("tls_keyfile", "tls_certfile")
            raise ConfigError(f"setting proxy_{given} ([[proxy]] {location.prefix}): needs proxy_{missing} too")


def _check_tls(values: Dict[str, Any], origins: Mapping[str, Tuple[Any, str]]) -> None:
    """The TLS settings that only make sense together."""
    has_certificate = values["certfile"] is not None
    if values["keyfile"] is not None and not has_certificate:
        raise ConfigError("setting keyfile: given without certfile (the certificate it is the key of)")
    if has_certificate and values["keyfile"] is None:
        raise ConfigError(f"setting certfile ({values['certfile']}): needs keyfile, its private key")
    if not has_certificate:
        for name in ("bind_tls", "tls", "https_redirect", "ca_certs", "ssl_stapling", "ssl_stapling_file",
                     "ssl_stapling_responder", "ssl_ktls"):
            if values[name] and name in origins:
                raise ConfigError(f"setting {name}: needs certfile and keyfile (the default certificate)")
        if values["cert_reqs"] != "none":
            raise ConfigError("setting cert_reqs: needs certfile and keyfile (client certificates are asked "
                              "for in a TLS handshake)")
        return
    if values["cert_reqs"] != "none" and values["ca_certs"] is None:
        raise ConfigError(f"setting cert_reqs ({values['cert_reqs']}): needs ca_certs, the CAs that sign "
                          f"client certificates")
    if values["bind_tls"]:
        if "bind" not in origins:
            values["bind"] = ()  # --bind-tls alone: only HTTPS, not also the default plain address
        both = {address for address in set(values["bind"]) & set(values["bind_tls"])
                if not address.endswith(":0")}  # port 0: two different ports the kernel picks
        if both:
            raise ConfigError(f"setting bind_tls: {sorted(both)[0]} is also in bind (an address is plain or TLS)")
    if values["https_redirect"] and not (values["bind_tls"] and values["bind"]):
        raise ConfigError("setting https_redirect: needs plain bind addresses beside bind_tls ones (the plain "
                          "ones redirect to the TLS one)")


# ---------------------------------------------------------------------------
# Command line.


class _BooleanFlag(argparse.Action):
    """``--x`` sets True, ``--no-x`` sets False; one help line for both."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per setting, grouped by section. An option left out is
    absent from the namespace (``SUPPRESS``), so that the environment, the
    file and the default can still apply."""
    groups = {section: parser.add_argument_group(f"{section} settings") for section in SECTIONS}
    for setting in SETTINGS:
        group = groups[setting.section]
        help_text = f"{setting.help} [{setting.env}; default: {setting.default_text}]".replace("%", "%%")
        if setting.kind == "flag":
            group.add_argument(*setting.flags, dest=setting.name, action=_BooleanFlag,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(*setting.flags, dest=setting.name, metavar=setting.metavar,
                               action="append" if setting.kind == "list" else "store",
                               default=argparse.SUPPRESS, help=help_text)


def settings_from_namespace(namespace: argparse.Namespace) -> Dict[str, Any]:
    """The settings given on the command line, by name."""
    return {name: value for name, value in vars(namespace).items() if name in SETTINGS_BY_NAME}


def load_config(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> "Config":
    """Parse setting options only (for embedding and tests) and resolve them.

    Usage errors exit through argparse; bad values raise ``ConfigError``."""
    parser = argparse.ArgumentParser(prog="fastcore", allow_abbrev=False)
    add_setting_arguments(parser)
    namespace = parser.parse_args(list(argv) if argv is not None else None)
    return build_config(settings_from_namespace(namespace), environ)


# ---------------------------------------------------------------------------
# Documentation.


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_markdown() -> str:
    """The README table of settings, by section; ends with a newline."""
    lines = [
        "| setting | CLI flag | env var | default | description |",
        "|---|---|---|---|---|",
    ]
    for section in SECTIONS:
        members = [setting for setting in SETTINGS if setting.section == section]
        if not members:
            continue
        lines.append(f"| **{section}** | | | | |")
        for setting in members:
            flags = ", ".join(f"`{flag}`" for flag in setting.flags)
            default = "(none)" if setting.default_text == "(none)" else f"`{setting.default_text}`"
            lines.append(
                f"| `{setting.name}` | {_cell(flags)} | `{setting.env}` | {_cell(default)} | {_cell(setting.help)} |"
            )
    return "\n".join(lines) + "\n"


def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastcore.config", allow_abbrev=False)
    parser.add_argument("--markdown", action="store_true", help="print the README table of settings")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(settings_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
