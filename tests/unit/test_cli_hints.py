"""fastcore.cli and fastcore.preflight for a new user: what a mistake is
told (the flag of another server, a port or a directory given as the
application), the start-up checks of paths, accounts and static roots, and
``fastcore settings --effective``. Each runs ``python -m fastcore`` in a
temporary directory and reads its one-line errors."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

APP = "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'x']\n"


def run_fastcore(tmp_path, *args, **env):
    """Runs the command to its end; one that serves instead (a regression)
    is killed with its process group, workers included, and fails the test."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FASTCORE_")}
    clean.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "fastcore", *args], cwd=tmp_path, env=clean,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"fastcore {' '.join(args)} kept running") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def error_lines(result, status=2):
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("fastcore: error: ") for line in lines), result.stderr
    return lines


# -- mistakes on the command line --------------------------------------------------


@pytest.mark.parametrize("args, hint", [
    (("--port", "8080"), "use --bind 127.0.0.1:8080"),
    (("--port=8080",), "use --bind 127.0.0.1:8080"),
    (("-p", "9000"), "use --bind 127.0.0.1:9000"),
    (("--host", "0.0.0.0", "--port", "80"), "use --bind 0.0.0.0:80"),
    (("--host", "::", "--port", "80"), "use --bind [::]:80"),
    (("--host", "0.0.0.0"), "use --bind 0.0.0.0:8000"),
    (("-p", "/run/app.pid"), "-p: use --pid"),
    (("--uds", "/tmp/app.sock"), "use --bind unix:/tmp/app.sock"),
    (("--access-logfile", "-"), "use --access-log"),
    (("--error-logfile", "e.log"), "use --error-log"),
    (("--pidfile", "app.pid"), "use --pid"),
    (("--keep-alive", "5"), "use --keepalive-timeout"),
    (("--factory",), "MODULE:create_app()"),
    (("-k", "gthread"), "--threads N|auto"),
])
def test_cli_other_servers_flags_are_told_what_to_write(tmp_path, args, hint):
    for command in ("serve", "check"):
        [line] = error_lines(run_fastcore(tmp_path, command, *args))
        assert hint in line, line
        assert "--reuse-port" not in line and "--preload" not in line


@pytest.mark.parametrize("positional, hint", [
    ("8080", "use --bind 127.0.0.1:8080"),
    ("0.0.0.0:80", "use --bind 0.0.0.0:80"),
    (":8000", "use --bind 127.0.0.1:8000"),
    ("somedir", "use --static /=somedir"),
    ("app.py", "name the application as a module: app or app:app"),
])
def test_cli_positional_that_is_no_application_is_told_what_to_write(tmp_path, positional, hint):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "app.py").write_text(APP)
    [line] = error_lines(run_fastcore(tmp_path, "serve", positional))
    assert hint in line, line
    [line] = error_lines(run_fastcore(tmp_path, "serve", "app:app", positional))
    assert hint in line, line


def test_cli_a_package_directory_is_still_an_application(tmp_path):
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "__init__.py").write_text(APP)
    result = run_fastcore(tmp_path, "check", "mysite")
    assert (result.returncode, result.stdout) == (0, "fastcore: configuration ok\n"), result.stderr
    # a module wins over a directory of the same name, as it does for import
    (tmp_path / "app").mkdir()
    (tmp_path / "app.py").write_text(APP)
    result = run_fastcore(tmp_path, "check", "app")
    assert (result.returncode, result.stdout) == (0, "fastcore: configuration ok\n"), result.stderr


# -- start-up checks (fastcore.preflight) ---------------------------------------------


def test_check_refuses_paths_in_a_missing_directory_one_line_each(tmp_path):
    lines = error_lines(run_fastcore(tmp_path, "check", "--error-log", "missing/error.log", "--pid",
                                     "missing/app.pid", "--access-log", "missing/access.log"))
    assert len(lines) == 3
    for setting, name in (("error_log", "error.log"), ("pid", "app.pid"), ("access_log", "access.log")):
        [line] = [line for line in lines if f"setting {setting}:" in line]
        assert name in line and "the directory" in line and "does not exist" in line, line


@pytest.mark.parametrize("flag", ["--error-log", "--pid", "--access-log"])
def test_serve_refuses_a_path_in_a_missing_directory_before_starting(tmp_path, flag):
    [line] = error_lines(run_fastcore(tmp_path, "serve", "--bind", "127.0.0.1:0", flag, "missing/file"))
    assert f"setting {flag[2:].replace('-', '_')}:" in line and "missing/file" in line


