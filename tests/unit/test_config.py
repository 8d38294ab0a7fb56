"""fastcore.config: the table of settings, its sources, parsers and docs."""

import dataclasses
import os
import re

import pytest

from fastcore import config as cfg
from fastcore.config import (
    SETTINGS,
    SETTINGS_BY_NAME,
    Config,
    ConfigError,
    build_config,
    load_config,
    parse_address,
    parse_bool,
    parse_duration,
    parse_size,
    read_config_file,
    settings_markdown,
)


def write_toml(tmp_path, text, name="fastcore.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- defaults --------------------------------------------------------------


def test_config_defaults_are_the_documented_ones():
    config = build_config({}, environ={})
    assert config.bind == ("127.0.0.1:8000",)
    assert config.chdir is None
    assert config.root_path == ""
    assert (config.threads, config.workers, config.backlog, config.max_connections) == ("auto", 1, 2048, 10000)
    assert (config.auto_threads, config.auto_threads_after, config.auto_threads_hold) == (64, 0.005, 30)
    assert config.accept_backoff == 0.1
    assert config.server_header is True
    assert config.config is None
    assert config.max_request_line == 8190
    assert config.max_header_bytes == 32 * 1024
    assert config.max_headers == 100
    assert config.max_body == 16 * 1024 * 1024
    assert config.max_chunk_line == 4096
    assert config.body_buffer_size == 1024 * 1024
    assert config.write_buffer_high == 256 * 1024
    assert (config.header_timeout, config.body_timeout, config.keepalive_timeout,
            config.send_timeout, config.graceful_timeout) == (20.0, 60.0, 60.0, 60.0, 30.0)
    assert config.log_level == "info"
    assert config.error_log == "-"
    assert config.access_log is None
    assert config.access_log_format == "combined"


def test_config_has_one_attribute_per_setting():
    assert [field.name for field in dataclasses.fields(Config)] == [setting.name for setting in SETTINGS]


def test_config_is_frozen_and_instances_share_nothing():
    first = build_config({"bind": ["127.0.0.1:1"]}, environ={})
    second = build_config({}, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.threads = 4
    assert isinstance(first.bind, tuple)
    assert first.bind != second.bind
    for field in dataclasses.fields(Config):
        assert field.default is dataclasses.MISSING and not hasattr(Config, field.name)


def test_config_table_names_and_derived_keys():
    for setting in SETTINGS:
        assert setting.env == "FASTCORE_" + setting.name.upper()
        assert setting.toml_key == setting.name
        assert any(flag == "--" + setting.name.replace("_", "-") for flag in setting.flags)


# --- precedence ------------------------------------------------------------

PRECEDENCE_CASES = [
    # setting, file literal, env, cli, (file, env, cli) results
    ("threads", "2", "3", "4", (2, 3, 4)),
    ("max_body", '"1m"', "2k", "3", (1 << 20, 2048, 3)),
    ("server_header", "false", "on", False, (False, True, False)),
    ("bind", '["127.0.0.1:1"]', "127.0.0.1:2,[::1]:3", ["unix:/tmp/fc.sock"],
     (("127.0.0.1:1",), ("127.0.0.1:2", "[::1]:3"), ("unix:/tmp/fc.sock",))),
    ("keepalive_timeout", "1.5", "500ms", "2m", (1.5, 0.5, 120.0)),
]


@pytest.mark.parametrize("name, file_value, env_value, cli_value, expected", PRECEDENCE_CASES)
def test_config_precedence_cli_env_file_default(tmp_path, name, file_value, env_value, cli_value, expected):
    setting = SETTINGS_BY_NAME[name]
    path = write_toml(tmp_path, f"{name} = {file_value}\n")
    env = {setting.env: env_value}
    from_file, from_env, from_cli = expected
    default = getattr(build_config({}, environ={}), name)
    assert default != from_file and from_env != from_file and from_cli != from_env

    assert getattr(build_config({"config": path}, environ={}), name) == from_file
    assert getattr(build_config({"config": path}, environ=env), name) == from_env
    assert getattr(build_config({"config": path, name: cli_value}, environ=env), name) == from_cli
    assert getattr(build_config({name: cli_value}, environ={}), name) == from_cli
    assert getattr(build_config({}, environ=env), name) == from_env


def test_config_file_path_from_environment(tmp_path):
    path = write_toml(tmp_path, "workers = 3\n")
    assert build_config({}, environ={"FASTCORE_CONFIG": path}).workers == 3


def test_config_command_line_config_beats_environment_config(tmp_path):
    chosen = write_toml(tmp_path, "workers = 3\n", "a.toml")
    ignored = write_toml(tmp_path, "workers = 5\n", "b.toml")
    config = build_config({"config": chosen}, environ={"FASTCORE_CONFIG": ignored})
    assert (config.workers, config.config) == (3, chosen)


def test_config_load_config_parses_flags():
    config = load_config(["--threads", "8", "-b", "0.0.0.0:80", "--bind", "unix:/tmp/a.sock",
                          "--no-server-header", "--max-body", "2m", "--workers", "auto"], environ={})
    assert config.threads == 8
    assert config.bind == ("0.0.0.0:80", "unix:/tmp/a.sock")
    assert config.server_header is False
    assert config.max_body == 2 << 20
    assert config.workers >= 1
    assert load_config(["--server-header"], environ={"FASTCORE_SERVER_HEADER": "no"}).server_header is True


def test_config_unset_flags_leave_room_for_environment():
    assert load_config([], environ={"FASTCORE_THREADS": "6"}).threads == 6


# --- the file --------------------------------------------------------------


def test_config_file_unknown_key_is_an_error(tmp_path):
    path = write_toml(tmp_path, "threads = 2\nthread = 3\n")
    with pytest.raises(ConfigError) as caught:
        build_config({"config": path}, environ={})
    message = str(caught.value)
    assert "\n" not in message
    assert "'thread'" in message and path in message and "did you mean 'threads'" in message


def test_config_file_table_is_an_unknown_key(tmp_path):
    path = write_toml(tmp_path, "[server]\nthreads = 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'server' \(settings are top-level keys"):
        read_config_file(path)


def test_config_file_may_not_name_another_config(tmp_path):
    path = write_toml(tmp_path, 'config = "other.toml"\n')
    with pytest.raises(ConfigError, match=r"setting 'config' is not allowed in a config file"):
        build_config({"config": path}, environ={})


def test_config_file_invalid_toml_is_one_line(tmp_path):
    path = write_toml(tmp_path, "threads = = 2\n")
    with pytest.raises(ConfigError) as caught:
        build_config({"config": path}, environ={})
    assert "\n" not in str(caught.value)
    assert "invalid TOML" in str(caught.value) and path in str(caught.value)


def test_config_file_missing_names_its_origin(tmp_path):
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as caught:
        build_config({}, environ={"FASTCORE_CONFIG": missing})
    assert str(caught.value) == f"setting config (FASTCORE_CONFIG): cannot read {missing!r}: No such file or directory"


def test_config_file_bad_value_names_file_and_key(tmp_path):
    path = write_toml(tmp_path, "threads = 0\n")
    with pytest.raises(ConfigError) as caught:
        build_config({"config": path}, environ={})
    assert str(caught.value) == f"setting threads (key threads in {path}): expected an integer >= 1 or 'auto', got 0"


# --- every validator rejects ----------------------------------------------

BAD_VALUES = {
    "bind": ["nohost", "127.0.0.1", ":8000", "127.0.0.1:65536", "127.0.0.1:-1", "::1:80", "[::1]",
             "[nope]:80", "1.2.3.999:80", "bad_host!:80", "unix:", "unix:/" + "x" * 200,
             "127.0.0.1:80,127.0.0.1:80", ""],
    "chdir": ["/definitely/not/a/dir", ""],
    "root_path": ["app", "/app/", "/"],
    "threads": ["abc", "0", "-1", "1.5", "", "autox"],
    "interface": ["asgi3", "", "WSGI2"],
    "lifespan": ["yes", "", "1"],
    "asyncio_loop": ["trio", ""],
    "lifespan_timeout": ["-1", "abc", ""],
    "ws_max_size": ["0", "-1", "lots", ""],
    "ws_ping_interval": ["-1", "often", ""],
    "ws_ping_timeout": ["0", "-1", "x"],
    "ws_per_message_deflate": ["maybe", "2", ""],
    "auto_threads": ["1", "0", "many"],
    "auto_threads_after": ["0", "-1s", "soon"],
    "auto_threads_hold": ["0", "-1s"],
    "accept_backoff": ["0", "-1", "x"],
    "proxy": ["/api", "api=127.0.0.1:80", "/api=", "/api=127.0.0.1", "/api=127.0.0.1:99999", "/api=[nope]:80",
              "/a=127.0.0.1:80 /a=127.0.0.1:81", "/x=bad_host!:80"],
    "proxy_balance": ["roundrobin", "random", ""],
    "proxy_hash_key": ["ip", "header:", "header:bad name"],
    "proxy_host": ["", "a b", "x\r\ny"],
    "proxy_connect_timeout": ["0", "-1s", "soon"],
    "proxy_read_timeout": ["0", "x"],
    "proxy_send_timeout": ["0", "x"],
    "proxy_retries": ["-1", "many"],
    "proxy_keepalive": ["-1", "x"],
    "proxy_keepalive_requests": ["0", "x"],
    "proxy_keepalive_idle": ["0", "x"],
    "proxy_max_fails": ["-1", "x"],
    "proxy_fail_timeout": ["0", "x"],
    "proxy_slow_start": ["-1", "x"],
    "proxy_panic": ["none", ""],
    "proxy_health_path": ["health", "/a b"],
    "proxy_health_interval": ["0", "x"],
    "proxy_health_timeout": ["0", "x"],
    "proxy_health_status": ["2xx", "200-", "ok"],
    "proxy_health_rise": ["0", "x"],
    "proxy_health_fall": ["0", "x"],
    "proxy_resolve_interval": ["0", "x"],
    "proxy_websocket": ["maybe"],
    "proxy_forwarded": ["maybe"],
    "proxy_via": ["maybe"],
    "proxy_strip_prefix": ["sometimes"],
    "proxy_tls_verify": ["maybe"],
    "proxy_tls_ca_certs": [""],
    "proxy_tls_certfile": [""],
    "proxy_tls_keyfile": [""],
    "proxy_tls_server_name": ["a b", "-bad.example", "a..b"],
    "forwarded_allow_ips": ["10.0.0.0/33", "nope"],
    "resolver": ["dns.example:53", "127.0.0.1", "127.0.0.1:0"],
    "tunnel_idle_timeout": ["0", "x"],
    "workers": ["0", "many", "2.0"],
    "backlog": ["0", "x"],
    "max_connections": ["0", "ten"],
    "server_header": ["maybe", "2", ""],
    "config": [""],
    "max_request_line": ["0", "8x", "-5"],
    "max_header_bytes": ["0", "1.5k", "32kb"],
    "max_headers": ["0", "lots"],
    "max_body": ["-1", "16mb", "1t"],
    "max_chunk_line": ["0", "k"],
    "body_buffer_size": ["-1", "big"],
    "write_buffer_high": ["0", "256 kib"],
    "read_buffer_size": ["100", "16q"],
    "limit_rate": ["-1", "1mb/s", "fast"],
    "limit_rate_after": ["-1", "1.5m"],
    "max_pending": ["0", "-1", "many"],
    "min_body_rate": ["-1", "slow"],
    "min_body_rate_grace": ["0", "x"],
    "header_timeout": ["0", "-1", "abc", "nan", "inf", "1h", ""],
    "body_timeout": ["0", "x"],
    "keepalive_timeout": ["0ms", "-5s"],
    "send_timeout": ["0", "forever"],
    "graceful_timeout": ["0", "99999999999"],
    "linger_timeout": ["-1", "soon"],
    "graceful_idle_timeout": ["0", "x"],
    "timeout": ["0", "forever"],
    "reuse_port": ["maybe"],
    "preload": ["2"],
    "reload": ["always"],
    "max_requests": ["-1", "many"],
    "max_requests_jitter": ["-5"],
    "pid": [""],
    "user": [""],
    "group": [""],
    "admin": ["unix:/tmp/a.sock", "nohost"],
    "admin_allow_remote": ["perhaps"],
    "log_level": ["verbose", ""],
    "error_log": [""],
    "access_log": [""],
    "access_log_format": ["xml", ""],
    "static": ["nodir", "assets=.", "/x=/definitely/not/a/dir", "/a/../b=.", "/a b=."],
    "index": ["", "a/b", ".."],
    "autoindex": ["sometimes"],
    "max_age": ["-1", "1y", "soon"],
    "immutable": ["2"],
    "dotfiles": ["hidden"],
    "follow_symlinks": ["x"],
    "precompressed": ["gzip"],
    "static_revalidate": ["-1", "often"],
    "static_inline_max": ["-1", "64kb"],
    "static_cache_entries": ["0", "all"],
    "static_cache_bytes": ["-1", "lots"],
    "static_cache_fds": ["0", "x"],
    "static_max_ranges": ["0", "-3", "65"],
    "autoindex_max_entries": ["0", "all"],
    "etag_inode": ["inode"],
    "middleware": ["module_only", "x:Y(1)", "x:Y(level=open(1))"],
    "static_allow_app": ["maybe"],
    "refusal_log_rate": ["-1", "many"],
    "real_ip_header": ["X-Client-IP", "", "forwarded-for"],
    "limit_req_rate": ["-1", "fast", "0.0001", "2000000", "nan", "inf"],
    "limit_req_burst": ["-1", "1.5", "2000001"],
    "limit_req_nodelay": ["sometimes"],
    "limit_conn": ["-1", "many", "1000001"],
    "allow": ["10.0.0.0/33", "nope", "1.2.3.4:80"],
    "deny": ["300.1.1.1", "everyone"],
    "limit_dry_run": ["perhaps"],
    "limit_table_entries": ["63", "0", "lots"],
    "certfile": [""],
    "keyfile": [""],
    "bind_tls": ["localhost", "1.2.3.4:99999"],
    "ca_certs": [""],
    "cert_reqs": ["yes", "require"],
    "ssl_min_version": ["1.1", "1.0", "TLSv1", "2"],
    "ciphers": [""],
    "tls": ["example.com", "=c.pem:k.pem", "bad name!=c.pem:k.pem", "a.example=c.pem"],
    "https_redirect": ["maybe"],
    "ssl_ticket_rotate": ["0", "-1", "hourly"],
    "ssl_stapling": ["sometimes"],
    "ssl_ktls": ["kernel"],
    "ssl_stapling_file": [""],
    "ssl_stapling_responder": ["https://ocsp.example/", "ocsp.example", "http://", "http://h:99999/", "ftp://h/"],
    "ssl_stapling_timeout": ["0", "-1", "soon"],
    "ssl_stapling_refresh": ["0", "-5", "hourly"],
}


def test_config_every_setting_has_bad_values_under_test():
    assert set(BAD_VALUES) == set(SETTINGS_BY_NAME)


@pytest.mark.parametrize("name, bad", [(name, bad) for name, values in BAD_VALUES.items() for bad in values])
def test_config_rejects_bad_value_from_flag_and_env(name, bad, tmp_path):
    setting = SETTINGS_BY_NAME[name]
    given = [bad] if setting.kind == "list" else bad
    for source, kwargs in ((setting.flags[0], {"cli": {name: given}, "environ": {}}),
                           (setting.env, {"cli": {}, "environ": {setting.env: bad}})):
        with pytest.raises(ConfigError) as caught:
            build_config(**kwargs)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"setting {name} ({source}): ")
        # The value, or the offending item of a list, is quoted as given.
        assert re.search(r", got '.*'$|: cannot read", message), message
        if setting.kind != "list" and name != "config":
            assert message.endswith(f"got {bad!r}"), message


@pytest.mark.parametrize("name, toml_value", [
    ("threads", "true"),  # a TOML boolean is not an integer
    ("max_body", "1.5"),
    ("header_timeout", "false"),
    ("server_header", "1"),
    ("bind", "8000"),
    ("log_level", "3"),
])
def test_config_rejects_wrong_toml_type(tmp_path, name, toml_value):
    path = write_toml(tmp_path, f"{name} = {toml_value}\n")
    with pytest.raises(ConfigError) as caught:
        build_config({"config": path}, environ={})
    assert str(caught.value).startswith(f"setting {name} (key {name} in {path}): expected ")


def test_config_error_truncates_long_values():
    with pytest.raises(ConfigError) as caught:
        build_config({"threads": "9" * 500 + "x"}, environ={})
    message = str(caught.value)
    assert len(message) < 200 and message.endswith("999...'")


# --- parsers ---------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("4096", 4096), (4096, 4096), ("0", 0), ("64k", 65536), ("64K", 65536), ("16m", 16 << 20),
    ("16M", 16 << 20), ("1g", 1 << 30), (" 2k ", 2048),
])
def test_config_parse_size_accepts(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["1.5m", "-1", "16mb", "", "m", True, 1.0, "1 t", str(1 << 64), None])
def test_config_parse_size_rejects(text):
    with pytest.raises(cfg._Invalid):
        parse_size(text)


