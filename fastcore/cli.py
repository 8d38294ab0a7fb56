"""The ``fastcore`` command.

    fastcore --version
    fastcore serve [APP] [settings]     run the server; with no APP, serve files
    fastcore check [APP] [settings]     validate the settings, import the app
    fastcore middlewares [APP] [--json] list the layers a request passes
    fastcore settings                   print the table of settings (Markdown)
    fastcore settings --effective [settings]
                                        print each setting's value and where it came from

Exit status: 0 on success; 2 with one line ``fastcore: error: ...`` on
stderr for a usage error or a bad setting; 1 with one line for an
application spec that leads nowhere; 1 after the traceback when the user's
own module raises while being imported. A typo never prints a traceback.
"""

import argparse
import difflib
import importlib
import os
import re
import sys
import traceback
from typing import List, NoReturn, Optional, Sequence

import fastcore
from fastcore import installation
from fastcore.appload import WSGI, AppLoadError, check_interface, check_module_exists, load_app, parse_app_spec
from fastcore.config import (SETTINGS, ConfigError, add_setting_arguments, build_config, settings_from_namespace,
                             settings_markdown)
from fastcore.middleware.chain import MiddlewareError, resolve_layers, wrap_application

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _error_line(message: str) -> str:
    return "fastcore: error: " + " ".join(str(message).splitlines()) + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line every other error is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, _error_line(f"{message} (see '{self.prog} --help')"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastcore", allow_abbrev=False,
                     description="An HTTP/1.1 server for Python web applications.")
    parser.add_argument("--version", action="version", version=f"fastcore {fastcore.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    app_help = "the WSGI application: MODULE, MODULE:NAME or MODULE:FACTORY(ARGS)"
    for name, summary in (("serve", "run the server"),
                          ("check", "validate the settings and import the application")):
        command = commands.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        command.add_argument("app", nargs="?", metavar="APP", help=app_help)
        add_setting_arguments(command)
    summary = "list every layer a request passes, from the socket to the view, in execution order"
    listing = commands.add_parser("middlewares", help=summary, description=summary, allow_abbrev=False)
    listing.add_argument("app", nargs="?", metavar="APP", help=app_help)
    listing.add_argument("--json", action="store_true", help="print the layers as a JSON list")
    add_setting_arguments(listing)
    parser.set_defaults(_commands=commands.choices)
    settings = commands.add_parser("settings", help="print the table of settings as Markdown",
                                   description="print the table of settings as Markdown; with --effective, the "
                                               "value each setting takes and where it comes from",
                                   allow_abbrev=False)
    settings.add_argument("--effective", action="store_true",
                          help="print each setting's value and its origin: flag, environment, file or default")
    add_setting_arguments(settings)
    return parser


# What users of other servers (gunicorn, uvicorn) type, and the flag it is here.
_FOREIGN_FLAGS = {
    "--access-logfile": "--access-log",
    "--error-logfile": "--error-log",
    "--log-file": "--error-log",
    "--pidfile": "--pid",
    "--keep-alive": "--keepalive-timeout",
    "--timeout-keep-alive": "--keepalive-timeout",
    "--timeout-graceful-shutdown": "--graceful-timeout",
    "--limit-max-requests": "--max-requests",
    "--limit-concurrency": "--max-connections",
    "--worker-connections": "--max-connections",
    "--limit-request-line": "--max-request-line",
    "--limit-request-fields": "--max-headers",
    "--limit-request-field_size": "--max-header-bytes",
    "--app-dir": "--chdir",
    "--proxy-headers": "--forwarded-allow-ips",
}
# Flags of other servers with no flag of the same meaning here: what to do instead.
_FOREIGN_ADVICE = {
    "--factory": "name the factory call as the application, MODULE:create_app()",
    "--worker-class": "one kind of worker here; where the application runs is --threads N|auto",
    "-k": "one kind of worker here; where the application runs is --threads N|auto",
    "--daemon": "fastcore stays in the foreground: run it under systemd (socket activation is honoured)",
    "-D": "fastcore stays in the foreground: run it under systemd (socket activation is honoured)",
}
_HOST_FLAGS = ("--host",)
_PORT_FLAGS = ("--port", "-p")  # gunicorn's -p is its pid file: told apart by the value
_PORT_TEXT = re.compile(r"[0-9]{1,5}\Z")
_HOST_PORT_TEXT = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9.-]*):([0-9]{1,5})\Z")


