"""Find the user's WSGI application from a spec such as ``pkg.mod:app``.

Forms of a spec::

    module                     the attribute ``application``, else ``app``
    module:name                an attribute (dotted names reach inside: ``mod:obj.app``)
    module:factory()           the result of calling ``factory``
    module:factory(1, "x", debug=True)   literal arguments only

The call is parsed with ``ast`` and its arguments read with
``ast.literal_eval``: a spec never runs code of its own.

Two kinds of failure, kept apart on purpose: a mistake in the spec (module
not found, no such attribute, not callable, malformed) raises
``AppLoadError`` with one line for the user; an exception raised by the
user's own code while importing or calling the factory propagates
unchanged, because its traceback is what the user needs to fix it.
"""

import ast
import importlib
import inspect
import os
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["AppLoadError", "ASGI", "WSGI", "as_asgi3", "check_interface", "detect_interface", "load_app",
           "parse_app_spec"]

DEFAULT_ATTRIBUTES = ("application", "app")
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


class AppLoadError(Exception):
    """The spec does not lead to a callable. The message is one line, for the user."""


class AppSpec:
    """A parsed spec: module name, attribute path, and the call to make if any."""

    __slots__ = ("text", "module", "attributes", "call", "args", "kwargs")

    def __init__(self, text: str, module: str, attributes: Tuple[str, ...],
                 call: bool = False, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None) -> None:
        self.text = text
        self.module = module
        self.attributes = attributes  # empty: use DEFAULT_ATTRIBUTES
        self.call = call
        self.args = args
        self.kwargs = dict(kwargs or {})