@pytest.mark.parametrize("text, expected", [
    ("20", 20.0), (20, 20.0), (1.5, 1.5), ("1.5", 1.5), ("20s", 20.0), ("500ms", 0.5), ("2m", 120.0),
    (".25s", 0.25), ("3.", 3.0), ("10MS", 0.01),
])
def test_config_parse_duration_accepts(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0", 0, -1, "-1s", "abc", "nan", "inf", float("inf"), float("nan"),
                                  True, "1h", "", "1e3", "s"])
def test_config_parse_duration_rejects(text):
    with pytest.raises(cfg._Invalid):
        parse_duration(text)


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True), (True, True),
    ("false", False), ("0", False), ("no", False), ("OFF", False), (False, False),
])
def test_config_parse_bool_accepts(text, expected):
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", ["maybe", "", "2", 1, 0, None, "y"])
def test_config_parse_bool_rejects(text):
    with pytest.raises(cfg._Invalid):
        parse_bool(text)


def test_config_parse_address_forms():
    assert parse_address("127.0.0.1:8000") == cfg.Address("inet", "127.0.0.1", 8000)
    assert parse_address("localhost:0") == cfg.Address("inet", "localhost", 0)
    assert parse_address("[::1]:65535") == cfg.Address("inet6", "::1", 65535)
    assert parse_address("unix:/run/fc.sock") == cfg.Address("unix", path="/run/fc.sock")