def _bind_address(host: Optional[str], port: Optional[str]) -> str:
    host = host or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port or 8000}"


def _foreign_flags(argv: List[str]) -> Optional[str]:
    """The usage error for flags of other servers (--host/--port, --uds,
    gunicorn's and uvicorn's names): what to write instead; None if none."""
    host = port = None
    used = []
    hints = []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, equals, value = arg.partition("=")
        if not equals:
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None
        if name in _HOST_FLAGS:
            host, used = value, used + [name]
        elif name == "-p" and value is not None and not _PORT_TEXT.match(value):
            hints.append("-p: use --pid")
        elif name in _PORT_FLAGS:
            port, used = value, used + [name]
        elif name == "--uds":
            hints.append(f"--uds: use --bind unix:{value or 'PATH'}")
        elif name in _FOREIGN_FLAGS:
            hints.append(f"{name}: use {_FOREIGN_FLAGS[name]}")
        elif name in _FOREIGN_ADVICE:
            hints.append(f"{name}: {_FOREIGN_ADVICE[name]}")
    if used:
        hints.insert(0, f"{' and '.join(used)}: fastcore listens where --bind says; use --bind "
                        f"{_bind_address(host, port)}")
    return "unrecognized arguments (" + "; ".join(hints) + ")" if hints else None


def _is_module(name: str, chdir: Optional[str]) -> bool:
    """Is `name` a module or a regular package in the application's
    directory (a directory without __init__.py is only a namespace)?"""
    from importlib.machinery import PathFinder

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return False
    spec = PathFinder.find_spec(name, [os.path.abspath(chdir or os.getcwd())])
    return spec is not None and spec.origin is not None


def _positional_hint(token: str, chdir: Optional[str]) -> Optional[str]:
    """What a positional argument that is no application was meant to be:
    a port or an address (--bind), a directory to serve (--static), a
    file name (its module name); None if it may be an application."""
    if _PORT_TEXT.match(token):
        return f"{token!r} is not an application; to listen on port {token}, use --bind {_bind_address(None, token)}"
    match = _HOST_PORT_TEXT.match(token)
    if match:
        address = _bind_address(match.group(1).strip("[]") or None, match.group(2))
        return f"{token!r} is not an application; to listen there, use --bind {address}"
    path = os.path.join(chdir or os.getcwd(), token)
    if os.path.isdir(path) and not _is_module(token, chdir):
        return (f"{token!r} is a directory, not an application; to serve its files, use "
                f"--static /={token}")
    if token.endswith(".py") and os.path.isfile(path):
        module = token[:-3].replace(os.sep, ".")
        return f"{token!r} is a file name; name the application as a module: {module} or {module}:app"
    return None


def _reject_unknown(parser: argparse.ArgumentParser, extra: List[str]) -> NoReturn:
    message = "unrecognized arguments: " + " ".join(extra)
    known = [flag for action in parser._actions for flag in action.option_strings]
    close = difflib.get_close_matches(extra[0].partition("=")[0], known, n=1)
    if close:
        message += f"; did you mean {close[0]}?"
    parser.error(message)


def _report_problems(config, app_spec: Optional[str]) -> bool:
    """The start-up checks (fastcore.preflight): one error line each; True if any."""
    from fastcore.preflight import problems

    found = problems(config, app_spec)
    for problem in found:
        sys.stderr.write(_error_line(problem))
    return bool(found)


def _value_text(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if value == "":
        return '""'
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value) if value else "(none)"
    return str(value)


def _effective_settings(config, sources) -> str:
    """One line per setting: name = value, and where the value came from."""
    lines = []
    for setting in SETTINGS:
        kind, detail = sources[setting.name]
        origin = f"{kind} {detail}" if detail else kind
        lines.append((f"{setting.name} = {_value_text(getattr(config, setting.name))}", origin))
    width = max(len(text) for text, _ in lines)
    return "".join(f"{text.ljust(width)}  # {origin}\n" for text, origin in lines)


