"""The arbiter: binds the listening sockets, forks the workers and keeps
them alive. It owns no client connection.

Theory of operation
-------------------
- Sockets: with reuse_port, one SO_REUSEPORT socket per worker *slot*, kept
  by the arbiter and handed to whichever worker serves that slot, so a
  replacement (after a crash, a recycle or a reload) takes over the same
  socket and no connection waiting in its backlog is lost. Without it, all
  workers wait on the same sockets with EPOLLEXCLUSIVE.
- Each worker writes a stats block in memory shared with the arbiter (one
  page, mapped before fork): its heartbeat, counters for /metrics.
- Signal handlers only queue the signal; the arbiter's own event loop (the
  same Loop the workers run) drains the queue in `tick()`, which also reaps
  dead workers, kills stuck ones and keeps the worker count.
- A worker that cannot boot or import the application exits with a
  reserved status and one line of reason on a pipe: at start-up the arbiter
  then stops with that line (no respawn loop); during a reload it keeps the
  old workers serving.

Signals: HUP reload (re-read the configuration, start new workers, then
drain the old ones), TERM/INT graceful stop, QUIT fast stop, TTIN/TTOU one
worker more/fewer, USR1 reopen log files.

--reload (development): a change to the application's source files
(fastcore.reloader) is a HUP reload that starts one new worker first and the
others once it serves, so code that does not import fails once (one
traceback), not once per worker; the old workers serve meanwhile. Code that
does not import in the serving generation (at start-up, or replacing a dead
worker) does not stop the arbiter: it waits for the next change.
"""
import collections
import dataclasses
import ipaddress
import logging
import mmap
import os
import signal
import socket
import sys
import time
import traceback

from fastcore import preflight, stats_layout
from fastcore.proxy import control
from fastcore.config import ConfigError, build_config, listeners, parse_address
from fastcore.worker import (APP_LOAD_ERROR, BOOT_ERROR, BindError, bind_socket, describe, kernel_tls_available,
                             limit_table_needed, listener_kinds, make_limit_table, make_tls_context, run_worker,
                             static_locations, setup_logging)
from fastcore.stapling import Stapler, stapling_wanted
from fastcore._core.tls import TLSConfigError, new_ticket_keys, rotate_ticket_keys

error_log = logging.getLogger("fastcore.error")

CRASHED = 1             # exit status of a worker that raised after it had booted (replaced, like a death)
KILL_GRACE = 2.0        # seconds between SIGABRT (stack dump) and SIGKILL for a stuck worker
TICK = 0.1              # how often the arbiter checks on its workers, seconds
HANDLED = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1", "CHLD")


class StartupError(Exception):
    """The arbiter cannot start; the message is one line."""


class WorkerProcess:
    """What the arbiter knows of one worker."""

    __slots__ = ("pid", "slot", "generation", "stats", "report_fd", "spawned", "stopping", "abort_sent",
                 "timed_out", "kill_at", "board", "channel")

    def __init__(self, pid, slot, generation, stats, report_fd, board=None, channel=None):
        self.pid = pid
        self.slot = slot
        self.generation = generation
        self.stats = stats
        self.report_fd = report_fd
        self.spawned = time.monotonic()
        self.stopping = False
        self.abort_sent = False
        self.timed_out = False      # killed for its heartbeat while serving: it will be replaced
        self.kill_at = None
        self.board = board          # its pools, published (proxy locations only)
        self.channel = channel      # changes to its pools, from the admin API

    def read_stats(self):
        return stats_layout.read(self.stats)

    @property
    def booted(self):
        return self.read_stats()["heartbeat_ns"] > 0


