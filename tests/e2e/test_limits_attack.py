"""Under attack: slowloris connections and a request flood from many
addresses at once, while a well-behaved client keeps being served.

Sized for a 2-core CI machine and bounded in time (about 15 s): 1,500
slowloris connections from 50 loopback addresses (127.0.0.10-59; on Linux
all of 127.0.0.0/8 is local), each holding a request head open and adding
a header line every 2 s; a flood from 20 addresses (127.0.1.1-20), one
request per connection as fast as a separate process can send them; and
one client at 127.0.0.1 asking every 100 ms, under the rate limit. The test
raises its own RLIMIT_NOFILE soft limit to the hard one if it needs more
than 2,000 descriptors (the server raises its own).
"""
import http.client
import json
import resource
import socket
import subprocess
import sys
import threading
import time

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"""

SLOWLORIS = 1500
SLOW_SOURCES = [f"127.0.0.{i}" for i in range(10, 60)]
FLOOD_SOURCES = 20
SECONDS = 10.0

# the flood, in its own process so that its clients do not take the test's GIL
FLOOD = r"""
import json, socket, sys, time
port, seconds, sources = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
counts = {}
request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
deadline = time.monotonic() + seconds
i = 0
while time.monotonic() < deadline:
    source = f"127.0.1.{1 + i % sources}"
    i += 1
    sock = socket.socket()
    sock.settimeout(5)
    try:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        head = sock.recv(4096)
        status = head[9:12].decode() if head.startswith(b"HTTP/1.1 ") else "none"
    except OSError as e:
        status = type(e).__name__
    finally:
        sock.close()
    counts[status] = counts.get(status, 0) + 1
print(json.dumps(counts))
"""


def raise_descriptor_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_limits_under_attack_a_good_client_is_always_served(serve):
    assert raise_descriptor_limit(SLOWLORIS + 500) >= SLOWLORIS + 500
    server = serve(APP, "--workers", "2", "--limit-req-rate", "20", "--limit-req-burst", "10",
                   "--limit-req-nodelay", "--limit-conn", "10", "--header-timeout", "30")
    port = server.port

    # slowloris: heads that never end
    slow = []
    try:
        for n in range(SLOWLORIS):
            sock = socket.socket()
            sock.bind((SLOW_SOURCES[n % len(SLOW_SOURCES)], 0))
            sock.settimeout(5)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        stop = threading.Event()

        def trickle():
            while not stop.wait(2.0):
                for sock in slow:
                    try:
                        sock.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle)
        trickler.start()
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(port), str(SECONDS), str(FLOOD_SOURCES)],
                                 stdout=subprocess.PIPE)
        try:
            # the well-behaved client: 10 requests a second, half the limit
            results = []
            good = socket.socket()
            good.bind(("127.0.0.1", 0))
            good.settimeout(5)
            good.connect(("127.0.0.1", port))
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.sock = good
            began = time.monotonic()
            while time.monotonic() - began < SECONDS:
                sent = time.monotonic()
                try:
                    connection.request("GET", "/")
                    response = connection.getresponse()
                    response.read()
                    results.append(response.status)
                except OSError as e:
                    results.append(repr(e))
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                time.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
            connection.close()
            out, _ = flood.communicate(timeout=15)
        finally:
            if flood.poll() is None:
                flood.kill()
                flood.wait()
            stop.set()
            trickler.join()
        counts = json.loads(out)
        closed = 0
        for sock in slow:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""  # closed by the server (nothing else is sent to a head)
            except BlockingIOError:
                pass  # still open
            except OSError:
                closed += 1
        held = SLOWLORIS - closed
    finally:
        for sock in slow:
            sock.close()

    assert len(results) >= SECONDS * 10 * 0.8, len(results)
    assert results == [200] * len(results), results
    # the flood was refused by the rate limit far more than served
    assert counts.get("429", 0) > 5 * counts.get("200", 0), counts
    assert counts.get("200", 0) > 0, counts
    # the slowloris heads were held all along (the header timeout is 30 s), and
    # cost the others nothing
    assert held == SLOWLORIS, held