def test_config_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site").mkdir()
    config = build_config({"chdir": "site", "error_log": "err.log", "bind": ["unix:fc.sock"]}, environ={})
    assert config.chdir == str(tmp_path / "site")
    assert config.error_log == str(tmp_path / "err.log")
    assert config.bind == ("unix:" + str(tmp_path / "fc.sock"),)


def test_config_choices_are_case_insensitive():
    config = build_config({"log_level": "WARNING", "access_log_format": "Json"}, environ={})
    assert (config.log_level, config.access_log_format) == ("warning", "json")


def test_config_workers_auto_is_a_count():
    workers = build_config({}, environ={"FASTCORE_WORKERS": "auto"}).workers
    assert isinstance(workers, int) and 1 <= workers <= (os.cpu_count() or 1)


# --- docs ------------------------------------------------------------------


def test_config_markdown_has_one_row_per_setting_in_section_order():
    lines = settings_markdown().splitlines()
    assert lines[0] == "| setting | CLI flag | env var | default | description |"
    rows = [line for line in lines[2:] if not line.startswith("| **")]
    assert [row.split("|")[1].strip() for row in rows] == [f"`{s.name}`" for s in SETTINGS]
    sections = [line.split("**")[1] for line in lines if line.startswith("| **")]
    assert sections == [s for s in cfg.SECTIONS if any(x.section == s for x in SETTINGS)]
    for setting, row in zip(SETTINGS, rows):
        assert row.count(" | ") == 4, row
        assert f"`{setting.env}`" in row and f"`{setting.flags[0]}`" in row and setting.help in row
    assert settings_markdown().endswith("|\n")


