"""``fastcore middlewares``: the whole onion a request passes, in execution
order, one line per layer, from the socket to the view.

No Python server lists its own chain; Rails' ``rails middleware`` (``use
X`` per layer, then ``run App.routes``) is the model. The layers, outermost
first:

1. ``core``: the compiled core's stages with their settings, read from the
   configuration as resolved (command line, environment, file, defaults).
   Settings are found by name and section in ``config.SETTINGS``, so limits
   added later (``limit_*``, real-IP settings) are listed with no change
   here;
2. ``route``: the router's locations, longest prefix first (the order in
   which they are matched), and the application's share of the paths;
3. ``use``: each configured WSGI middleware (the ``middleware`` setting)
   with its dotted path and the options it is called with;
4. what the framework runs inside the application: wrappers found by
   following ``.app``/``.application``/``.wsgi_app``, Django's
   ``MIDDLEWARE``, Flask's ``wsgi_app`` wrappers and ``before_request``
   hooks, Starlette's (and FastAPI's) stack as it really runs;
5. ``run``: the application, or its router.

Starlette builds its stack with the first entry of ``user_middleware``
outermost, and ``add_middleware`` inserts at the front, so the middleware
added last runs first; the listing shows the built stack itself
(``build_middleware_stack()``, walked through each layer's ``.app``), so it
is the order requests meet.
"""
import inspect
import json
import sys
from typing import Any, Dict, List, NamedTuple, Optional

from fastcore.config import SETTINGS_BY_NAME

__all__ = ["Layer", "application_layers", "core_layers", "print_layers", "route_layers"]


class Layer(NamedTuple):
    """One line: the part of the server it belongs to, what it is, and its
    settings or options."""

    kind: str                    # core, route, use, wsgi, django, flask, starlette, fastapi, run
    name: str
    settings: Dict[str, Any]
    note: str = ""

    def as_text(self) -> str:
        parts = [f"{self.kind:<10}{self.name}"]
        if self.settings:
            parts.append(" ".join(f"{key}={_text(key, value)}" for key, value in self.settings.items()))
        if self.note:
            parts.append(f"({self.note})")
        return "  ".join(parts)

    def as_json(self) -> Dict[str, Any]:
        record = {"kind": self.kind, "name": self.name, "settings": {key: _plain(value) for key, value in
                                                                     self.settings.items()}}
        if self.note:
            record["note"] = self.note
        return record


# ---------------------------------------------------------------------------
# values


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def _size_text(number: int) -> str:
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if number and number % (1 << shift) == 0:
            return f"{number >> shift}{unit}"
    return str(number)


def _text(name: str, value: Any) -> str:
    """A value as a user would write it: 32k, 20s, a,b."""
    setting = SETTINGS_BY_NAME.get(name)
    parser = getattr(setting.parse, "__qualname__", "") if setting is not None else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or "none"
    if isinstance(value, int) and (parser.startswith("size.") or parser == "parse_size"):
        return _size_text(value)
    if isinstance(value, float) and parser.startswith("parse_duration"):
        return f"{value:g}s"
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    return repr(value) if not isinstance(value, (int, float)) else str(value)


# ---------------------------------------------------------------------------
# the core's stages

# The settings each stage of the core applies, in the order a request meets
# them. A setting of section "limits" or "timeouts" named in no stage (one
# added by a later change) joins the stage its name points to, else "limits".
_STAGES = (
    ("listen", ("bind", "workers", "backlog", "reuse_port", "max_connections")),
    ("head", ("header_timeout", "max_request_line", "max_header_bytes", "max_headers")),
    ("real-ip", ()),
    ("limits", ()),
    ("body", ("max_body", "max_chunk_line", "body_buffer_size", "read_buffer_size", "body_timeout")),
    ("response", ("write_buffer_high", "send_timeout", "keepalive_timeout", "linger_timeout", "server_header")),
)
# settings of those sections that are not on a request's way (supervision,
# shutdown, the proxy's tunnels)
_NOT_ON_THE_WAY = frozenset(("timeout", "graceful_timeout", "graceful_idle_timeout", "accept_backoff",
                             "tunnel_idle_timeout"))


def _stage_of(name: str) -> Optional[str]:
    if "real_ip" in name or "forwarded" in name:
        return "real-ip"
    if name.startswith(("limit_", "rate_")) or "_rate" in name or name.startswith("max_conn_per"):
        return "limits"
    return None


