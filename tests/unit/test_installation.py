"""fastcore.installation: the ``fastcore`` command tells when the imported
``fastcore`` package is not ours (fastai's package has the same import name).

Each test lays out what pip leaves in site-packages after installing the two
distributions in some order: a copy of our package, with fastai's
``__init__.py`` written over ours, or with ``__init__.py`` gone (theirs was
uninstalled afterwards), or whole next to fastai's metadata. The console
script's entry point (``fastcore.cli:main``) then runs from that directory.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import fastcore

# what fastai's fastcore/__init__.py holds (a version line)
FASTAI_INIT = '__version__ = "1.8.16"\n'


def site_with_our_package(tmp_path):
    """A site-packages directory holding a copy of the fastcore package under test."""
    site = tmp_path / "site-packages"
    ours = pathlib.Path(fastcore.__file__).parent
    shutil.copytree(ours, site / "fastcore", ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.html", "*.pyx"))
    return site


def run_console_script(site, *args):
    """What the `fastcore` console script does, with only `site` on the path:
    -S leaves the interpreter's own site-packages out, where a fastcore
    installed for the test run (CI's `pip install .`) would be found instead
    of a `site` copy whose __init__.py is gone (a directory without one
    loses to a regular package further down the path)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTCORE_")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-S", "-c", "import sys; from fastcore.cli import main; sys.exit(main())",
                           *args],
                          cwd=site.parent, env=env, capture_output=True, text=True, timeout=60)


def test_installation_ours_whole_says_nothing(tmp_path):
    site = site_with_our_package(tmp_path)
    result = run_console_script(site, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"fastcore {fastcore.__version__}\n", "")


def test_installation_fastai_init_over_ours_is_one_error_line(tmp_path):
    site = site_with_our_package(tmp_path)
    (site / "fastcore" / "__init__.py").write_text(FASTAI_INIT)
    for args in (["--version"], ["serve", "--bind", "127.0.0.1:0"]):
        result = run_console_script(site, *args)
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"fastcore: error: the fastcore package in {site / 'fastcore'} "
                                        f"is not fastcore-server's"), result.stderr
        assert "version 1.8.16" in result.stderr
        assert "fix: pip uninstall -y fastcore && pip install --force-reinstall --no-deps fastcore-server" \
            in result.stderr


def test_installation_init_removed_by_fastai_uninstall_is_one_error_line(tmp_path):
    site = site_with_our_package(tmp_path)
    (site / "fastcore" / "__init__.py").unlink()
    result = run_console_script(site, "--version")
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"fastcore: error: the fastcore package in {site / 'fastcore'} "
                                    f"has no __init__.py"), result.stderr
    assert "pip install --force-reinstall --no-deps fastcore-server" in result.stderr


def test_installation_fastai_installed_under_ours_is_one_warning_line(tmp_path):
    site = site_with_our_package(tmp_path)
    metadata = site / "fastcore-1.8.16.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: fastcore\nVersion: 1.8.16\n")
    result = run_console_script(site, "--version")
    assert (result.returncode, result.stdout) == (0, f"fastcore {fastcore.__version__}\n"), result
    assert result.stderr.startswith("fastcore: warning: fastai's fastcore 1.8.16 is installed in this "
                                    "environment too"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
