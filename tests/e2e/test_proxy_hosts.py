"""The proxy in front of upstreams that are separate hosts: each upstream
runs in its own network namespace, reached over a veth pair with its own
address, as machines on a network are. What loopback cannot show: every
server on the same port of its own address, and a host that vanishes from
the network (its link down: packets dropped, no reset), which only the
connect and read timeouts can notice.

Needs root (network namespaces); skipped with the reason where the kernel
or the user refuses them. CI runs as root."""
import collections
import itertools
import json
import os
import pathlib
import select
import subprocess
import sys
import time
import urllib.request

import pytest
import requests

HERE = pathlib.Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream_server.py"
PORT = 8000  # the same on every host, as on real machines
FIXTURE_SERIAL = itertools.count()


def run(*command):
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=10)


class Host:
    """A network namespace joined to ours by a veth pair: we are .1, it is .2."""

    def __init__(self, tag, index, subnet):
        self.namespace = f"fc{tag}h{index}"
        self.link = f"fc{tag}v{index}"  # our end (15 characters at most)
        self.address = f"10.{subnet}.{index}.2"
        self.ours = f"10.{subnet}.{index}.1"
        self.proc = None
        self.made = False

    def make(self):
        run("ip", "netns", "add", self.namespace)
        self.made = True
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.namespace)
        run("ip", "addr", "add", f"{self.ours}/24", "dev", self.link)
        run("ip", "link", "set", self.link, "up")
        run("ip", "-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", "eth0")
        run("ip", "-n", self.namespace, "link", "set", "eth0", "up")
        run("ip", "-n", self.namespace, "link", "set", "lo", "up")

    def start(self, name, directory):
        """upstream_server.py NAME on ADDRESS:PORT inside the namespace
        (`ip netns exec` execs it: the PID is the server's)."""
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.namespace, sys.executable, str(UPSTREAM), name,
                                      f"{self.address}:{PORT}"], cwd=directory, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready and self.proc.stdout.readline() == b"ready\n", f"upstream {name} did not start"

    def link_down(self):
        run("ip", "link", "set", self.link, "down")

    def link_up(self):
        run("ip", "link", "set", self.link, "up")

    def remove(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
        if self.made:
            # our end first: deleting it deletes its peer at once, where a
            # namespace's deletion tears its devices down later, in the
            # background (the next test's names and addresses are new anyway)
            for command in (["ip", "link", "delete", self.link], ["ip", "netns", "delete", self.namespace]):
                subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)


@pytest.fixture
def hosts(tmp_path):
    """hosts(*names) -> [Host], each running upstream_server.py NAME."""
    made = []
    # names and a subnet of this test's own: a namespace deleted by the test
    # before may still be going away (links are 15 characters at most)
    serial = next(FIXTURE_SERIAL)
    tag = f"{os.getpid() % 100000}{serial % 100}"
    subnet = 100 + (os.getpid() + serial) % 150

    def make(*names):
        out = []
        for name in names:
            host = Host(tag, len(made), subnet)
            made.append(host)
            try:
                host.make()
            except (OSError, subprocess.CalledProcessError) as error:
                detail = getattr(error, "stderr", b"") or b""
                if isinstance(error, FileNotFoundError) or b"Operation not permitted" in detail or \
                        b"Permission denied" in detail:
                    pytest.skip(f"network namespaces refused here: {detail.decode(errors='replace').strip() or error}")
                raise
            host.start(name, tmp_path)
            out.append(host)
        return out

    yield make
    for host in made:
        host.remove()


@pytest.fixture
def proxy(tmp_path, serve_files):
    def start(*args):
        directory = tmp_path / "proxy"
        directory.mkdir(exist_ok=True)
        return serve_files(directory, *args)
    return start


def served_by(session, server, count, timeout=5):
    """`count` GETs of /id: a Counter of who answered, and the failures."""
    served, failures = collections.Counter(), 0
    for _ in range(count):
        try:
            response = session.get(f"http://127.0.0.1:{server.port}/id", timeout=timeout)
            if response.status_code == 200:
                served[response.text] += 1
            else:
                failures += 1
        except requests.RequestException:
            failures += 1
    return served, failures


def test_proxy_balances_over_hosts_in_their_own_network_namespaces(hosts, proxy):
    a, b, c = hosts("a", "b", "c")
    server = proxy("--proxy", "/=" + ",".join(f"{h.address}:{PORT}" for h in (a, b, c)))
    with requests.Session() as session:
        served, failures = served_by(session, server, 300)
        assert failures == 0
        assert served == {"a": 100, "b": 100, "c": 100}, served
        # each server saw the proxy come from its own network's side, with
        # the client's address in X-Forwarded-For
        peers = {}
        for _ in range(6):
            document = session.get(f"http://127.0.0.1:{server.port}/headers", timeout=5).json()
            headers = {name.lower(): value for name, value in document["headers"]}
            assert headers["x-forwarded-for"] == "127.0.0.1"
            peers[document["name"]] = document["peer"]
        assert peers == {"a": a.ours, "b": b.ours, "c": c.ours}, peers


def test_proxy_a_host_that_drops_off_the_network_costs_no_request(hosts, proxy):
    """Link down: the host's packets vanish (no reset, no refusal). Requests
    in flight and new connections to it time out and go to the other host;
    it is marked down; once its link is back, its health check passes and
    it gets traffic again."""
    a, b = hosts("a", "b")
    server = proxy("--proxy", f"/={a.address}:{PORT},{b.address}:{PORT}",
                   "--proxy-connect-timeout", "0.5", "--proxy-read-timeout", "1",
                   "--proxy-fail-timeout", "1", "--proxy-health-path", "/health",
                   "--proxy-health-interval", "0.2", "--proxy-health-timeout", "0.5",
                   "--proxy-health-rise", "1", "--admin", "127.0.0.1:0")
    admin = int(server.wait_for_stderr(r"fastcore: admin on http://127\.0\.0\.1:(\d+)").group(1))
    with requests.Session() as session:
        before, failures = served_by(session, server, 20)
        assert failures == 0 and before == {"a": 10, "b": 10}, before
        a.link_down()
        during, failures = served_by(session, server, 40)
        assert failures == 0, f"{failures} requests failed while a host was unreachable"
        assert during["b"] >= 38, during  # at most the tries that found out, retried

        def state_of_a():
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/upstreams", timeout=5) as response:
                pools = json.loads(response.read())["upstreams"]
            return {s["address"]: s for pool in pools for s in pool["servers"]}[f"{a.address}:{PORT}"]

        deadline = time.monotonic() + 5  # the workers publish their pools once a second
        while time.monotonic() < deadline and (state_of_a()["state"], state_of_a()["health"]) == ("up", "passing"):
            select.select([], [], [], 0.2)
        assert (state_of_a()["state"], state_of_a()["health"]) != ("up", "passing"), state_of_a()
        a.link_up()
        deadline = time.monotonic() + 15
        after = collections.Counter()
        while time.monotonic() < deadline and after["a"] == 0:
            served, failures = served_by(session, server, 10)
            assert failures == 0
            after += served
            select.select([], [], [], 0.1)
        assert after["a"] > 0, f"the host back on the network got no traffic: {after}"