def core_layers(config) -> List[Layer]:
    """One layer per stage of the compiled core, with the settings it applies."""
    from fastcore.config import SETTINGS

    placed = {name for _, names in _STAGES for name in names}
    extra: Dict[str, List[str]] = {}
    for setting in SETTINGS:
        if setting.name in placed or setting.name in _NOT_ON_THE_WAY:
            continue
        stage = _stage_of(setting.name)
        if stage is None and setting.section in ("limits", "timeouts"):
            stage = "limits"
        if stage is not None:
            extra.setdefault(stage, []).append(setting.name)
    layers = []
    for stage, names in _STAGES:
        settings = {name: getattr(config, name, None) for name in (*names, *extra.get(stage, ()))
                    if hasattr(config, name)}
        note = ""
        if stage == "real-ip":
            note = "REMOTE_ADDR is the peer; X-Forwarded-* and X-Request-ID trusted from these peers only"
        elif stage == "limits" and not settings:
            note = "no per-client limit configured"
        layers.append(Layer("core", stage, settings, note))
    return layers


# ---------------------------------------------------------------------------
# the router


def route_layers(config, has_app: bool) -> List[Layer]:
    """The locations, longest prefix first, then the application's share."""
    from fastcore.worker import static_locations

    routes = []
    for location in static_locations(config, has_app):
        options = {"root": location.root}
        for key in ("index", "autoindex", "max_age", "immutable", "dotfiles", "follow_symlinks", "precompressed"):
            options[key] = getattr(location, key)
        routes.append((location.prefix, Layer("route", f"static {location.prefix}", options)))
    for location in config.proxy:
        options = {"servers": [server.address for server in location.servers], "balance": location.balance}
        if location.strip_prefix:
            options["strip_prefix"] = True
        routes.append((location.prefix, Layer("route", f"proxy {location.prefix}", options)))
    routes.sort(key=lambda item: -len(item[0].rstrip("/")))
    layers = [layer for _, layer in routes]
    taken = any(prefix == "/" for prefix, _ in routes)
    if has_app:
        note = "every other path" if routes else "every path"
        if taken:
            note = "unreachable: a location takes /"
        layers.append(Layer("route", "app /", {"root_path": config.root_path} if config.root_path else {}, note))
    elif not taken:
        layers.append(Layer("route", "404 /", {}, "no application: every other path"))
    return layers


# ---------------------------------------------------------------------------
# inside the application


def _dotted(obj: Any) -> str:
    """package.module:Name of a class, function or instance (its class)."""
    target = obj if (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)) else type(obj)
    module = getattr(target, "__module__", None) or "?"
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}:{name}"


def _inner(obj: Any) -> Any:
    """The application a generic WSGI wrapper calls, found by the usual names."""
    for attribute in ("app", "application", "wsgi_app", "_app"):
        inner = getattr(obj, attribute, None) if not inspect.isfunction(obj) else None
        if inner is not None and inner is not obj and callable(inner):
            return inner
    return None


