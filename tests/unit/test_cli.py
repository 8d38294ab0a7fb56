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
    assert line == "fastcore: error: setting threads (--threads): expected an integer >= 1, got 'abc'"


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


def test_cli_settings_prints_the_table(tmp_path):
    result = run_fastcore(tmp_path, "settings")
    assert (result.returncode, result.stdout) == (0, settings_markdown())


# In-process: serve hands the config and the app to fastcore.worker.serve.


@pytest.fixture
def fake_worker(monkeypatch, tmp_path):
    calls = []
    worker = types.ModuleType("fastcore.worker")
    worker.serve = lambda config, app: calls.append((config, app))
    monkeypatch.setitem(sys.modules, "fastcore.worker", worker)
    monkeypatch.chdir(tmp_path)  # serve may chdir; put the test's cwd back afterwards
    monkeypatch.setattr(sys, "path", list(sys.path))
    for key in [key for key in os.environ if key.startswith("FASTCORE_")]:
        monkeypatch.delenv(key)
    return calls


def test_cli_serve_calls_worker_serve(fake_worker, tmp_path):
    name = f"fc_cli_serve_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        def make(tag):
            def app(environ, start_response):
                return [tag]
            return app
    """))
    try:
        assert cli.main(["serve", f"{name}:make(b'x')", "--threads", "4", "--no-server-header"]) == 0
    finally:
        sys.modules.pop(name, None)
    [(config, app)] = fake_worker
    assert (config.threads, config.server_header) == (4, False)
    assert app(None, None) == [b"x"]


def test_cli_serve_without_app_passes_none(fake_worker, monkeypatch):
    monkeypatch.setenv("FASTCORE_WORKERS", "3")
    assert cli.main(["serve"]) == 0
    [(config, app)] = fake_worker
    assert (config.workers, app) == (3, None)


def test_cli_bad_setting_does_not_start_the_server(fake_worker, capsys):
    assert cli.main(["serve", "--max-body", "-1"]) == 2
    assert fake_worker == []
    assert capsys.readouterr().err.count("\n") == 1
