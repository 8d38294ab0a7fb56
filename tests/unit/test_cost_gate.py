"""The perf regression gate itself: it must fail on a slower build of a
layer and pass on the real one. The slower build is a copy of src_c with a
busy loop added to the request parser, measured by the real gate command."""
import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_gate(src_c):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "FASTCORE_COST_SRC_C": str(src_c)}
    return subprocess.run([sys.executable, "-m", "bench.cost", "--check", "--layers", "parser_c"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cost_gate_fails_on_a_slower_parser(tmp_path):
    slow = tmp_path / "src_c"
    shutil.copytree(ROOT / "src_c", slow, ignore=shutil.ignore_patterns("tests"))
    source = (slow / "fc_http.c").read_text()
    marker = "    req->error = FC_OK;\n"
    assert marker in source
    # about 10% more work per request than the real parser
    slowed = source.replace(marker, marker + "    for (volatile int spin = 0; spin < 60; ++spin) {}\n", 1)
    (slow / "fc_http.c").write_text(slowed)
    result = run_gate(slow)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SLOWER" in result.stdout and "parser_c" in result.stdout


def test_cost_gate_passes_on_the_real_parser():
    result = run_gate(ROOT / "src_c")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cost gate: passed" in result.stdout


def test_a_layer_over_tolerance_is_measured_again_and_the_lower_count_kept(monkeypatch, capsys, tmp_path):
    gate = import_gate(monkeypatch)
    baseline = {"a": 1000, "b": 1000}
    first = {"a": 1100, "b": 1000}
    asked = []

    def measure_all(names=None):
        asked.append(names)
        return dict(first) if names is None else {"a": 1010}

    monkeypatch.setattr(gate, "measure_all", measure_all)
    monkeypatch.setattr(gate, "BASELINE", _baseline_file(tmp_path, baseline))
    assert gate.main(["--check"]) == 0
    assert asked == [None, ["a"]]  # only the layer over tolerance is measured again
    assert "| a | 1,000 | 1,010 | 1.010 | ok |" in capsys.readouterr().out


def test_a_layer_over_tolerance_twice_fails(monkeypatch, capsys, tmp_path):
    gate = import_gate(monkeypatch)
    baseline = {"a": 1000}
    monkeypatch.setattr(gate, "measure_all", lambda names=None: {"a": 1100} if names is None else {"a": 1090})
    monkeypatch.setattr(gate, "BASELINE", _baseline_file(tmp_path, baseline))
    assert gate.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "| a | 1,000 | 1,090 | 1.090 | SLOWER |" in out and "FAILED" in out


def test_a_measured_run_ends_only_once_the_server_has_closed_the_connection(monkeypatch):
    """The client half-closes after its requests and returns only when the
    server has closed too, so the server is told to stop with no connection
    open (a connection still open when it stops is drained on a timer, whose
    runs made instruction counts jump). The server here takes its time to
    close after the client's end: returned earlier, the client would find
    the connection not yet closed."""
    import socket
    import threading
    import time
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.cost.measure import send_requests
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    events = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            data = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    events.append("client ended")
                    time.sleep(0.3)
                    events.append("server closed")
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    _, data = data.split(b"\r\n\r\n", 1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        send_requests(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3, b"ok")
        assert events == ["client ended", "server closed"]
    finally:
        thread.join(5)
        listener.close()


def _baseline_file(directory, layers):
    path = directory / "baseline.json"
    path.write_text(json.dumps({"commit": "test", "layers": layers}))
    return path


def import_gate(monkeypatch):
    """The gate's module, from the checkout (bench/ is not installed; it
    imports nothing of fastcore at module level, so the checkout's unbuilt
    fastcore/ cannot shadow the installed one)."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.cost import __main__ as gate
    return gate
