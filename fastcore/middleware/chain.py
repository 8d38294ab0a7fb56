"""The WSGI middleware chain: the ``middleware`` setting made into layers
around the application, once, right after the application is loaded (in
each worker, or in the arbiter with ``--preload``).

Theory of operation
-------------------
Each entry names a factory, ``package.module:Factory``, that is called with
the application (positionally) and the entry's options (as keywords) and
returns the wrapped application. The first entry is the outermost layer: it
sees a request first and the response last. So the chain is built from the
last entry inwards: ``first(second(...(app)))``.

A factory with a keyword parameter named after a server setting in
``SERVER_OPTIONS`` (``forwarded_allow_ips``) that the entry does not set
receives the server's value: the shipped middlewares trust the same peers
as the rest of the server, with no second list to keep in step.

Two kinds of failure, kept apart as in ``appload``: a mistake in an entry
(module not found, no such attribute, not callable, an option the factory
does not take, or a value it refuses with ``TypeError``/``ValueError``)
raises ``MiddlewareError``, one line starting with ``middleware``; any other
exception raised by the user's code while importing or calling the factory
propagates, because its traceback is what the user needs.
"""
import difflib
import importlib
import inspect
from typing import Any, Callable, Dict, List, NamedTuple, Sequence

__all__ = ["Layer", "MiddlewareError", "SERVER_OPTIONS", "resolve_layers", "wrap_application"]

# keyword parameter -> the server setting whose value a factory receives when
# the entry does not give one
SERVER_OPTIONS = {"forwarded_allow_ips": "forwarded_allow_ips"}


class MiddlewareError(Exception):
    """An entry of ``middleware`` leads nowhere; the message is one line, for the user."""


class Layer(NamedTuple):
    """One resolved entry: what it was written as, the factory, and every
    keyword it will be called with (its own options and the server's)."""

    entry: Any           # config.MiddlewareEntry
    factory: Callable[..., Any]
    options: Dict[str, Any]


def _import_factory(entry) -> Callable[..., Any]:
    module_name, _, attributes = entry.factory.partition(":")
    try:
        target = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # ours only if the missing module is the one named or a parent of it;
        # anything else was imported by the middleware's own code
        if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise MiddlewareError(f"middleware {entry.factory}: no module named {error.name!r}") from None
        raise
    for depth, name in enumerate(attributes.split(".")):
        try:
            target = getattr(target, name)
        except AttributeError:
            where = module_name + (":" + ".".join(attributes.split(".")[:depth]) if depth else "")
            raise MiddlewareError(f"middleware {entry.factory}: {where} has no attribute {name!r}") from None
    if not callable(target):
        raise MiddlewareError(f"middleware {entry.factory}: not callable (it is a {type(target).__name__}), "
                              f"so it cannot wrap the application")
    return target


def _parameters(factory) -> Dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # no signature available: the call decides
        return {}


def _options(entry, factory, config) -> Dict[str, Any]:
    options = entry.kwargs
    parameters = _parameters(factory)
    for keyword, setting in SERVER_OPTIONS.items():
        parameter = parameters.get(keyword)
        if (keyword not in options and parameter is not None and config is not None
                and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)):
            options[keyword] = getattr(config, setting)
    if parameters:
        try:
            inspect.signature(factory).bind(None, **options)
        except TypeError as error:
            known = [name for name, p in list(parameters.items())[1:]
                     if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            unknown = [name for name in options if name not in parameters]
            if unknown and not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
                close = difflib.get_close_matches(unknown[0], known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f"; it takes {', '.join(known)}" if known else "; it takes none")
                raise MiddlewareError(f"middleware {entry.factory}: unknown option {unknown[0]!r}{hint}") from None
            raise MiddlewareError(f"middleware {entry.factory}: cannot be called with the application and "
                                  f"these options: {error}") from None
    return options


def resolve_layers(entries: Sequence[Any], config=None) -> List[Layer]:
    """Import every entry's factory and settle its options, outermost first;
    raises ``MiddlewareError``. Calls no factory."""
    return [Layer(entry, factory, _options(entry, factory, config))
            for entry in entries for factory in (_import_factory(entry),)]


def wrap_application(app: Callable[..., Any], entries: Sequence[Any], config=None) -> Callable[..., Any]:
    """The application inside every layer of ``entries`` (the first outermost);
    raises ``MiddlewareError``."""
    for layer in reversed(resolve_layers(entries, config)):
        try:
            wrapped = layer.factory(app, **layer.options)
        except (TypeError, ValueError) as error:
            message = " ".join(str(error).splitlines()) or type(error).__name__
            raise MiddlewareError(f"middleware {layer.entry.factory}: {message}") from None
        if not callable(wrapped):
            raise MiddlewareError(f"middleware {layer.entry.factory}: returned a {type(wrapped).__name__}, "
                                  f"not a WSGI application")
        app = wrapped
    return app