def _is_instance(obj: Any, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return cls is not None and isinstance(obj, cls)


def _django_layers(handler: Any) -> List[Layer]:
    from django.conf import settings

    layers = [Layer("django", path, {}) for path in settings.MIDDLEWARE]
    urlconf = getattr(settings, "ROOT_URLCONF", None)
    try:
        from django.urls import get_resolver
        count = {"url_patterns": len(get_resolver().url_patterns)}
    except Exception:  # a broken URLconf still lists the middleware
        count = {}
    layers.append(Layer("run", urlconf or _dotted(handler), count, "Django URLconf"))
    return layers


def _flask_layers(app: Any) -> List[Layer]:
    layers = []
    wrapper, seen = app.wsgi_app, set()
    while not (inspect.ismethod(wrapper) and wrapper.__self__ is app) and id(wrapper) not in seen:
        seen.add(id(wrapper))
        layers.append(Layer("flask", _dotted(wrapper), {}, "wsgi_app wrapper"))
        wrapper = _inner(wrapper)
        if wrapper is None:
            break
    hooks = getattr(app, "before_request_funcs", {})
    # the application's own hooks run first, then its blueprints'
    for scope in sorted(hooks, key=lambda scope: scope is not None):
        for function in hooks[scope]:
            where = "before_request" if scope is None else f"before_request, blueprint {scope}"
            layers.append(Layer("flask", _dotted(function), {}, where))
    rules = len(list(app.url_map.iter_rules()))
    layers.append(Layer("run", f"Flask application {app.name!r}", {"url_rules": rules}))
    return layers


def _starlette_layers(app: Any) -> List[Layer]:
    from starlette.routing import Router

    kind = "fastapi" if _is_instance(app, "fastapi", "FastAPI") else "starlette"
    declared = list(app.user_middleware)
    stack, built = app.build_middleware_stack(), []
    while not isinstance(stack, Router) and stack is not None:
        built.append(stack)
        stack = getattr(stack, "app", None)
    if stack is None:  # a layer that hides what it wraps: the declared order instead
        built = [entry.cls for entry in declared]
    layers = []
    for layer in built:
        cls = layer if inspect.isclass(layer) else type(layer)
        entry = next((item for item in declared if item.cls is cls), None)
        if entry is not None:
            declared.remove(entry)
            # Middleware(cls, *args, **kwargs); before Starlette 0.35, Middleware(cls, **options)
            options = {f"arg{index}": value for index, value in enumerate(getattr(entry, "args", ()))}
            options.update(getattr(entry, "kwargs", None) or getattr(entry, "options", {}))
            dispatch = options.pop("dispatch", None)
            name = _dotted(cls) if dispatch is None else f"{_dotted(cls)} dispatch={_dotted(dispatch)}"
            layers.append(Layer(kind, name, options, "added"))
        else:
            layers.append(Layer(kind, _dotted(cls), {}, f"{kind}'s own"))
    router = app.router
    layers.append(Layer("run", _dotted(router), {"routes": len(router.routes)}))
    return layers


def application_layers(app: Any, interface: str = "wsgi") -> List[Layer]:
    """What runs inside the application, outermost first, ending with "run"."""
    layers, seen = [], set()
    while id(app) not in seen:
        seen.add(id(app))
        if _is_instance(app, "django.core.handlers.wsgi", "WSGIHandler"):
            return layers + _django_layers(app)
        if _is_instance(app, "flask", "Flask"):
            return layers + _flask_layers(app)
        if _is_instance(app, "starlette.applications", "Starlette"):
            return layers + _starlette_layers(app)
        inner = _inner(app)
        if inner is None:
            break
        layers.append(Layer(interface, _dotted(app), {}, "wraps the application"))
        app = inner
    layers.append(Layer("run", _dotted(app), {}))
    return layers


# ---------------------------------------------------------------------------
# the command


def collect_layers(app_spec: Optional[str], config) -> List[Layer]:
    """Every layer, outermost first; raises AppLoadError or MiddlewareError."""
    from fastcore.appload import load_app
    from fastcore.middleware.chain import resolve_layers

    from fastcore.appload import ASGI, check_interface

    app = load_app(app_spec, config.chdir) if app_spec is not None else None
    layers = core_layers(config) + route_layers(config, app is not None)
    if app is not None and check_interface(app, config) == ASGI:
        # no WSGI middleware chain: the framework's own stack follows
        layers.append(Layer("gateway", "asgi", {"lifespan": config.lifespan, "asyncio_loop": config.asyncio_loop},
                            "asyncio runs the application's tasks"))
        layers.extend(application_layers(app, "asgi"))
        return layers
    for layer in resolve_layers(config.middleware, config):
        layers.append(Layer("use", layer.entry.factory, layer.options))
    if app is not None:
        layers.extend(application_layers(app))
    return layers


def print_layers(app_spec: Optional[str], config, as_json: bool = False, out=None) -> int:
    """``fastcore middlewares``: prints the layers; returns the exit status
    (1 with one line ``fastcore: error: ...`` for an application or an entry
    that leads nowhere, after the traceback for the user's own exception)."""
    import os
    import traceback

    from fastcore.appload import AppLoadError
    from fastcore.middleware.chain import MiddlewareError

    out = out or sys.stdout
    if config.chdir is not None:
        os.chdir(config.chdir)
    try:
        layers = collect_layers(app_spec, config)
    except (AppLoadError, MiddlewareError) as error:
        sys.stderr.write("fastcore: error: " + " ".join(str(error).splitlines()) + "\n")
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    if as_json:
        out.write(json.dumps([layer.as_json() for layer in layers], indent=2) + "\n")
    else:
        out.write("".join(layer.as_text() + "\n" for layer in layers))
    return 0