def test_config_markdown_module_entry_point(capsys):
    assert cfg._main(["--markdown"]) == 0
    assert capsys.readouterr().out == settings_markdown()


def test_config_proxy_locations_from_flags_and_tables(tmp_path):
    path = tmp_path / "fastcore.toml"
    path.write_text("""
proxy_read_timeout = "5s"
[[proxy]]
prefix = "/api"
name = "api"
servers = [{ address = "10.0.0.2:8000", weight = 3, backup = false, max_conns = 10 }, "unix:/run/a.sock"]
balance = "hash"
hash_key = "header:X-User"
retries = 0
""")
    config = build_config({"config": str(path), "proxy": ["/x=127.0.0.1:9000,[::1]:9001,backend.svc:80"]}, environ={})
    assert [location.prefix for location in config.proxy] == ["/x"]  # the flag wins over the file
    config = build_config({"config": str(path)}, environ={})
    (api,) = config.proxy
    assert (api.pool_name, api.balance, api.hash_key, api.retries, api.read_timeout) == ("api", "hash", "header:X-User",
                                                                                        0, 5.0)
    assert [(s.address, s.weight, s.max_conns, s.is_name) for s in api.servers] == [
        ("10.0.0.2:8000", 3, 10, False), ("unix:/run/a.sock", 1, 0, False)]
    (x,) = build_config({"proxy": ["/x=backend.svc:80"]}, environ={}).proxy
    assert x.servers[0].is_name and x.pool_name == "/x" and x.balance == "round_robin"


