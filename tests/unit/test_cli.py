"""fastcore.cli: the command's exit codes and its one-line errors.

Subprocess tests run ``python -m fastcore`` from a temporary directory, so
they exercise the installed package (or PYTHONPATH), never the checkout by
accident of the current directory.
"""

import os
import subprocess
import sys
import textwrap
import types

import pytest

import fastcore
from fastcore import cli
from fastcore.config import settings_markdown


def clean_env(**extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTCORE_")}
    env.update(extra)
    return env


def run_fastcore(tmp_path, *args, **env):
    return subprocess.run(
        [sys.executable, "-m", "fastcore", *args],
        cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=60,
    )


def assert_one_line_error(result, status):
    assert result.returncode == status, result
    assert result.stderr.startswith("fastcore: error: "), result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.rstrip("\n")


def test_cli_version(tmp_path):
    result = run_fastcore(tmp_path, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"fastcore {fastcore.__version__}\n", "")


def test_cli_bad_flag_value_exits_2(tmp_path):
    result = run_fastcore(tmp_path, "serve", "--threads", "abc")
    line = assert_one_line_error(result, 2)
    assert line == "fastcore: error: setting threads (--threads): expected an integer >= 1 or 'auto', got 'abc'"


def test_cli_bad_environment_value_exits_2(tmp_path):
    result = run_fastcore(tmp_path, "check", FASTCORE_MAX_BODY="16 megs")
    line = assert_one_line_error(result, 2)
    assert "setting max_body (FASTCORE_MAX_BODY)" in line and "'16 megs'" in line


def test_cli_unknown_config_key_exits_2(tmp_path):
    (tmp_path / "fastcore.toml").write_text("threds = 2\n")
    result = run_fastcore(tmp_path, "check", "--config", "fastcore.toml")
    line = assert_one_line_error(result, 2)
    assert "unknown setting 'threds'" in line


@pytest.mark.parametrize("args", [
    ("serve", "--thread", "2"),      # no abbreviations: a typo is an error
    ("serve", "--no-such-flag"),
    ("serve", "--threads"),          # missing value
    ("serve", "a:app", "b:app"),
    ("nope",),
    (),
])
def test_cli_usage_errors_exit_2_in_one_line(tmp_path, args):
    assert_one_line_error(run_fastcore(tmp_path, *args), 2)


def test_cli_unknown_flag_suggests_the_right_one(tmp_path):
    line = assert_one_line_error(run_fastcore(tmp_path, "serve", "--max-bodyy", "1"), 2)
    assert "did you mean --max-body?" in line


def test_cli_missing_app_module_exits_1(tmp_path):
    line = assert_one_line_error(run_fastcore(tmp_path, "check", "fc_cli_missing_module:app"), 1)
    assert "No module named 'fc_cli_missing_module'" in line


def test_cli_missing_attribute_exits_1(tmp_path):
    (tmp_path / "fc_cli_app.py").write_text("def app(environ, start_response):\n    return []\n")
    line = assert_one_line_error(run_fastcore(tmp_path, "check", "fc_cli_app:nope"), 1)
    assert "has no attribute 'nope'" in line


def test_cli_error_inside_user_module_prints_traceback_exits_1(tmp_path):
    (tmp_path / "fc_cli_broken.py").write_text("import fc_cli_not_installed\napp = None\n")
    result = run_fastcore(tmp_path, "check", "fc_cli_broken:app")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert 'fc_cli_broken.py", line 1' in result.stderr
    assert result.stderr.rstrip().endswith("No module named 'fc_cli_not_installed'")


def test_cli_check_ok(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "fc_cli_ok.py").write_text("def app(environ, start_response):\n    return []\n")
    result = run_fastcore(tmp_path, "check", "fc_cli_ok:app", "--chdir", "site", "-b", "[::1]:0")
    assert (result.returncode, result.stdout, result.stderr) == (0, "fastcore: configuration ok\n", "")


def test_cli_check_without_app_checks_the_settings(tmp_path):
    (tmp_path / "public").mkdir()
    result = run_fastcore(tmp_path, "check", "--static", "/=public")
    assert (result.returncode, result.stdout, result.stderr) == (0, "fastcore: configuration ok\n", "")
    result = run_fastcore(tmp_path, "check", "--static", "/=missing")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "static" in result.stderr


def test_cli_settings_prints_the_table(tmp_path):
    result = run_fastcore(tmp_path, "settings")
    assert (result.returncode, result.stdout) == (0, settings_markdown())


# In-process: serve hands the config and the app to fastcore.worker.serve.


@pytest.fixture
def fake_worker(monkeypatch, tmp_path):
    """Stands in for fastcore.arbiter: records (config, app spec) instead of serving."""
    calls = []
    arbiter = types.ModuleType("fastcore.arbiter")

    class Arbiter:
        def __init__(self, config, app_spec, cli_values):
            self.config, self.app_spec = config, app_spec

        def run(self):
            calls.append((self.config, self.app_spec))
            return 0

    arbiter.Arbiter = Arbiter
    monkeypatch.setitem(sys.modules, "fastcore.arbiter", arbiter)
    monkeypatch.chdir(tmp_path)  # serve may chdir; put the test's cwd back afterwards
    monkeypatch.setattr(sys, "path", list(sys.path))
    for key in [key for key in os.environ if key.startswith("FASTCORE_")]:
        monkeypatch.delenv(key)
    return calls


def test_cli_serve_hands_the_spec_to_the_arbiter_unimported(fake_worker, tmp_path):
    # without --preload the workers import the app (so a reload picks up new
    # code): serve itself must not run the module
    name = f"fc_cli_serve_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('imported by the arbiter')\n")
    assert cli.main(["serve", f"{name}:make(b'x')", "--threads", "4", "--no-server-header",
                     "--workers", "3"]) == 0
    assert name not in sys.modules
    [(config, spec)] = fake_worker
    assert (config.threads, config.server_header, config.workers) == (4, False, 3)
    assert spec == f"{name}:make(b'x')"


def test_cli_serve_missing_module_is_one_line_before_starting(fake_worker, capsys):
    assert cli.main(["serve", "no_such_module_fc_cli:app"]) == 1
    assert fake_worker == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_module_fc_cli" in err


def test_cli_serve_without_app_serves_files(fake_worker, tmp_path):
    # no application: the arbiter gets no spec and the worker serves the
    # static locations (or the current directory when there are none)
    (tmp_path / "public").mkdir()
    assert cli.main(["serve"]) == 0
    assert cli.main(["serve", "--static", "/assets=public", "--autoindex"]) == 0
    [(plain, plain_spec), (assets, assets_spec)] = fake_worker
    assert plain_spec is None and assets_spec is None
    assert plain.static == ()
    [location] = assets.static
    assert (location.prefix, location.root, location.autoindex) == ("/assets", str(tmp_path / "public"), True)


def test_cli_serve_static_bad_directory_is_one_line(fake_worker, capsys):
    assert cli.main(["serve", "--static", "/assets=no-such-dir"]) == 2
    assert fake_worker == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "static" in err and "no-such-dir" in err


def test_cli_bad_setting_does_not_start_the_server(fake_worker, capsys):
    assert cli.main(["serve", "--max-body", "-1"]) == 2
    assert fake_worker == []
    assert capsys.readouterr().err.count("\n") == 1
