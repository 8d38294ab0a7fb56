"""Under attack: slowloris connections and a request flood from many
addresses at once, while a well-behaved client keeps being served.

The issue's sizes, bounded in time: 2,000 slowloris connections from 50
loopback addresses (127.0.0.10-59; on Linux all of 127.0.0.0/8 is local),
each holding a request head open and adding a header line every 2 s; a
flood of 50,000 requests from 200 addresses (127.0.1.1-200), one request
per connection, from a process of its own; and four clients at
127.0.0.1-4 asking every 100 ms, under the rate limit, whose p99 latency must
stay within 5x of its own p99 before the attack. The test raises its own
RLIMIT_NOFILE soft limit to the hard one if it needs more descriptors (the
server raises its own).
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

SLOWLORIS = 2000
SLOW_SOURCES = [f"127.0.0.{i}" for i in range(10, 60)]
FLOOD_SOURCES = 200
FLOOD_REQUESTS = 50000
FLOOD_PROCESSES = 1
GOOD_CLIENTS = 4
SECONDS = 60.0  # at most: the flood ends once its 50,000 requests are answered

# the flood, in its own process so that its clients do not take the test's GIL
FLOOD = r"""
import json, socket, sys, time
port, seconds, sources, requests, first = (int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]),
                                           int(sys.argv[4]), int(sys.argv[5]))
counts = {}
request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
deadline = time.monotonic() + seconds
i = first
sent = 0
while sent < requests and time.monotonic() < deadline:
    source = f"127.0.1.{1 + i % sources}"
    i += 1
    sent += 1
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


def p99(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class GoodClient:
    """One keep-alive client asking every 100 ms from its own address: the
    statuses and the latency of each answer."""

    def __init__(self, port, source="127.0.0.1"):
        self.port = port
        self.source = source
        self.connection = self.connect()

    def connect(self):
        sock = socket.socket()
        sock.bind((self.source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.port))
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.sock = sock
        return connection

    def run(self, until):
        results, latencies = [], []
        while not until():
            sent = time.monotonic()
            try:
                self.connection.request("GET", "/")
                response = self.connection.getresponse()
                response.read()
                results.append(response.status)
                latencies.append(time.monotonic() - sent)
            except OSError as e:
                results.append(repr(e))
                self.connection.close()
                self.connection = self.connect()
            time.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
        return results, latencies


def test_limits_under_attack_a_good_client_is_always_served(serve):
    assert raise_descriptor_limit(SLOWLORIS + 500) >= SLOWLORIS + 500
    server = serve(APP, "--workers", "2", "--limit-req-rate", "20", "--limit-req-burst", "10",
                   "--limit-req-nodelay", "--limit-conn", "10", "--header-timeout", "90")
    port = server.port
    # well-behaved clients, each at half the rate limit from an address of
    # its own: enough answers for a p99 that is not simply the worst one
    good = [GoodClient(port, f"127.0.0.{n}") for n in range(1, 1 + GOOD_CLIENTS)]

    def run_good(until):
        outcomes = [None] * len(good)

        def one(k):
            outcomes[k] = good[k].run(until)

        threads = [threading.Thread(target=one, args=(k,)) for k in range(len(good))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [r for results, _ in outcomes for r in results], [t for _, times in outcomes for t in times]

    # unloaded: the same clients for 5 s before the attack
    began = time.monotonic()
    quiet_results, quiet_latencies = run_good(lambda: time.monotonic() - began > 5.0)
    assert quiet_results == [200] * len(quiet_results), quiet_results

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
        share = FLOOD_REQUESTS // FLOOD_PROCESSES
        floods = [subprocess.Popen([sys.executable, "-c", FLOOD, str(port), str(SECONDS), str(FLOOD_SOURCES),
                                    str(share), str(k * 7)], stdout=subprocess.PIPE)
                  for k in range(FLOOD_PROCESSES)]
        try:
            began = time.monotonic()
            results, latencies = run_good(
                lambda: all(f.poll() is not None for f in floods) or time.monotonic() - began > SECONDS)
            flood_seconds = time.monotonic() - began
            for client in good:
                client.connection.close()
            outputs = [f.communicate(timeout=30)[0] for f in floods]
        finally:
            for flood in floods:
                if flood.poll() is None:
                    flood.kill()
                    flood.wait()
            stop.set()
            trickler.join()
        counts = {}
        for out in outputs:
            for status, n in json.loads(out).items():
                counts[status] = counts.get(status, 0) + n
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

    assert sum(counts.values()) == FLOOD_REQUESTS, counts  # the whole flood was sent, within SECONDS
    assert len(results) >= 100, len(results)
    assert results == [200] * len(results), results
    # its latency under attack: p99 within 5x of its own unloaded p99
    assert p99(latencies) <= 5 * p99(quiet_latencies), (p99(latencies), p99(quiet_latencies))
    # every flood request was answered, 200 or 429: none lost, none failed
    assert set(counts) <= {"200", "429"}, counts
    # each of the 200 addresses got at most its rate (20 a second) and its
    # burst (10) through, and the rest were refused
    allowed = FLOOD_SOURCES * (20 * flood_seconds + 10 + 1)
    assert 0 < counts.get("200", 0) <= allowed, (counts, flood_seconds, allowed)
    assert counts.get("429", 0) >= FLOOD_REQUESTS - allowed, (counts, flood_seconds)
    # the slowloris heads were held all along (the header timeout is 90 s), and
    # cost the others nothing
    assert held == SLOWLORIS, held