def inherited_sockets():
    """Listening sockets passed by systemd socket activation (LISTEN_FDS), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0"))
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return [socket.socket(fileno=3 + i) for i in range(count)] or None


def drop_privileges(user, group):
    """In a worker forked by a root arbiter: become user/group."""
    import grp
    import pwd

    if os.getuid() != 0:
        return
    if group:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        os.setgroups([])
        os.setgid(gid)
    if user:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if not group:
            os.setgid(pwd.getpwuid(uid).pw_gid)
            os.setgroups([])
        os.setuid(uid)


def hand_over_logs(config):
    """A root arbiter that drops its workers to user/group: the log files
    they append to are theirs (the arbiter has just created the error log
    as root, and a worker could not open it again)."""
    account = preflight.worker_account(config, [])
    if account is None:
        return
    uid, gids, _ = account
    for path in (config.error_log, config.access_log):
        if path in (None, "-"):
            continue
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640))
            if preflight.cannot_write(path, account) is not None:  # created here, as root
                os.chown(path, uid, gids[0] if gids else -1)
        except OSError as e:
            error_log.warning("cannot hand %s over to the workers' account: %s", path, e)


class Arbiter:
    def __init__(self, config, app_spec, cli_values=None):
        self.config = config
        self.app_spec = app_spec
        self.cli_values = cli_values or {}
        self.app = None
        self.workers = {}                 # pid -> WorkerProcess
        self.generation = 0               # the generation that serves: respawns join it
        self.newest_generation = 0        # the highest generation started; a number is never reused
        self.target = config.workers
        self.slot_sockets = []            # reuse_port: per slot, a list of sockets (one per bind)
        self.shared_sockets = []          # otherwise: the sockets every worker waits on
        self.signals = collections.deque()
        self.restarts = 0
        self.slot_restarts = {}           # slot -> workers replaced there after dying (/status)
        self.timeouts = 0
        self.retired = {}                 # counters of exited workers, so /metrics never goes back
        self.started = time.time()
        self.stop_deadline = None
        self.exit_status = 0
        self.reload_generation = None     # generation being started by a reload
        self.reload_from = None           # (config, target, stapler) to go back to if that reload fails
        self.announced = False            # readiness lines printed
        self.loop_stopping = False
        self.loop = None
        self.admin_server = None
        self.admin_sock = None
        self.source_watcher = None        # --reload: the inotify watcher of the application's files
        self.reload_waiting_slots = []    # slots of a reload that start once its first worker serves
        self.waiting_for_fix = False      # --reload: the code on disk does not import; no worker is started
        self.limits_buffer = None         # the shared limits table (make_limit_table), made before the first fork
        self.limits_entries = None        # its limit_table_entries
        # the session ticket keys of every worker, in memory made before the
        # first fork, rotated here (ssl_ticket_rotate) and kept across
        # reloads: a ticket resumes on any worker, any generation
        self.ticket_keys = new_ticket_keys()
        self.stapler = None               # the OCSP responses stapled (fastcore.stapling), if any

    # -- start-up --------------------------------------------------------------

    def bind(self):
        config = self.config
        systemd = inherited_sockets()
        if systemd is not None:
            self.shared_sockets = systemd
            self.bound = [describe(s)[0] for s in systemd]
            if config.reuse_port:
                error_log.info("sockets from systemd: workers share them (reuse_port does not apply)")
            self.reuse_port = False
            return
        addresses = [address for address, _ in listeners(config)]
        self.reuse_port = config.reuse_port and all(parse_address(b).family != "unix" for b in addresses)
        if self.reuse_port:
            first = [bind_socket(text, config.backlog, reuse_port=True) for text in addresses]
            self.slot_sockets = [first]
        else:
            first = self.shared_sockets = [bind_socket(text, config.backlog) for text in addresses]
        self.bound = [describe(s)[0].replace("http://", "https://", 1) if is_tls else describe(s)[0]
                      for s, is_tls in zip(first, listener_kinds(config, first))]

    def sockets_for_slot(self, slot):
        """The sockets of a worker slot (made on first use in reuse_port mode)."""
        if not self.reuse_port:
            return self.shared_sockets
        while len(self.slot_sockets) <= slot:
            self.slot_sockets.append(None)
        if self.slot_sockets[slot] is None:
            self.slot_sockets[slot] = [self.same_address(s) for s in self.slot_sockets[0]]
        return self.slot_sockets[slot]

    def retire_slot(self, slot):
        """A slot no worker will serve any more (after TTOU): close its sockets,
        or the kernel would keep queueing connections on them for nobody."""
        if not self.reuse_port or slot == 0 or slot >= len(self.slot_sockets):
            return
        if slot < self.target or any(w.slot == slot for w in self.workers.values()):
            return
        for sock in self.slot_sockets[slot] or ():
            sock.close()
        self.slot_sockets[slot] = None

    def same_address(self, sock):
        """Another SO_REUSEPORT socket bound where sock is (its real port, when 0 was asked)."""
        new = socket.socket(sock.family, socket.SOCK_STREAM)
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:
            new.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        new.bind(sock.getsockname())
        new.listen(self.config.backlog)
        return new

    def start_admin(self):
        from fastcore._core.connection import Server
        from fastcore.admin import make_admin_app
        from fastcore.wsgi import Gateway, listener_environ

        address = parse_address(self.config.admin)
        if not self.config.admin_allow_remote:
            try:
                loopback = ipaddress.ip_address(address.host).is_loopback
            except ValueError:
                loopback = address.host == "localhost"
            if not loopback:
                raise StartupError(f"setting admin (--admin): {self.config.admin} is not a loopback address; "
                                   f"add --admin-allow-remote to expose it")
        self.admin_sock = bind_socket(self.config.admin, 64)
        app = make_admin_app(self.snapshot, self if self.config.proxy else None)
        self.admin_server = Server(self.loop, Gateway(app, self.config, None), self.config)
        url, host, port = describe(self.admin_sock)
        self.admin_server.listen(self.admin_sock, listener_environ(self.config, host, port))
        return url

    def snapshot(self):
        # each worker's stats, with what only the arbiter knows: its slot and that slot's restarts
        workers = [dict(w.read_stats(), slot=w.slot, restarts=self.slot_restarts.get(w.slot, 0))
                   for w in self.workers.values() if not w.stopping or w.booted]
        counters = {"worker_restarts": self.restarts, "worker_timeouts": self.timeouts, "retired": self.retired}
        if self.config.proxy:
            counters["upstreams"] = self.upstreams_document()["upstreams"]
        return os.getpid(), self.started, workers, counters, self.stop_deadline is not None

    # -- pools (proxy locations), for the admin API ---------------------------------

    def upstreams_document(self):
        """Every pool and server, summed over the live workers' boards; a
        server the arbiter was told about that no worker has published yet
        shows with zero counters."""
        boards = [w.board.read() for w in self.workers.values() if w.board is not None and not w.stopping]
        document = control.merge(boards)
        known = {pool["name"]: pool for pool in document["upstreams"]}
        for location in self.config.proxy:
            pool = known.get(location.pool_name)
            if pool is None:
                pool = {"name": location.pool_name, "balance": location.balance, "servers": []}
                document["upstreams"].append(pool)
            listed = {server["address"] for server in pool["servers"]}
            for server in location.servers:
                if server.address not in listed and not server.is_name:
                    pool["servers"].append({"address": server.address, "weight": server.weight,
                                            "backup": server.backup, "state": "up", "health": "unknown",
                                            "active": 0, "requests": 0, "failures": 0, "retries": 0,
                                            "duration_seconds_sum": 0.0, "workers_down": 0})
        return document

    def change_upstreams(self, pool_name, op, server=None, address=None):
        """The admin API's POST and DELETE: (status, message). The change
        goes to every worker now and into the arbiter's configuration, for
        the workers it starts later."""
        from fastcore.config import UpstreamServer, _Invalid, parse_upstream_address

        location = next((loc for loc in self.config.proxy if loc.pool_name == pool_name), None)
        if location is None:
            return 404, f"no pool named {pool_name!r}"
        if op == "add":
            try:
                added = UpstreamServer(parse_upstream_address(server.get("address")),
                                       weight=int(server.get("weight", 1)), backup=bool(server.get("backup", False)),
                                       max_conns=int(server.get("max_conns", 0)))
            except (_Invalid, TypeError, ValueError, AttributeError):
                return 400, "expected {\"address\": \"HOST:PORT\", \"weight\": N, \"backup\": BOOL, \"max_conns\": N}"
            if added.weight < 1 or added.max_conns < 0:
                return 400, "weight must be >= 1 and max_conns >= 0"
            if any(s.address == added.address for s in location.servers):
                return 409, f"{added.address} is already in {pool_name}"
            servers = location.servers + (added,)
            message = {"op": "add", "pool": pool_name, "server": dataclasses.asdict(added)}
        else:
            if not any(s.address == address for s in location.servers):
                return 404, f"{address} is not in {pool_name}"
            servers = tuple(s for s in location.servers if s.address != address)
            message = {"op": "remove", "pool": pool_name, "address": address}
        replaced = dataclasses.replace(location, servers=servers)
        self.config = dataclasses.replace(
            self.config, proxy=tuple(replaced if loc is location else loc for loc in self.config.proxy))
        for worker in self.workers.values():
            if worker.channel is not None and not worker.stopping:
                worker.channel.send(message)
        error_log.info("admin: %s %s %s", "added" if op == "add" else "draining",
                       (server or {}).get("address") if op == "add" else address, f"({pool_name})")
        return (201, f"{message['server']['address']} added to {pool_name}") if op == "add" else \
            (202, f"{address} is draining from {pool_name}")

    def run(self):
        """Runs until stopped; returns the exit status."""
        from fastcore._core.loop import Loop

        setup_logging(self.config)
        try:
            self.bind()
        except BindError as e:
            print(f"fastcore: error: {e}", file=sys.stderr, flush=True)
            return 1
        if self.config.preload and self.app_spec is not None:
            from fastcore.worker import load_application
            self.app = load_application(self.config, self.app_spec, None)
            if isinstance(self.app, int):
                return 1
        if self.config.pid:
            try:
                with open(self.config.pid, "w") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError as e:  # checked by fastcore.preflight; this is a race with the disk
                print(f"fastcore: error: setting pid: cannot write {self.config.pid!r}: {e.strerror or e}",
                      file=sys.stderr, flush=True)
                return 2
        hand_over_logs(self.config)
        self.loop = Loop()
        try:
            admin_url = self.start_admin() if self.config.admin else None
        except (StartupError, BindError) as e:
            print(f"fastcore: error: {e}", file=sys.stderr, flush=True)
            return 2 if isinstance(e, StartupError) else 1
        for name in HANDLED:
            signal.signal(getattr(signal, f"SIG{name}"), self.queue_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.loop.watch_signals()
        self.admin_url = admin_url
        if self.config.reload:
            self.watch_sources()
        if stapling_wanted(self.config):
            self.stapler = Stapler(self.config)
        if self.config.ssl_ktls and self.config.certfile is not None and not kernel_tls_available():
            error_log.warning("ssl_ktls: this kernel has no tls module (not in /proc/sys/net/ipv4/tcp_available_ulp, "
                              "none under /lib/modules/%s): TLS is encrypted in user space", os.uname().release)
        self.maintain()
        self.loop.call_later(TICK, self.tick)
        if self.config.certfile is not None:
            self.loop.call_later(self.config.ssl_ticket_rotate, self.rotate_ticket_keys)
        try:
            self.loop.run()
        finally:
            if self.source_watcher is not None:
                self.source_watcher.close()
            self.cleanup()
            # The interpreter's finalisation puts SIG_DFL back for every signal
            # that had a Python handler: a second SIGTERM arriving while we
            # exit would then kill us (status -15 instead of ours). The stop
            # is already under way, so further stop signals are ignored.
            for name in HANDLED:
                if name != "CHLD":
                    signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_IGN)
        return self.exit_status

    def announce(self):
        """Once every worker has booted: the readiness lines (one per address)."""
        self.announced = True
        for url in self.bound:
            print(f"fastcore: listening on {url} (pid {os.getpid()})", file=sys.stderr, flush=True)
        for location in static_locations(self.config, self.app_spec is not None):
            listing = ", directories listed" if location.autoindex else ""
            print(f"fastcore: serving {location.root} at {location.prefix}{listing} (pid {os.getpid()})",
                  file=sys.stderr, flush=True)
        for location in self.config.proxy:
            print(f"fastcore: proxying {location.prefix} to {', '.join(s.address for s in location.servers)} "
                  f"(pid {os.getpid()})", file=sys.stderr, flush=True)
        if self.admin_url:
            print(f"fastcore: admin on {self.admin_url} (pid {os.getpid()})", file=sys.stderr, flush=True)
        error_log.info("arbiter %d: %d worker(s), %s", os.getpid(), self.target,
                       "one SO_REUSEPORT socket each" if self.reuse_port else "sharing the listening sockets")

    def use_stapler(self, stapler):
        """The OCSP responses the workers started from now on staple (those
        running keep theirs: the memory stays mapped in them)."""
        if self.stapler is not None and self.stapler is not stapler:
            self.stapler.stop()
        self.stapler = stapler

    def cleanup(self):
        if self.stapler is not None:
            self.stapler.stop()
        if self.config.pid:
            try:
                os.unlink(self.config.pid)
            except OSError:
                pass
        for sock in self.shared_sockets + [s for slot in self.slot_sockets if slot for s in slot]:
            if sock.family == socket.AF_UNIX:
                try:
                    os.unlink(sock.getsockname())
                except OSError:
                    pass
            sock.close()
        if self.exit_status == 0:
            error_log.info("arbiter %d stopped", os.getpid())

    # -- workers ---------------------------------------------------------------

    def spawn(self, slot, generation=None):
        # the slot's sockets are made here, in the arbiter, so they outlive the worker
        self.sockets_for_slot(slot)
        stats = mmap.mmap(-1, mmap.PAGESIZE)
        limits = self.limit_table()
        board, channel = (control.Board(), control.Channel()) if self.config.proxy else (None, None)
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = BOOT_ERROR
            try:
                os.close(report_r)
                status = self.become_worker(slot, stats, report_w, board, channel, limits)
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else BOOT_ERROR
            except BaseException as e:
                traceback.print_exc()
                if stats_layout.read(stats)["heartbeat_ns"]:
                    # it had booted and served: a crash, not a failed boot;
                    # the arbiter replaces it (a boot error would stop the server)
                    status = CRASHED
                else:
                    try:
                        os.write(report_w, f"worker failed to boot: {type(e).__name__}: {e}".encode())
                    except OSError:
                        pass
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        os.close(report_w)
        os.set_blocking(report_r, False)
        if channel is not None:
            channel.close_worker_side()
        generation = self.generation if generation is None else generation
        self.workers[pid] = WorkerProcess(pid, slot, generation, stats, report_r, board, channel)
        error_log.debug("spawned worker %d (slot %d)", pid, slot)
        return pid

    def limit_table(self):
        """The shared limits table of the current configuration, or None if
        it needs none: one for every worker (a client's connections land on
        any of them), made once before the first fork that needs it, and
        again only when a reload changes its size (workers of the old
        generation keep theirs until they go)."""
        if not limit_table_needed(self.config):
            return None
        if self.limits_buffer is None or self.limits_entries != self.config.limit_table_entries:
            self.limits_buffer = make_limit_table(self.config)
            self.limits_entries = self.config.limit_table_entries
        return self.limits_buffer

    def become_worker(self, slot, stats, report_fd, board=None, channel=None, limits=None):
        """In the forked child: shed the arbiter's state, then run the worker."""
        signal.set_wakeup_fd(-1)
        for name in HANDLED:
            signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_DFL)
        # The arbiter's loop (epoll, eventfd, signal pipe) and admin server
        # (listener, keep-alive connections open now) are not this process's:
        # close their descriptors, the loop first so that nothing is removed
        # from the epoll instance the arbiter still uses.
        self.loop.close()
        if self.source_watcher is not None:
            self.source_watcher.close()
        if self.admin_server is not None:
            self.admin_server.close_all()
        if self.admin_sock is not None:
            self.admin_sock.close()
        mine = self.sockets_for_slot(slot)
        for other in [s for sl in self.slot_sockets if sl for s in sl if s not in mine]:
            other.close()
        for w in self.workers.values():
            os.close(w.report_fd)
            if w.channel is not None:
                w.channel.close_arbiter_side()
        if channel is not None:
            channel.close_arbiter_side()
        # the certificates and keys are read before the account changes: a
        # key only root may read (as it should be) is read as root, as nginx does
        tls = None
        if any(listener_kinds(self.config, mine)):
            try:
                tls = make_tls_context(self.config, self.ticket_keys,
                                       self.stapler.staples if self.stapler is not None else None)
            except TLSConfigError as e:  # changed on disk since preflight
                os.write(report_fd, f"setting {e}".encode())
                return BOOT_ERROR
        drop_privileges(self.config.user, self.config.group)
        return run_worker(self.config, mine, app=self.app, app_spec=self.app_spec, stats_buffer=stats,
                          exclusive=not self.reuse_port, report_fd=report_fd,
                          multiprocess=self.target > 1, board=board, channel=channel, limits_buffer=limits, tls=tls)

    def current(self):
        return [w for w in self.workers.values() if not w.stopping]

    def maintain(self):
        """Spawns or stops workers until the current generation has `target`."""
        if self.stop_deadline is not None or self.waiting_for_fix:
            return
        live = self.current()
        used = {w.slot for w in live}
        while len(live) < self.target:
            slot = next(i for i in range(len(live) + len(used) + 1) if i not in used)
            used.add(slot)
            try:
                self.spawn(slot)
            except OSError as e:
                error_log.error("cannot fork a worker: %s", e)
                return
            live = self.current()
        for worker in sorted(live, key=lambda w: -w.slot)[: max(0, len(live) - self.target)]:
            self.stop_worker(worker, signal.SIGTERM)

    def stop_worker(self, worker, signum):
        worker.stopping = True
        worker.kill_at = time.monotonic() + self.config.graceful_timeout
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                if self.stapler is not None:
                    self.stapler.reaped(pid)  # its OCSP fetcher
                continue
            from fastcore.metrics import retire_worker_stats
            retire_worker_stats(self.retired, worker.read_stats())
            if worker.channel is not None:
                worker.channel.close_arbiter_side()
                worker.board.close()
            reason = self.read_report(worker)
            if os.WIFSIGNALED(status):
                how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
                code = None
            else:
                code = os.WEXITSTATUS(status)
                how = f"exited with status {code}"
            if code in (BOOT_ERROR, APP_LOAD_ERROR):
                self.boot_failed(worker, reason or "worker failed to boot")
                self.retire_slot(worker.slot)  # a slot only the failed reload asked for
                continue
            self.retire_slot(worker.slot)
            if (worker.stopping and not worker.timed_out) or self.stop_deadline is not None:
                error_log.info("worker %d %s", pid, how)
            else:
                # died, or killed for being stuck: maintain() starts another in its slot
                self.restarts += 1
                self.slot_restarts[worker.slot] = self.slot_restarts.get(worker.slot, 0) + 1
                error_log.warning("worker %d %s; replacing it", pid, how)

    def read_report(self, worker):
        try:
            data = os.read(worker.report_fd, 4096)
        except OSError:
            data = b""
        os.close(worker.report_fd)
        return data.decode("utf-8", "replace").strip()

    def boot_failed(self, worker, reason):
        """A worker exited with a reserved status. One of the serving generation
        (at start-up, or a respawn) stops the arbiter with `reason`; one started
        by a reload fails that reload only, and the serving generation goes on.
        Every new worker of a bad reload fails the same way: the first one ends
        the reload, the others are told apart by their generation. With
        --reload, the serving generation's failure waits for the next change
        instead of stopping (wait_for_fix)."""
        if worker.generation != self.generation:
            if worker.generation == self.reload_generation:
                error_log.error("reload failed: %s; %s", reason, "the previous workers keep serving"
                                if any(w.generation == self.generation for w in self.current())
                                else "waiting for the next change")
                for other in self.current():
                    if other.generation == self.reload_generation:
                        self.stop_worker(other, signal.SIGQUIT)
                self.config, self.target, stapler = self.reload_from
                self.use_stapler(stapler)
                setup_logging(self.config)
                self.reload_generation = None
                self.reload_from = None
                self.reload_waiting_slots = []
            else:
                error_log.info("worker %d of the failed reload (generation %d) exited too", worker.pid,
                               worker.generation)
            return
        if self.stop_deadline is None and self.source_watcher is not None:
            self.wait_for_fix(reason)
        elif self.stop_deadline is None:
            print(f"fastcore: error: {reason}", file=sys.stderr, flush=True)
            self.announced = True  # nothing to announce any more
            self.exit_status = 1
            self.begin_stop(signal.SIGQUIT)

    def check_heartbeats(self):
        now_ns = time.monotonic_ns()
        now = time.monotonic()
        timeout_ns = int(self.config.timeout * 1e9)
        for worker in list(self.workers.values()):
            if worker.kill_at is not None and now >= worker.kill_at:
                error_log.error("worker %d did not stop in time: killing it", worker.pid)
                worker.kill_at = None
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                continue
            if worker.abort_sent:
                continue
            beat = worker.read_stats()["heartbeat_ns"] or int(worker.spawned * 1e9)
            if now_ns - beat > timeout_ns:
                self.timeouts += 1
                worker.abort_sent = True
                worker.timed_out = not worker.stopping  # one already leaving is not replaced
                worker.stopping = True
                worker.kill_at = now + KILL_GRACE
                error_log.error("worker %d is stuck (no heartbeat for %.1f s, timeout %s s): "
                                "dumping its stack, then killing it", worker.pid, (now_ns - beat) / 1e9,
                                self.config.timeout)
                try:
                    os.kill(worker.pid, signal.SIGABRT)
                except ProcessLookupError:
                    pass

    def check_reload(self):
        """Once every new worker beats, the old generation drains."""
        if self.reload_generation is None:
            return
        new = [w for w in self.workers.values() if w.generation == self.reload_generation and not w.stopping]
        if self.reload_waiting_slots and new and all(w.booted for w in new):
            # the first new worker imported the code: the others follow
            slots, self.reload_waiting_slots = self.reload_waiting_slots, []
            for slot in slots:
                self.spawn(slot, self.reload_generation)
            return
        if len(new) >= self.target and all(w.booted for w in new):
            for worker in list(self.workers.values()):
                if worker.generation < self.reload_generation and not worker.stopping:
                    self.stop_worker(worker, signal.SIGTERM)
            error_log.info("reload done: generation %d serving", self.reload_generation)
            self.waiting_for_fix = False
            self.generation = self.reload_generation
            self.reload_generation = None
            self.reload_from = None

    # -- signals -----------------------------------------------------------------

    def queue_signal(self, signum, frame):
        self.signals.append(signum)

    def tick(self):
        """The arbiter's periodic work; reschedules itself even if a step fails,
        so one error never ends the supervision."""
        try:
            self.supervise()
        except Exception:
            error_log.exception("arbiter: error while supervising workers")
        if not self.loop_stopping:
            self.loop.call_later(TICK, self.tick)

    def supervise(self):
        while self.signals:
            signum = self.signals.popleft()
            handler = getattr(self, f"handle_{signal.Signals(signum).name[3:].lower()}", None)
            if handler is not None:
                handler()
        self.reap()
        if self.stapler is not None and self.stop_deadline is None:
            self.stapler.tick(time.time())
        self.check_heartbeats()
        self.check_reload()
        if not self.announced and self.stop_deadline is None:
            live = self.current()
            if len(live) >= self.target and all(w.booted for w in live):
                self.announce()
        if self.stop_deadline is not None:
            if not self.workers:
                self.loop_stopping = True
                self.loop.stop()
                return
            if time.monotonic() >= self.stop_deadline:
                for worker in self.workers.values():
                    try:
                        os.kill(worker.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        elif self.reload_generation is None:
            self.maintain()

    def begin_stop(self, signum):
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.config.graceful_timeout + KILL_GRACE
        for worker in self.workers.values():
            self.stop_worker(worker, signum)

    def handle_term(self):
        error_log.info("arbiter: SIGTERM, stopping gracefully")
        self.begin_stop(signal.SIGTERM)

    def handle_int(self):
        error_log.info("arbiter: SIGINT, stopping gracefully")
        self.begin_stop(signal.SIGTERM)

    def handle_quit(self):
        error_log.info("arbiter: SIGQUIT, stopping now")
        self.begin_stop(signal.SIGQUIT)

    def handle_ttin(self):
        self.target += 1
        error_log.info("arbiter: SIGTTIN, %d workers", self.target)

    def handle_ttou(self):
        if self.target > 1:
            self.target -= 1
        error_log.info("arbiter: SIGTTOU, %d workers", self.target)

    def handle_chld(self):
        self.reap()

    def handle_usr1(self):
        setup_logging(self.config)
        for worker in self.workers.values():
            try:
                os.kill(worker.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        error_log.info("arbiter: SIGUSR1, log files reopened")

    def rotate_ticket_keys(self):
        """A new session ticket key for every worker (the one before still
        decrypts), then again in ssl_ticket_rotate seconds (as reloaded)."""
        rotate_ticket_keys(self.ticket_keys)
        error_log.debug("arbiter: session ticket key rotated")
        self.loop.call_later(self.config.ssl_ticket_rotate, self.rotate_ticket_keys)

    def handle_hup(self):
        self.reload()

    def reload(self, one_first=False):
        """Re-reads the configuration and starts a new generation of workers
        (all at once, or with one_first one, then the others once it serves);
        the old generation drains once the new one serves (check_reload)."""
        if self.stop_deadline is not None:
            return
        try:
            config = build_config(cli=self.cli_values, environ=os.environ)
        except ConfigError as e:
            error_log.error("reload: the configuration is invalid, keeping the current one: %s", e)
            return
        found = preflight.problems(config, self.app_spec)
        if found:
            error_log.error("reload: keeping the current configuration: %s", "; ".join(found))
            return
        if listeners(config) != listeners(self.config) or config.reuse_port != self.config.reuse_port:
            error_log.warning("reload: bind, bind_tls, certfile-or-not and reuse_port changes need a restart; "
                              "keeping the current sockets")
            config = dataclasses.replace(config, bind=self.config.bind, bind_tls=self.config.bind_tls,
                                         reuse_port=self.config.reuse_port)
            if listeners(config) != listeners(self.config):  # TLS turned on or off: not without new sockets
                error_log.error("reload: keeping the current configuration: TLS on or off needs a restart")
                return
        if self.reload_generation is None:
            self.reload_from = (self.config, self.target, self.stapler)
        else:
            # a reload still starting is superseded by this one: its workers go
            for worker in self.current():
                if worker.generation == self.reload_generation:
                    self.stop_worker(worker, signal.SIGTERM)
        self.config = config
        self.target = config.workers
        self.use_stapler(Stapler(config, previous=self.stapler) if stapling_wanted(config) else None)
        setup_logging(config)
        hand_over_logs(config)
        self.newest_generation += 1
        self.reload_generation = self.newest_generation
        error_log.info("arbiter: %s, reloading: starting generation %d", "source change" if one_first else "SIGHUP",
                       self.reload_generation)
        slots = list(range(self.target))
        self.reload_waiting_slots = slots[1:] if one_first else []
        for slot in slots[:1] if one_first else slots:
            # the old generation drains once every new worker beats (check_reload)
            self.spawn(slot, self.reload_generation)

    # -- --reload ----------------------------------------------------------------

    def watch_sources(self):
        from fastcore.reloader import SourceWatcher, watched_roots

        if self.app_spec is None:
            print("fastcore: reload: no application to watch (--reload restarts the workers when the "
                  "application's code changes)", file=sys.stderr, flush=True)
            return
        roots = watched_roots(self.app_spec, os.getcwd())
        # A worker must compile the file it reads: a .pyc written by one
        # worker would pass for the source after an edit of the same size
        # within the same second (the .pyc records size and whole seconds).
        sys.dont_write_bytecode = True
        try:
            self.source_watcher = SourceWatcher(self.loop, roots, self.sources_changed)
        except OSError as e:
            print(f"fastcore: reload: cannot watch files ({e}); reload is off", file=sys.stderr, flush=True)
            return
        count = len(self.source_watcher.directories)
        print(f"fastcore: reload: watching the .py files under {', '.join(roots)} "
              f"({count} director{'y' if count == 1 else 'ies'}); for development only: "
              f"every change restarts the workers", file=sys.stderr, flush=True)

    def wait_for_fix(self, reason):
        """--reload: a worker of the serving generation (at start-up, or one
        replacing a worker that died) cannot import the code on disk. The
        workers still up keep serving, none is started, and the next change
        reloads (sources_changed); the error is said once."""
        if not self.waiting_for_fix:
            self.waiting_for_fix = True
            print(f"fastcore: error: {reason}", file=sys.stderr, flush=True)
            print("fastcore: reload: waiting for the next change to the application's files", file=sys.stderr,
                  flush=True)

    def sources_changed(self, paths):
        shown = ", ".join(os.path.relpath(p) if not p.startswith("(") else p for p in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        print(f"fastcore: reload: {shown}{more} changed; restarting the workers", file=sys.stderr, flush=True)
        self.reload(one_first=True)
