"""The ``fastcore`` command.

    fastcore --version
    fastcore serve [APP] [settings]     run the server; with no APP, serve files
    fastcore check [APP] [settings]     validate the settings, import the app
    fastcore settings                   print the table of settings (Markdown)

Exit status: 0 on success; 2 with one line ``fastcore: error: ...`` on
stderr for a usage error or a bad setting; 1 with one line for an
application spec that leads nowhere; 1 after the traceback when the user's
own module raises while being imported. A typo never prints a traceback.
"""

import argparse
import difflib
import importlib
import os
import sys
import traceback
from typing import List, NoReturn, Optional, Sequence

import fastcore
from fastcore import installation
from fastcore.appload import AppLoadError, check_module_exists, load_app, parse_app_spec
from fastcore.config import ConfigError, add_setting_arguments, build_config, settings_from_namespace, settings_markdown

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
    parser.set_defaults(_commands=commands.choices)
    commands.add_parser("settings", help="print the table of settings as Markdown",
                        description="print the table of settings as Markdown", allow_abbrev=False)
    return parser


def _reject_unknown(parser: argparse.ArgumentParser, extra: List[str]) -> NoReturn:
    message = "unrecognized arguments: " + " ".join(extra)
    known = [flag for action in parser._actions for flag in action.option_strings]
    close = difflib.get_close_matches(extra[0].partition("=")[0], known, n=1)
    if close:
        message += f"; did you mean {close[0]}?"
    parser.error(message)


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
    args, extra = parser.parse_known_args(list(argv) if argv is not None else None)
    if extra:
        # Reported by the command's parser, so the hint names its --help.
        _reject_unknown(args._commands[args.command], extra)

    if args.command == "settings":
        sys.stdout.write(settings_markdown())
        return EXIT_OK

    try:
        config = build_config(settings_from_namespace(args), os.environ)
    except ConfigError as error:
        sys.stderr.write(_error_line(str(error)))
        return EXIT_USAGE

    if args.command == "check":
        try:
            _load(args.app, config.chdir)
        except AppLoadError as error:
            sys.stderr.write(_error_line(str(error)))
            return EXIT_FAILURE
        except Exception:
            # Raised by the user's own code: the traceback is the useful part.
            traceback.print_exc()
            return EXIT_FAILURE
        sys.stdout.write("fastcore: configuration ok\n")
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
    if config.chdir is not None:
        os.chdir(config.chdir)
    # Imported here: the server pulls in the compiled core, which --version,
    # check and settings do not need.
    arbiter = importlib.import_module("fastcore.arbiter")
    try:
        status = arbiter.Arbiter(config, args.app, settings_from_namespace(args)).run()
    except KeyboardInterrupt:  # Ctrl-C reaching us is a stop, not a crash
        return 130
    return status if isinstance(status, int) else EXIT_OK