def test_check_and_serve_refuse_unknown_user_and_group(tmp_path):
    for command in ("check", "serve"):
        lines = error_lines(run_fastcore(tmp_path, command, "--bind", "127.0.0.1:0", "--user", "fc-no-such-user",
                                         "--group", "fc-no-such-group"))
        assert sorted(lines) == ["fastcore: error: setting group: no group 'fc-no-such-group' on this machine",
                                 "fastcore: error: setting user: no user 'fc-no-such-user' on this machine"]


def test_check_refuses_a_directory_as_a_file(tmp_path):
    (tmp_path / "logs").mkdir()
    [line] = error_lines(run_fastcore(tmp_path, "check", "--access-log", "logs"))
    assert line.endswith("it is a directory")


def test_check_refuses_a_file_its_writer_may_not_write(tmp_path):
    if os.getuid() != 0:
        log = tmp_path / "access.log"
        log.write_text("")
        os.chmod(log, 0o444)
        [line] = error_lines(run_fastcore(tmp_path, "check", "--access-log", str(log)))
        assert line == f"fastcore: error: setting access_log: cannot write {str(log)!r}: permission denied"
        return
    # root ignores permission bits; the workers, dropped to nobody, do not
    nobody = ("--user", "nobody", "--group", str(pwd.getpwnam("nobody").pw_gid))
    log = tmp_path / "access.log"  # pytest's directories are root's, mode 0700
    [line] = error_lines(run_fastcore(tmp_path, "check", "--access-log", str(log), *nobody))
    assert line.endswith(f"user nobody cannot enter {tmp_path.parent.parent}"), line
    directory = tempfile.mkdtemp(prefix="fc-preflight-", dir="/tmp")
    try:
        os.chmod(directory, 0o755)
        log = os.path.join(directory, "access.log")
        open(log, "w").close()
        os.chmod(log, 0o644)
        [line] = error_lines(run_fastcore(tmp_path, "check", "--access-log", log, *nobody))
        assert line == f"fastcore: error: setting access_log: cannot write {log!r}: user nobody may not write it"
        [line] = error_lines(run_fastcore(tmp_path, "check", "--error-log", os.path.join(directory, "new.log"),
                                          *nobody))
        assert line.endswith(f"user nobody may not create files in {directory}"), line
        os.chown(log, pwd.getpwnam("nobody").pw_uid, -1)
        result = run_fastcore(tmp_path, "check", "--access-log", log, *nobody)
        assert (result.returncode, result.stderr) == (0, "")
    finally:
        shutil.rmtree(directory)


def test_check_refuses_a_static_root_holding_the_application(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "public").mkdir()
    [line] = error_lines(run_fastcore(tmp_path, "check", "app:app", "--static", "/=."))
    assert f"application's own source {tmp_path / 'app.py'}" in line and "--static-allow-app" in line
    # a package: the whole package directory is its source
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    (tmp_path / "proj" / "wsgi.py").write_text(APP)
    [line] = error_lines(run_fastcore(tmp_path, "check", "proj.wsgi:app", "--static", "/files=proj"))
    assert f"own source {tmp_path / 'proj'};" in line
    for args in (("app:app", "--static", "/=public"), ("app:app", "--static", "/=.", "--static-allow-app"),
                 ("proj.wsgi:app", "--static", "/=public")):
        result = run_fastcore(tmp_path, "check", *args)
        assert (result.returncode, result.stderr) == (0, ""), args


# -- fastcore settings --effective ---------------------------------------------------------


def test_settings_effective_names_each_value_and_its_origin(tmp_path):
    (tmp_path / "fastcore.toml").write_text('threads = 4\nmax_body = "2m"\nworkers = 3\n')
    result = run_fastcore(tmp_path, "settings", "--effective", "--config", "fastcore.toml", "--workers", "2",
                          FASTCORE_MAX_BODY="1m")
    assert (result.returncode, result.stderr) == (0, ""), result
    lines = {line.split(" = ")[0]: line for line in result.stdout.splitlines()}
    from fastcore.config import SETTINGS
    assert list(lines) == [setting.name for setting in SETTINGS]
    def parts(name):
        value, _, origin = lines[name].partition(" = ")[2].partition("#")
        return value.strip(), origin.strip()
    assert parts("workers") == ("2", "flag --workers")                       # flag over file
    assert parts("max_body") == ("1048576", "environment FASTCORE_MAX_BODY")  # environment over file
    assert parts("threads") == ("4", "file fastcore.toml")
    assert parts("bind") == ("127.0.0.1:8000", "default")
    assert parts("config") == ("fastcore.toml", "flag --config")


def test_settings_effective_reports_a_bad_value_in_one_line(tmp_path):
    [line] = error_lines(run_fastcore(tmp_path, "settings", "--effective", "--threads", "many"))
    assert "setting threads (--threads)" in line
    [line] = error_lines(run_fastcore(tmp_path, "settings", "--threads", "2"))
    assert "--effective" in line
