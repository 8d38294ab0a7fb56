"""Pools seen and changed from the arbiter, while the pools live in workers.

Theory of operation
-------------------
Every worker balances with pools of its own (no lock, no shared state on
the hot path). The arbiter, which owns the admin listener, needs to show
them and to change them without a restart:

- `Board`: a page of memory per worker, shared with the arbiter (mapped
  before fork, like the stats page). The worker publishes its pools'
  snapshots there as JSON once a second (and after a change); the arbiter
  reads every worker's board and `merge()`s them for `GET /upstreams` and
  the per-upstream series of `/metrics`. A board is written as [length,
  sequence, JSON]; the reader retries while the sequence moves, so a torn
  read is never parsed.
- `Channel`: a pipe per worker, arbiter to worker. `POST
  /upstreams/NAME/servers` and `DELETE /upstreams/NAME/servers/ADDR` become
  one JSON line to every worker, which applies it to its pool on its loop
  (`apply()`); a removed server is drained there (no new request, dropped
  once its requests end). The arbiter also keeps the change in its own
  configuration, so a worker started later (a crash, TTIN, a recycle) gets
  the same servers. A reload (HUP) re-reads the configuration file: changes
  made through the API last until then, as with nginx's API without a
  state file.
"""
import ipaddress
import json
import mmap
import os
import struct

from fastcore.proxy.balancer import Member

BOARD_SIZE = 256 * 1024   # JSON of every pool of a worker; a larger one is cut to a note
_HEADER = struct.Struct("=QQ")  # length, sequence


class Board:
    """One worker's published pools, in memory shared with the arbiter."""

    def __init__(self, size=BOARD_SIZE):
        self.memory = mmap.mmap(-1, size)
        self.sequence = 0

    def publish(self, document):
        data = json.dumps(document, separators=(",", ":")).encode()
        if len(data) > len(self.memory) - _HEADER.size:
            data = json.dumps({"error": "the pools do not fit the board"}).encode()
        self.sequence += 1
        _HEADER.pack_into(self.memory, 0, 0, self.sequence)  # length 0 while writing: readers retry
        self.memory[_HEADER.size:_HEADER.size + len(data)] = data
        _HEADER.pack_into(self.memory, 0, len(data), self.sequence)

    def read(self, tries=5):
        """The last document published, or None (none yet, or always torn)."""
        for _ in range(tries):
            length, sequence = _HEADER.unpack_from(self.memory, 0)
            if length == 0:
                continue
            data = bytes(self.memory[_HEADER.size:_HEADER.size + length])
            if _HEADER.unpack_from(self.memory, 0) == (length, sequence):
                try:
                    return json.loads(data)
                except ValueError:
                    return None
        return None

    def close(self):
        self.memory.close()


class Channel:
    """Arbiter-to-worker messages, one JSON object per line."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.read_fd, False)
        self.partial = b""

    def send(self, message):
        """Arbiter side; never blocks for long: a message is a few hundred bytes."""
        try:
            os.write(self.write_fd, json.dumps(message).encode() + b"\n")
        except OSError:
            pass  # the worker is gone; its replacement reads the arbiter's configuration

    def receive(self):
        """Worker side: the complete messages waiting in the pipe."""
        messages = []
        while True:
            try:
                data = os.read(self.read_fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            self.partial += data
        *lines, self.partial = self.partial.split(b"\n")
        for line in lines:
            try:
                messages.append(json.loads(line))
            except ValueError:
                pass
        return messages

    def close_worker_side(self):
        os.close(self.read_fd)

    def close_arbiter_side(self):
        os.close(self.write_fd)

    def close(self):
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def is_dns_name(address):
    """NAME:PORT rather than an address (HOST:PORT, [IPV6]:PORT, unix:PATH),
    with or without a scheme."""
    address = address.partition("://")[2] if "://" in address else address
    if address.startswith(("unix:", "[")):
        return False
    try:
        ipaddress.ip_address(address.rpartition(":")[0])
        return False
    except ValueError:
        return True


def apply(pools, message, now):
    """Worker side: one message from the arbiter applied to `pools` ({name:
    Pool}). Returns a line for the log."""
    pool = pools.get(message.get("pool"))
    if pool is None:
        return f"upstreams: no pool {message.get('pool')!r}"
    if message.get("op") == "add":
        server = message["server"]
        if is_dns_name(server["address"]):
            # every address it resolves to becomes a member, resolved again
            # on schedule (the pool's resolve_interval) from now on
            pool.start_discovery(server["address"], server.get("weight", 1), server.get("backup", False),
                                 server.get("max_conns", 0), resolve_now=False)
            return f"upstreams: {server['address']} added to {pool.name} (resolving)"
        pool.add(Member(server["address"], server.get("weight", 1), server.get("backup", False),
                        server.get("max_conns", 0)), now)
        return f"upstreams: {server['address']} added to {pool.name}"
    if message.get("op") == "remove":
        discovery = getattr(pool, "discoveries", {}).pop(message["address"], None)
        if discovery is not None:
            discovery.stop(timeout=0)  # its thread ends by itself; no answer of it is applied now
            for address in sorted(discovery.owned):
                pool.remove(address)
            return f"upstreams: {message['address']} ({len(discovery.owned)} addresses) draining from {pool.name}"
        try:
            pool.remove(message["address"])
        except KeyError:
            return f"upstreams: {message['address']} is not in {pool.name}"
        return f"upstreams: {message['address']} draining from {pool.name}"
    return f"upstreams: unknown operation {message.get('op')!r}"


def merge(documents):
    """The `GET /upstreams` document from every worker's board: each pool,
    each server with its counters summed over the workers; its state is
    "up" where any worker sends it traffic, "draining" while being removed,
    "down" where every worker has it down."""
    pools = {}
    for document in documents:
        for snapshot in (document or {}).get("pools", ()):
            pool = pools.setdefault(snapshot["name"], {"name": snapshot["name"], "balance": snapshot.get("balance"),
                                                       "servers": {}})
            for member in snapshot.get("members", ()):
                server = pool["servers"].get(member["address"])
                if server is None:
                    server = pool["servers"][member["address"]] = {
                        "address": member["address"], "weight": member.get("weight"),
                        "backup": member.get("backup", False), "states": [], "health": [],
                        "active": 0, "requests": 0, "failures": 0, "retries": 0,
                        "duration_seconds_sum": 0.0,
                    }
                server["states"].append(member.get("state"))
                server["health"].append(member.get("health"))
                for key in ("active", "requests", "failures", "retries"):
                    server[key] += member.get(key, 0)
                server["duration_seconds_sum"] += member.get("duration_seconds_sum", 0.0)
    out = []
    for pool in pools.values():
        servers = []
        for server in pool["servers"].values():
            states, health = server.pop("states"), server.pop("health")
            if "draining" in states:
                server["state"] = "draining"
            elif any(state == "up" for state in states):
                server["state"] = "up"
            else:
                server["state"] = "down"
            server["health"] = ("failing" if "failing" in health else "passing" if "passing" in health
                                else "unknown")
            server["workers_down"] = sum(state == "down" for state in states)
            servers.append(server)
        pool["servers"] = servers
        out.append(pool)
    return {"upstreams": out}