def test_config_proxy_https_servers_and_tls_options(tmp_path):
    path = tmp_path / "fastcore.toml"
    path.write_text("""
proxy_tls_ca_certs = "ca.pem"
[[proxy]]
prefix = "/api"
servers = ["https://10.0.0.2:8443", "http://10.0.0.3:8000", { address = "https://[::1]:8443", weight = 2 },
           "https://backend.svc:443"]
tls_verify = false
tls_server_name = "API.Example.com"
[[proxy]]
prefix = "/other"
servers = ["https://10.0.0.4:443"]
tls_ca_certs = "/etc/other-ca.pem"
""")
    api, other = build_config({"config": str(path)}, environ={}).proxy
    assert [(s.address, s.is_name) for s in api.servers] == [
        ("https://10.0.0.2:8443", False), ("10.0.0.3:8000", False), ("https://[::1]:8443", False),
        ("https://backend.svc:443", True)]
    assert (api.tls_verify, api.tls_server_name, api.tls_ca_certs) == (False, "api.example.com", os.path.abspath("ca.pem"))
    assert (other.tls_verify, other.tls_server_name, other.tls_ca_certs) == (True, None, "/etc/other-ca.pem")
    for bad in ("https://unix:/run/a.sock", "https://10.0.0.2", "ftp://10.0.0.2:21", "https://https://a:1"):
        with pytest.raises(ConfigError, match="setting proxy"):
            build_config({"proxy": [f"/x={bad}"]}, environ={})
    with pytest.raises(ConfigError, match="setting proxy_tls_certfile .*needs proxy_tls_keyfile"):
        build_config({"proxy": ["/x=https://10.0.0.2:443"], "proxy_tls_certfile": "client.pem"}, environ={})


