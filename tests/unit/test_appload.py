"""fastcore.appload: from a spec to the user's WSGI callable."""

import itertools
import os
import sys
import textwrap

import pytest

from fastcore.appload import AppLoadError, load_app, parse_app_spec

_counter = itertools.count()


@pytest.fixture
def app_dir(tmp_path):
    """A directory for user modules; sys.path and sys.modules restored afterwards."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    yield tmp_path
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        del sys.modules[name]


def write_module(directory, source, name=None):
    """A module file with a name no other test uses; returns the name."""
    name = name or f"fc_test_app_{os.getpid()}_{next(_counter)}"
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


APP_SOURCE = """
    def app(environ, start_response):
        return [b"app"]

    def application(environ, start_response):
        return [b"application"]

    class Holder:
        def inner(environ, start_response):
            return [b"inner"]

    def create_app(greeting="hi", times=1, **options):
        def made(environ, start_response):
            return [greeting.encode() * times, repr(sorted(options.items())).encode()]
        return made

    def no_args():
        return app

    settings = {"debug": True}
    returns_none = lambda: None
"""


def test_appload_module_attr(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    assert load_app(f"{name}:app", str(app_dir))(None, None) == [b"app"]
    assert load_app(f"{name}:Holder.inner", str(app_dir))(None, None) == [b"inner"]


def test_appload_module_alone_prefers_application_then_app(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    assert load_app(name, str(app_dir))(None, None) == [b"application"]
    only_app = write_module(app_dir, "def app(e, s):\n    return [b'only app']\n")
    assert load_app(only_app, str(app_dir))(None, None) == [b"only app"]


def test_appload_module_alone_without_defaults(app_dir):
    name = write_module(app_dir, "x = 1\n")
    with pytest.raises(AppLoadError, match=r"has no attribute 'application' or 'app'"):
        load_app(name, str(app_dir))


def test_appload_factory_call(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    assert load_app(f"{name}:no_args()", str(app_dir))(None, None) == [b"app"]
    assert load_app(f"{name}:create_app()", str(app_dir))(None, None) == [b"hi", b"[]"]


def test_appload_factory_with_literal_arguments(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    app = load_app(f"{name}:create_app('yo', times=2, flags=[1, 2], debug=True)", str(app_dir))
    assert app(None, None) == [b"yoyo", b"[('debug', True), ('flags', [1, 2])]"]


def test_appload_uses_current_directory_when_no_chdir(app_dir, monkeypatch):
    name = write_module(app_dir, APP_SOURCE)
    monkeypatch.chdir(app_dir)
    assert load_app(f"{name}:app", None)(None, None) == [b"app"]
    assert sys.path[0] == str(app_dir)


def test_appload_directory_goes_first_on_sys_path(app_dir, tmp_path_factory):
    # The same module name in two places: the chdir one must win.
    other = tmp_path_factory.mktemp("other")
    name = write_module(other, "def app(e, s):\n    return [b'wrong']\n")
    write_module(app_dir, "def app(e, s):\n    return [b'right']\n", name=name)
    sys.path.insert(0, str(other))
    assert load_app(f"{name}:app", str(app_dir))(None, None) == [b"right"]


def test_appload_missing_module_is_one_line(app_dir):
    name = f"fc_missing_{os.getpid()}_{next(_counter)}"
    with pytest.raises(AppLoadError) as caught:
        load_app(f"{name}:app", str(app_dir))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"No module named '{name}'")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_appload_missing_submodule_is_one_line(app_dir):
    package = write_module(app_dir, "")
    with pytest.raises(AppLoadError, match=rf"^No module named '{package}\.nope'"):
        load_app(f"{package}.nope:app", str(app_dir))


def test_appload_missing_attribute(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    with pytest.raises(AppLoadError, match=rf"^'{name}' has no attribute 'nope'"):
        load_app(f"{name}:nope", str(app_dir))
    with pytest.raises(AppLoadError, match=rf"^'{name}\.Holder' has no attribute 'missing'"):
        load_app(f"{name}:Holder.missing", str(app_dir))


def test_appload_not_callable(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    with pytest.raises(AppLoadError, match=r"is not callable \(it is a dict\)"):
        load_app(f"{name}:settings", str(app_dir))
    with pytest.raises(AppLoadError, match=r"is not callable \(it is a NoneType\)"):
        load_app(f"{name}:returns_none()", str(app_dir))
    with pytest.raises(AppLoadError, match=r"settings is not callable, so it cannot be a factory"):
        load_app(f"{name}:settings()", str(app_dir))


def test_appload_factory_wrong_arguments(app_dir):
    name = write_module(app_dir, APP_SOURCE)
    with pytest.raises(AppLoadError, match=r"cannot take these arguments"):
        load_app(f"{name}:no_args(1)", str(app_dir))


def test_appload_import_error_inside_user_module_propagates(app_dir):
    missing = f"fc_dependency_{os.getpid()}_{next(_counter)}"
    name = write_module(app_dir, f"import {missing}\napp = None\n")
    with pytest.raises(ModuleNotFoundError) as caught:
        load_app(f"{name}:app", str(app_dir))
    assert not isinstance(caught.value, AppLoadError)
    assert caught.value.name == missing
    # The traceback reaches into the user's file: that is what they need to see.
    assert any(str(entry.path).endswith(f"{name}.py") for entry in caught.traceback)


def test_appload_other_exceptions_in_user_code_propagate(app_dir):
    name = write_module(app_dir, "raise RuntimeError('boom at import')\n")
    with pytest.raises(RuntimeError, match="boom at import"):
        load_app(f"{name}:app", str(app_dir))
    factory = write_module(app_dir, "def make():\n    raise ValueError('boom in factory')\n")
    with pytest.raises(ValueError, match="boom in factory"):
        load_app(f"{factory}:make()", str(app_dir))


@pytest.mark.parametrize("spec", [
    "", ":app", "mod:", "mod:app extra", "mod:1", "mod:app[0]", ".relative:app", "mod-x:app",
    "mod:f(x)", "mod:f(*args)", "mod:f(**kw)", "mod:f(__import__('os'))", "mod:f()()", "mod:a:b",
])
def test_appload_malformed_spec(spec):
    with pytest.raises(AppLoadError) as caught:
        parse_app_spec(spec)
    assert "\n" not in str(caught.value) and "malformed application spec" in str(caught.value)


def test_appload_spec_parsing():
    spec = parse_app_spec("pkg.mod:make.app(1, 'x', debug=True)")
    assert (spec.module, spec.attributes, spec.call, spec.args, spec.kwargs) == (
        "pkg.mod", ("make", "app"), True, (1, "x"), {"debug": True})
    spec = parse_app_spec("pkg.mod")
    assert (spec.module, spec.attributes, spec.call) == ("pkg.mod", (), False)