def _load(app_spec: Optional[str], chdir: Optional[str]):
    if chdir is not None:
        # The process works where the user asked, as the app's relative paths expect.
        os.chdir(chdir)
    return None if app_spec is None else load_app(app_spec, chdir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command; returns the exit status (argparse exits by itself for
    ``--help``, ``--version`` and usage errors)."""
    # Before anything trusts the package: fastai's fastcore, of the same
    # import name, may have been installed over ours (fastcore.installation).
    foreign = installation.foreign_package(fastcore)
    if foreign is not None:
        sys.stderr.write(_error_line(foreign))
        return EXIT_FAILURE
    other = installation.other_distribution()
    if other is not None:
        sys.stderr.write(f"fastcore: warning: {other}\n")
    parser = build_parser()
    argv = list(argv) if argv is not None else sys.argv[1:]
    args, extra = parser.parse_known_args(argv)
    foreign = _foreign_flags(argv)
    if foreign is not None:
        args._commands[args.command].error(foreign)
    if extra:
        hint = _positional_hint(extra[0], None) if not extra[0].startswith("-") else None
        if hint is not None:
            args._commands[args.command].error(hint)
        # Reported by the command's parser, so the hint names its --help.
        _reject_unknown(args._commands[args.command], extra)

    if args.command == "settings" and not args.effective:
        if settings_from_namespace(args):
            args._commands["settings"].error("setting flags go with --effective")
        sys.stdout.write(settings_markdown())
        return EXIT_OK

    sources = {}
    try:
        config = build_config(settings_from_namespace(args), os.environ, sources)
    except ConfigError as error:
        sys.stderr.write(_error_line(str(error)))
        return EXIT_USAGE

    if args.command == "settings":
        sys.stdout.write(_effective_settings(config, sources))
        return EXIT_OK
    if args.app is not None:
        hint = _positional_hint(args.app, config.chdir)
        if hint is not None:
            args._commands[args.command].error(hint)
    if args.command == "middlewares":
        from fastcore.middleware.listing import print_layers
        return print_layers(args.app, config, as_json=args.json)

    if args.command == "check":
        # the machine's checks first: they run none of the user's code
        if config.chdir is not None:
            os.chdir(config.chdir)
        if _report_problems(config, args.app):
            return EXIT_USAGE
        try:
            app = _load(args.app, config.chdir)
            if app is not None and check_interface(app, config) == WSGI:
                wrap_application(app, config.middleware, config)
            else:
                resolve_layers(config.middleware, config)
        except (AppLoadError, MiddlewareError) as error:
            sys.stderr.write(_error_line(str(error)))
            return EXIT_FAILURE
        except Exception:
            # Raised by the user's own code: the traceback is the useful part.
            traceback.print_exc()
            return EXIT_FAILURE
        asgi = app is not None and check_interface(app, config) != WSGI
        sys.stdout.write("fastcore: configuration ok" + (" (ASGI application)" if asgi else "") + "\n")
        return EXIT_OK

    # serve: the workers import the application (the arbiter too with
    # --preload), so a reload picks up new code; only the spec is checked here.
    # With no application, serve files: the static locations, or the
    # current directory when there are none.
    if args.app is not None:
        try:
            parse_app_spec(args.app)
        except AppLoadError as error:
            sys.stderr.write(_error_line(str(error)))
            return EXIT_USAGE
        try:
            check_module_exists(args.app, config.chdir)
        except AppLoadError as error:
            sys.stderr.write(_error_line(str(error)))
            return EXIT_FAILURE
    elif config.middleware:
        sys.stderr.write(_error_line(f"middleware {config.middleware[0]}: the middleware wraps the WSGI "
                                     f"application, and none is given (static files and proxied responses do not "
                                     f"pass through it)"))
        return EXIT_USAGE
    if config.chdir is not None:
        os.chdir(config.chdir)
    if _report_problems(config, args.app):
        return EXIT_USAGE
    # Imported here: the server pulls in the compiled core, which --version,
    # check and settings do not need.
    arbiter = importlib.import_module("fastcore.arbiter")
    try:
        status = arbiter.Arbiter(config, args.app, settings_from_namespace(args)).run()
    except KeyboardInterrupt:  # Ctrl-C reaching us is a stop, not a crash
        return 130
    return status if isinstance(status, int) else EXIT_OK