def test_config_limit_rate_per_location_defaults_to_the_top_level(tmp_path):
    (tmp_path / "files").mkdir()
    path = tmp_path / "fastcore.toml"
    path.write_text(f"""
limit_rate = "2m"
limit_rate_after = "1m"
[[proxy]]
prefix = "/api"
servers = ["127.0.0.1:9000"]
limit_rate = "512k"
[[proxy]]
prefix = "/other"
servers = ["127.0.0.1:9001"]
limit_rate_after = 0
[[static]]
prefix = "/files"
root = "{tmp_path / 'files'}"
limit_rate = 0
""")
    config = build_config({"config": str(path)}, environ={})
    assert (config.limit_rate, config.limit_rate_after) == (2 << 20, 1 << 20)
    api, other = config.proxy
    assert (api.limit_rate, api.limit_rate_after) == (512 << 10, 1 << 20)
    assert (other.limit_rate, other.limit_rate_after) == (2 << 20, 0)
    (files,) = config.static
    assert (files.limit_rate, files.limit_rate_after) == (0, 1 << 20)
    path.write_text('[[proxy]]\nprefix = "/"\nservers = ["127.0.0.1:80"]\nlimit_rate = "fast"\n')
    with pytest.raises(ConfigError) as caught:
        build_config({"config": str(path)}, environ={})
    message = str(caught.value)
    assert "\n" not in message and "limit_rate" in message and "'fast'" in message


def test_config_proxy_hash_needs_a_key_and_tables_refuse_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="balance hash needs hash_key"):
        build_config({"proxy": ["/=127.0.0.1:80"], "proxy_balance": "hash"}, environ={})
    path = tmp_path / "fastcore.toml"
    path.write_text('[[proxy]]\nprefix = "/"\nservers = ["127.0.0.1:80"]\nretrys = 2\n')
    with pytest.raises(ConfigError, match="did you mean 'retries'"):
        build_config({"config": str(path)}, environ={})


# --- TLS ---------------------------------------------------------------------