def _dotted_name(node: ast.AST) -> Optional[List[str]]:
    """``a.b.c`` as ["a", "b", "c"]; None for anything that is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted_name(node.value)
        return None if head is None else head + [node.attr]
    return None


def parse_app_spec(spec: str) -> AppSpec:
    """Check the form of ``spec`` without importing anything; raises ``AppLoadError``."""
    if not isinstance(spec, str):
        raise AppLoadError(f"application spec must be a string, got {spec!r}")
    module, sep, expression = spec.strip().partition(":")
    if not _MODULE_RE.match(module):
        raise AppLoadError(f"malformed application spec {spec!r}: expected MODULE or MODULE:NAME")
    if not sep:
        return AppSpec(spec, module, ())
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise AppLoadError(
            f"malformed application spec {spec!r}: expected MODULE:NAME or MODULE:FACTORY(ARGS)"
        ) from None
    names = _dotted_name(tree)
    if names is not None:
        return AppSpec(spec, module, tuple(names))
    if not isinstance(tree, ast.Call) or _dotted_name(tree.func) is None:
        raise AppLoadError(
            f"malformed application spec {spec!r}: expected MODULE:NAME or MODULE:FACTORY(ARGS)"
        )
    try:
        args = tuple(ast.literal_eval(arg) for arg in tree.args)
        kwargs = {}
        for keyword in tree.keywords:
            if keyword.arg is None:  # **mapping
                raise ValueError
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
    except ValueError:
        raise AppLoadError(
            f"malformed application spec {spec!r}: factory arguments must be literals (numbers, strings, ...)"
        ) from None
    return AppSpec(spec, module, tuple(_dotted_name(tree.func) or ()), True, args, kwargs)


def _import(spec: AppSpec, directory: str) -> Any:
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        # Ours only if the missing module is the one we were asked for or one
        # of its parent packages; anything else was imported by the user's code.
        asked = spec.module
        if error.name is not None and (asked == error.name or asked.startswith(error.name + ".")):
            raise AppLoadError(
                f"No module named {error.name!r} (application {spec.text!r}, looked in {directory})"
            ) from None
        raise


def _find(module: Any, spec: AppSpec) -> Any:
    if not spec.attributes:
        for name in DEFAULT_ATTRIBUTES:
            if hasattr(module, name):
                return getattr(module, name)
        raise AppLoadError(
            f"module {spec.module!r} has no attribute 'application' or 'app'; name one as {spec.module}:NAME"
        )
    target = module
    for depth, name in enumerate(spec.attributes):
        try:
            target = getattr(target, name)
        except AttributeError:
            where = spec.module + "".join("." + part for part in spec.attributes[:depth])
            raise AppLoadError(f"{where!r} has no attribute {name!r} (application {spec.text!r})") from None
    return target


def _call_factory(factory: Any, spec: AppSpec) -> Any:
    name = ".".join(spec.attributes)
    if not callable(factory):
        raise AppLoadError(f"{spec.module}:{name} is not callable, so it cannot be a factory")
    try:
        inspect.signature(factory).bind(*spec.args, **spec.kwargs)
    except TypeError as error:
        raise AppLoadError(f"factory {spec.module}:{name} cannot take these arguments: {error}") from None
    except ValueError:  # no signature available (some builtins): let the call decide
        pass
    return factory(*spec.args, **spec.kwargs)


def check_module_exists(spec: str, chdir: Optional[str] = None) -> None:
    """Raises AppLoadError when the spec's top-level module cannot be found
    (a typo), without running any of the user's code: the arbiter checks it
    before it forks workers that would each import it."""
    import importlib.util

    parsed = parse_app_spec(spec)
    top = parsed.module.split(".")[0]
    directory = os.path.abspath(chdir or os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    if top not in sys.modules and importlib.util.find_spec(top) is None:
        raise AppLoadError(f"No module named {top!r} (application {spec!r}, looked in {directory})")


def load_app(spec: str, chdir: Optional[str] = None) -> Callable[..., Any]:
    """Import and return the application named by ``spec``.

    ``chdir`` (default: the current directory) goes first on ``sys.path``.
    Raises ``AppLoadError`` for a spec that leads nowhere; lets the user's
    own exceptions through."""
    parsed = parse_app_spec(spec)
    directory = os.path.abspath(chdir if chdir is not None else os.getcwd())
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)
    # The finders cache directory listings; a module written since the last
    # import from that directory would otherwise be reported missing.
    importlib.invalidate_caches()
    module = _import(parsed, directory)
    target = _find(module, parsed)
    if parsed.call:
        target = _call_factory(target, parsed)
    if not callable(target):
        raise AppLoadError(f"application {spec!r} is not callable (it is a {type(target).__name__})")
    return target


# ---- the interface: WSGI or ASGI ---------------------------------------------

WSGI = "wsgi"
ASGI = "asgi"


def _is_coroutine_callable(obj):
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def _is_asgi2(app):
    """An ASGI 2 double callable: app(scope) gives an object whose __call__
    is a coroutine function taking (receive, send). Recognised by its form:
    a class (or a callable taking one argument) whose instances' __call__ is
    a coroutine function."""
    if inspect.isclass(app):
        return inspect.iscoroutinefunction(getattr(app, "__call__", None))
    return False


def detect_interface(app, wanted="auto"):
    """'asgi' or 'wsgi' for app, as `wanted` (auto|wsgi|asgi) allows; raises
    ValueError with one line when the choice contradicts the application."""
    if wanted == WSGI:
        return WSGI
    if _is_coroutine_callable(app) and not inspect.isclass(app) or _is_asgi2(app):
        return ASGI
    if wanted == ASGI:
        raise ValueError("interface asgi: the application is not an ASGI application (a coroutine function, or an "
                         "object whose __call__ is one, taking scope, receive, send)")
    return WSGI


def as_asgi3(app):
    """An ASGI 3 callable for app: ASGI 2 double callables are wrapped."""
    if _is_asgi2(app):
        async def asgi2_adapter(scope, receive, send):
            instance = app(scope)
            await instance(receive, send)
        asgi2_adapter.__wrapped__ = app
        return asgi2_adapter
    return app


def check_interface(app, config):
    """The interface of app under config.interface (and its middleware
    setting); raises AppLoadError with one line when they do not fit."""
    try:
        interface = detect_interface(app, config.interface)
    except ValueError as error:
        raise AppLoadError(str(error)) from None
    if interface == ASGI and config.middleware:
        raise AppLoadError(f"middleware {config.middleware[0].factory}: the middleware chain wraps WSGI "
                         f"applications, and this application is ASGI (use its framework's middleware)")
    return interface
