"""The static-file settings: --static locations, [[static]] tables, per-location options."""
import os

import pytest

from fastcore.config import ConfigError, StaticLocation, build_config


def write_toml(tmp_path, text):
    path = tmp_path / "fastcore.toml"
    path.write_text(text)
    return str(path)


def test_config_static_defaults():
    config = build_config({}, environ={})
    assert config.static == ()
    # autoindex unset: on only for the current directory served by itself (fastcore.worker)
    assert (config.index, config.autoindex, config.max_age, config.immutable) == ("index.html", None, None, False)
    assert (config.dotfiles, config.follow_symlinks, config.precompressed) == (False, False, True)
    assert config.static_revalidate == 1.0
    assert config.static_inline_max == 64 * 1024
    assert (config.static_cache_entries, config.static_cache_bytes, config.static_cache_fds) == (
        10000, 64 * 1024 * 1024, 1000)
    assert config.static_max_ranges == 16


def test_config_static_locations_from_flags_take_the_top_level_options(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = build_config({"static": [f"/assets/={tmp_path / 'a'}", f"/={tmp_path / 'b'}"],
                           "autoindex": True, "max_age": "1h", "index": "home.htm"}, environ={})
    first, second = config.static
    assert (first.prefix, first.root) == ("/assets", str(tmp_path / "a"))  # trailing slash dropped
    assert (second.prefix, second.root) == ("/", str(tmp_path / "b"))
    for location in config.static:
        assert (location.autoindex, location.max_age, location.index) == (True, 3600, "home.htm")
        assert location.precompressed is True


def test_config_static_root_is_made_absolute_keeping_links(tmp_path, monkeypatch):
    # the link is kept: the worker re-resolves it, so a deploy that flips it is followed
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    [location] = build_config({"static": ["/=link"]}, environ={}).static
    assert location.root == str(tmp_path / "link")


@pytest.mark.parametrize("value, expected", [
    ("nodir", "PREFIX=DIR"),
    ("assets=.", "starting with '/'"),
    ("/a/../b=.", "starting with '/'"),
    ("/x=/no/such/directory/fc", "existing directory"),
    ("/x%2f=.", "starting with '/'"),
])
def test_config_static_bad_entry_is_one_line_naming_the_setting(value, expected):
    with pytest.raises(ConfigError) as caught:
        build_config({"static": [value]}, environ={})
    message = str(caught.value)
    assert "\n" not in message and message.startswith("setting static (--static)")
    assert expected in message


def test_config_static_prefix_given_twice_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="each prefix once"):
        build_config({"static": [f"/a={tmp_path}", f"/a/={tmp_path}"]}, environ={})


def test_config_static_tables_in_the_file(tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "assets").mkdir()
    path = write_toml(tmp_path, f"""
max_age = 60
[[static]]
prefix = "/assets"
root = "{tmp_path / 'assets'}"
max_age = "365d"
immutable = true
precompressed = false
limit_rate = "1m"

[[static]]
prefix = "/"
root = "{tmp_path / 'public'}"
autoindex = true
""")
    assets, public = build_config({"config": path}, environ={}).static
    assert assets == StaticLocation("/assets", str(tmp_path / "assets"), index="index.html", autoindex=False,
                                    max_age=365 * 86400, immutable=True, dotfiles=False, follow_symlinks=False,
                                    precompressed=False, limit_rate=1 << 20, limit_rate_after=0,
                                    limit_req_rate=0.0, limit_req_burst=0,
                                    limit_req_nodelay=False, limit_conn=0, allow=(), deny=(), limit_dry_run=False)
    assert (public.autoindex, public.max_age, public.immutable) == (True, 60, False)


@pytest.mark.parametrize("table, expected", [
    ('prefix = "/a"\nroot = "{root}"\nautoindx = true', "did you mean 'autoindex'"),
    ('prefix = "/a"', "'prefix' and 'root'"),
    ('prefix = "/a"\nroot = "{root}"\nmax_age = "soon"', "max_age as a number of seconds"),
    ('prefix = "/a"\nroot = "{root}"\nindex = "a/b.html"', "index as a file name"),
])
def test_config_static_table_errors_are_one_line(tmp_path, table, expected):
    path = write_toml(tmp_path, "[[static]]\n" + table.format(root=tmp_path) + "\n")
    with pytest.raises(ConfigError) as caught:
        build_config({"config": path}, environ={})
    message = str(caught.value)
    assert "\n" not in message and "setting static" in message and expected in message


def test_config_static_from_the_environment(tmp_path):
    (tmp_path / "a").mkdir()
    config = build_config({}, environ={"FASTCORE_STATIC": f"/a={tmp_path / 'a'}, /={tmp_path}",
                                       "FASTCORE_STATIC_REVALIDATE": "0"})
    assert [location.prefix for location in config.static] == ["/a", "/"]
    assert config.static_revalidate == 0.0


@pytest.mark.parametrize("raw, seconds", [(0, 0), ("90", 90), ("90s", 90), ("10m", 600), ("12h", 43200),
                                           ("365d", 31536000)])
def test_config_max_age_units(raw, seconds):
    assert build_config({"max_age": raw}, environ={}).max_age == seconds


@pytest.mark.parametrize("name, raw", [("max_age", "-1"), ("max_age", "1y"), ("static_revalidate", "-1"),
                                       ("static_cache_entries", "0"), ("static_max_ranges", "0"),
                                       ("index", ".."), ("static_cache_fds", "many")])
def test_config_static_bad_values_name_the_setting(name, raw):
    with pytest.raises(ConfigError) as caught:
        build_config({name: raw}, environ={})
    assert f"setting {name} (" in str(caught.value) and repr(raw) in str(caught.value)