def test_config_tls_bind_rule():
    plain = build_config({"bind": ["127.0.0.1:80"]}, environ={})
    assert cfg.listeners(plain) == (("127.0.0.1:80", False),)
    every = build_config({"bind": ["0.0.0.0:443"], "certfile": "c.pem", "keyfile": "k.pem"}, environ={})
    assert cfg.listeners(every) == (("0.0.0.0:443", True),)
    assert every.certfile == os.path.abspath("c.pem") and every.ssl_min_version == "1.2"
    both = build_config({"bind": ["0.0.0.0:80"], "bind_tls": ["0.0.0.0:443"], "certfile": "c.pem",
                         "keyfile": "k.pem", "https_redirect": True}, environ={})
    assert cfg.listeners(both) == (("0.0.0.0:80", False), ("0.0.0.0:443", True))
    alone = build_config({"bind_tls": ["0.0.0.0:443"], "certfile": "c.pem", "keyfile": "k.pem"}, environ={})
    assert cfg.listeners(alone) == (("0.0.0.0:443", True),)  # no default plain address beside it


def test_config_tls_tables_from_flag_environment_and_file(tmp_path):
    flag = build_config({"certfile": "c.pem", "keyfile": "k.pem",
                         "tls": ["API.example.com,www.example.com=/a.pem:/a.key"]}, environ={})
    assert flag.tls == (cfg.TLSCertificate(("api.example.com", "www.example.com"), "/a.pem", "/a.key"),)
    env = build_config({}, environ={"FASTCORE_CERTFILE": "c.pem", "FASTCORE_KEYFILE": "k.pem",
                                    "FASTCORE_TLS": "a.test=/a.pem:/a.key; *.b.test=/b.pem:/b.key",
                                    "FASTCORE_SSL_MIN_VERSION": "TLSv1.3", "FASTCORE_CERT_REQS": "optional",
                                    "FASTCORE_CA_CERTS": "ca.pem"})
    assert [t.server_names for t in env.tls] == [("a.test",), ("*.b.test",)]
    assert (env.ssl_min_version, env.cert_reqs) == ("1.3", "optional")
    path = tmp_path / "fastcore.toml"
    path.write_text('certfile = "c.pem"\nkeyfile = "k.pem"\n[[tls]]\nserver_names = ["a.test"]\n'
                    'certfile = "/a.pem"\nkeyfile = "/a.key"\n')
    assert build_config({"config": str(path)}, environ={}).tls[0].certfile == "/a.pem"
    path.write_text('certfile = "c.pem"\nkeyfile = "k.pem"\n[[tls]]\nserver_names = ["a.test"]\n'
                    'certfile = "/a.pem"\nkeyfile = "/a.key"\nstapling_file = "/a.der"\n')
    assert build_config({"config": str(path)}, environ={}).tls[0].stapling_file == "/a.der"
    path.write_text('certfile = "c.pem"\nkeyfile = "k.pem"\n[[tls]]\nserver_names = ["a.test"]\n'
                    'certfile = "/a.pem"\nkeyfile = "/a.key"\nstapling = "/a.der"\n')
    with pytest.raises(ConfigError, match="unknown key 'stapling'"):
        build_config({"config": str(path)}, environ={})


@pytest.mark.parametrize("values, message", [
    ({"keyfile": "k.pem"}, "setting keyfile: given without certfile"),
    ({"certfile": "c.pem"}, "needs keyfile"),
    ({"bind_tls": ["127.0.0.1:443"]}, "setting bind_tls: needs certfile and keyfile"),
    ({"cert_reqs": "required", "certfile": "c.pem", "keyfile": "k.pem"}, "needs ca_certs"),
    ({"certfile": "c.pem", "keyfile": "k.pem", "bind": ["127.0.0.1:443"], "bind_tls": ["127.0.0.1:443"]},
     "127.0.0.1:443 is also in bind"),
    ({"certfile": "c.pem", "keyfile": "k.pem", "https_redirect": True}, "setting https_redirect: needs plain"),
    ({"ssl_stapling": True}, "setting ssl_stapling: needs certfile and keyfile"),
    ({"ssl_stapling_file": "/r.der"}, "setting ssl_stapling_file: needs certfile and keyfile"),
    ({"certfile": "c.pem", "keyfile": "k.pem",
      "tls": ["a.test=/a.pem:/a.key", "A.test=/b.pem:/b.key"]}, "each server name in one [[tls]] table"),
])
def test_config_tls_settings_that_go_together(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(values, environ={})
