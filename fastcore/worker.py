"""One worker process: the loop, the WSGI gateway and the server over the
listening sockets it inherited from the arbiter.

Exit statuses: 0 after a stop; BOOT_ERROR (3) when the worker cannot start;
APP_LOAD_ERROR (4) when the application cannot be imported. The arbiter
stops on the reserved ones instead of respawning forever; the reason goes to
it as one line on `report_fd`.

Signals: TERM and INT stop gracefully (stop accepting, close idle
connections, finish in-flight requests within graceful_timeout); QUIT stops
at once; USR1 reopens the access log; ABRT (sent by the arbiter to a stuck
worker) dumps every thread's Python stack to the error log, then aborts.
The handlers only queue the signal; the loop acts on it between events.
"""
import collections
import errno
import faulthandler
import functools
import logging
import mmap
import os
import random
import resource
import signal
import socket
import sys
import time
import traceback

from fastcore._core.connection import Server
from fastcore._core.filecache import FileCache
from fastcore._core.limits import Limiter, LimitTable, table_size
from fastcore._core.loop import Loop
from fastcore._core.router import HttpsRedirect, Router
from fastcore._core.proxy import ProxyLocation
from fastcore._core.static import Location
from fastcore._core.stats import SIZE, WorkerStats
from fastcore.config import LIMIT_KEYS, StaticLocation, limits_active, listeners, parse_address
from fastcore.logs import AccessLog, make_request_id
from fastcore.proxy.balancer import Member, Pool
from fastcore.proxy.discovery import Discovery
from fastcore.proxy.health import HealthCheck, Prober
from fastcore.wsgi import AppThreads, Gateway, listener_environ
from fastcore.appload import ASGI, check_interface
from fastcore.asgi import AsgiWorker, LifespanError

# Everything a worker runs is imported above, by the arbiter before it forks:
# a worker that drops privileges (--user) may not be able to read the
# interpreter's own library afterwards.

BOOT_ERROR = 3
APP_LOAD_ERROR = 4

error_log = logging.getLogger("fastcore.error")


class BindError(Exception):
    """A listening address could not be bound; the message is one line."""


def setup_logging(config):
    """The error log of this process: stderr or a file, with the pid on each line."""
    logger = logging.getLogger("fastcore")
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
        handler.close()
    if config.error_log in (None, "-"):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(config.error_log)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(config.log_level.upper())
    logger.propagate = False
    return handler


def error_stream(handler):
    """A file object faulthandler can write a stack dump to."""
    stream = getattr(handler, "stream", None)
    try:
        stream.fileno()
        return stream
    except (AttributeError, OSError, ValueError):
        return sys.stderr


def raise_descriptor_limit(wanted):
    """Lets a worker hold max_connections sockets: soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def refuse_taken_port(family, address):
    """Raises EADDRINUSE if another socket is bound to the address. Every
    SO_REUSEPORT socket of the same user joins one group and takes a share
    of the connections, so a second server (an old instance left running, a
    typo in a deploy script) would silently split the traffic: binding a
    plain socket there first fails if anyone holds it."""
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind((address.host, address.port))
    finally:
        probe.close()


def bind_socket(text, backlog, reuse_port=False):
    """A listening socket for one `bind` entry; raises BindError."""
    address = parse_address(text)
    try:
        if address.family == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(address.path):
                import stat
                if stat.S_ISSOCK(os.stat(address.path).st_mode):
                    os.unlink(address.path)  # a stale socket from an earlier run
            sock.bind(address.path)
        else:
            family = socket.AF_INET6 if address.family == "inet6" else socket.AF_INET
            if reuse_port and address.port:
                refuse_taken_port(family, address)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise BindError(f"cannot listen on {text}: address already in use (another process listens there; "
                            f"stop it or choose another bind)") from None
        raise BindError(f"cannot listen on {text}: {e.strerror or e}") from None
    return sock


def describe(sock):
    """(url, host, port) of a listening socket, with the real port when 0 was asked."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}", "localhost", ""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    return f"http://{shown}:{port}", host, port


def report(report_fd, message):
    """One line to the arbiter (why this worker cannot start)."""
    if report_fd is not None:
        try:
            os.write(report_fd, message.encode("utf-8", "replace")[:4000])
        except OSError:
            pass


def load_application(config, app_spec, report_fd):
    """The application inside its middleware chain, or an exit status when
    it cannot be imported or wrapped. The reason goes to the arbiter on
    `report_fd`; with none (the arbiter itself, --preload) to stderr."""
    from fastcore.appload import AppLoadError, load_app
    from fastcore.middleware.chain import MiddlewareError, wrap_application

    def refuse(message):
        if report_fd is None:
            print(f"fastcore: error: {message}", file=sys.stderr, flush=True)
        report(report_fd, message)
        return APP_LOAD_ERROR

    try:
        app = load_app(app_spec, config.chdir)
    except AppLoadError as e:
        return refuse(str(e))
    except Exception as e:  # raised inside the user's module: they need the traceback
        traceback.print_exc()
        return refuse(f"importing {app_spec} raised {type(e).__name__}: {e}")
    try:
        if check_interface(app, config) == ASGI:
            return app  # the WSGI middleware chain does not apply
    except AppLoadError as e:
        return refuse(str(e))
    try:
        return wrap_application(app, config.middleware, config)
    except MiddlewareError as e:
        return refuse(str(e))
    except Exception as e:  # raised inside a middleware's own code
        traceback.print_exc()
        return refuse(f"middleware raised {type(e).__name__}: {e}")


def static_locations(config, has_app):
    """The static locations to serve: the configured ones; with no
    application and no location of any kind, the current directory at /,
    listed (as python -m http.server does) unless autoindex says otherwise."""
    if config.static or has_app or config.proxy:
        return config.static
    return (StaticLocation("/", os.getcwd(), index=config.index,
                           autoindex=True if config.autoindex is None else config.autoindex,
                           max_age=config.max_age, immutable=config.immutable, dotfiles=config.dotfiles,
                           follow_symlinks=config.follow_symlinks, precompressed=config.precompressed,
                           limit_rate=config.limit_rate, limit_rate_after=config.limit_rate_after,
                           **{key: getattr(config, key) for key in LIMIT_KEYS}),)


def limit_table_needed(config):
    """Does any location count clients in the shared table (a rate or a
    connection limit, not only allow/deny)?"""
    return any(options.limit_req_rate or options.limit_conn
               for options in (config, *config.static, *config.proxy))


def make_limit_table(config):
    """A shared mapping holding the limits table, set up: made by the arbiter
    before it forks, so that every worker counts in the same one."""
    buffer = mmap.mmap(-1, table_size(config.limit_table_entries))
    LimitTable(buffer, config.limit_table_entries, int.from_bytes(os.urandom(8), "little"))
    return buffer


def limited(handler, options, table, zone, name):
    """handler behind a Limiter when options (a location's, or the top-level
    settings for the application) limit anything; else handler itself, and
    its requests pay nothing. zone: the location's number in the table's
    keys: the application 1, then the static and the proxy locations in
    order, the same in every worker."""
    if not limits_active(options):
        return handler
    return Limiter(handler, table, options, zone, name)


def build_proxies(config, router, loop, access_log, limit_table):
    """A ProxyLocation per configured proxy location, each with its own Pool
    (per worker, as nginx without a shared zone), its health checks and its
    DNS discovery. Returns the locations and what must be stopped at exit."""
    built, services = [], []
    for number, spec in enumerate(config.proxy):
        members = [Member(server.address, server.weight, server.backup, server.max_conns)
                   for server in spec.servers if not server.is_name]
        pool = Pool(spec.pool_name, members, balance=spec.balance, hash_key=spec.hash_key,
                    max_fails=spec.max_fails, fail_timeout=spec.fail_timeout, slow_start=spec.slow_start,
                    panic=spec.panic)
        location = ProxyLocation(router, loop, spec.prefix, pool, spec, config)
        if access_log is not None:
            location.access_log = access_log
            location.new_request_id = make_request_id
        router.add(spec.prefix, limited(location, spec, limit_table, 2 + len(config.static) + number, spec.prefix))
        # the pool's DNS-named servers, by name: the admin API adds and removes them too
        pool.discoveries = {}
        pool.start_discovery = functools.partial(start_discovery, loop, pool, config.resolver, spec.resolve_interval)
        for server in spec.servers:
            if server.is_name:
                services.append(pool.start_discovery(server.address, server.weight, server.backup,
                                                     server.max_conns))
        if spec.health_path:
            check = HealthCheck(path=spec.health_path, interval=spec.health_interval, timeout=spec.health_timeout,
                                status=spec.health_status, rise=spec.health_rise, fall=spec.health_fall)
            prober = Prober(loop, pool, check, location.probe)
            prober.start()
            services.append(prober)
        built.append(location)
    return built, services


def start_discovery(loop, pool, resolver, resolve_interval, address, weight=1, backup=False, max_conns=0,
                    resolve_now=True):
    """Members of pool for the DNS name in address (NAME:PORT), kept in step
    with its records from now on; with resolve_now the first answer is
    applied before this returns (at start), else by the discovery's thread
    (an admin API change: the loop does not wait for DNS). Returns the
    Discovery (stop() it to end)."""
    scheme = "https://" if address.startswith("https://") else ""
    name, _, port = address[len(scheme):].rpartition(":")
    discovery = Discovery(pool, name, int(port), resolver=resolver, resolve_interval=resolve_interval,
                          weight=weight, backup=backup, max_conns=max_conns, apply=loop.call_soon_threadsafe,
                          scheme=scheme)
    if resolve_now:
        discovery.refresh()  # the first answer before serving
    discovery.start()
    pool.discoveries[address] = discovery
    return discovery


def build_handler(config, gateway, access_log, loop=None, limit_table=None):
    """What the server hands each request to: the gateway alone, or a router
    over the static and proxy locations with the gateway (or 404) for the
    rest, each behind a Limiter when it has limits. Returns (handler, file
    cache or None, proxy locations, services)."""
    if gateway is not None:
        gateway = limited(gateway, config, limit_table, 1, "(application)")
    locations = static_locations(config, gateway is not None)
    if not locations and not config.proxy:
        return gateway, None, [], []
    router = Router(gateway)
    proxies, services = build_proxies(config, router, loop, access_log, limit_table) if config.proxy else ([], [])
    if not locations:
        return router, None, proxies, services
    cache = FileCache(config)
    boundary = os.urandom(12).hex().encode("ascii")
    for number, location in enumerate(locations):
        try:
            handler = Location(router, cache, location, config, boundary)
        except OSError as e:
            raise BindError(f"static location {location.prefix}: cannot open {location.root}: "
                            f"{e.strerror or e}") from None
        if access_log is not None:
            handler.access_log = access_log
            handler.new_request_id = make_request_id
        router.add(location.prefix, limited(handler, location, limit_table, 2 + number, location.prefix))
    return router, cache, proxies, services


def watch_pools(loop, proxies, board, channel):
    """Publishes this worker's pools on its board once a second (reaping the
    drained members that are done) and applies the arbiter's changes."""
    from fastcore.proxy import control

    pools = {location.pool.name: location for location in proxies}

    def publish():
        now = loop.time()
        for location in proxies:
            for member in location.pool.reap():
                location.forget_server(member.address)
        if board is not None:
            board.publish({"pid": os.getpid(), "pools": [location.pool.snapshot(now) for location in proxies]})

    def tick():
        publish()
        loop.call_later(1.0, tick)

    def on_message():
        for message in channel.receive():
            try:
                error_log.info("%s", control.apply({name: loc.pool for name, loc in pools.items()}, message,
                                                   loop.time()))
            except (KeyError, ValueError, TypeError) as e:
                error_log.error("upstreams: %r refused: %s", message, e)
        publish()

    if channel is not None:
        loop.add_reader(channel.read_fd, on_message)
    loop.call_soon(tick)


def make_tls_context(config, ticket_keys=None, staples=None):
    """The certificates of the TLS listeners (fastcore._core.tls), None when
    no certificate is configured. Raises TLSConfigError (one line, starting
    with the setting's name). ticket_keys: the session ticket keys every
    worker shares (the arbiter's tls.new_ticket_keys()), None for a key of
    this process; staples: the OCSP responses the arbiter keeps
    (fastcore.stapling.Stapler.staples), None for no stapling."""
    if config.certfile is None:
        return None
    from fastcore._core.tls import TLSContext

    return TLSContext(config.certfile, config.keyfile, ca_certs=config.ca_certs, cert_reqs=config.cert_reqs,
                      min_version=config.ssl_min_version, ciphers=config.ciphers, ticket_keys=ticket_keys,
                      staples=staples, ktls=config.ssl_ktls,
                      names=[(name, certificate.certfile, certificate.keyfile, slot)
                             for slot, certificate in enumerate(config.tls, 1) for name in certificate.server_names])


def kernel_tls_available():
    """Whether this kernel can take TLS keys (ssl_ktls): its tls module is
    loaded (listed among the TCP upper-layer protocols) or can be (the
    module file exists; the first use loads it)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            if "tls" in f.read().split():
                return True
    except OSError:
        return False
    release = os.uname().release
    return any(os.path.exists(f"/lib/modules/{release}/kernel/net/tls/tls.ko{ext}") for ext in ("", ".xz", ".zst"))


def listener_kinds(config, sockets):
    """Whether each listening socket speaks TLS (config.listeners, in the
    arbiter's order; sockets from systemd are all TLS when a certificate
    is configured without bind_tls, else all plain)."""
    kinds = [is_tls for _, is_tls in listeners(config)]
    if len(kinds) != len(sockets):
        kinds = [config.certfile is not None and not config.bind_tls] * len(sockets)
    return kinds


def run_worker(config, sockets, *, app=None, app_spec=None, stats_buffer=None, exclusive=False,
               report_fd=None, multiprocess=False, board=None, channel=None, limits_buffer=None, tls=None):
    """Serves until stopped; returns the exit status. `sockets` are listening
    sockets; `exclusive` when other workers wait on the same ones;
    `limits_buffer` the shared limits table (make_limit_table), made here
    when a limit needs one and none is given; `tls` the TLSContext of the
    TLS listeners (make_tls_context), made here when needed and not given."""
    handler = setup_logging(config)
    faulthandler.enable(file=error_stream(handler), all_threads=True)
    if app is None and app_spec is not None:
        app = load_application(config, app_spec, report_fd)
        if isinstance(app, int):
            return app
    raise_descriptor_limit(config.max_connections + 64)

    stats = WorkerStats(stats_buffer if stats_buffer is not None else bytearray(SIZE))
    stats.reset(os.getpid(), time.time_ns())
    loop = Loop()
    loop.set_stats(stats)
    threads = None
    asgi = None
    if app is not None and check_interface(app, config) == ASGI:
        # an asyncio loop runs the application's tasks and drives the core loop (fastcore.asgi)
        try:
            asgi = AsgiWorker(app, config, loop)
        except ImportError:
            message = "asyncio_loop uvloop: uvloop is not installed (pip install uvloop, or --asyncio-loop asyncio)"
            error_log.error("%s", message)
            report(report_fd, message)
            return BOOT_ERROR
        gateway = asgi.gateway
    else:
        if app is not None and (config.threads == "auto" or config.threads > 1):
            threads = AppThreads(loop, config.auto_threads if config.threads == "auto" else config.threads,
                                 high_water=config.write_buffer_high)
        gateway = Gateway(app, config, threads) if app is not None else None
    access_log = None
    if config.access_log:
        access_log = AccessLog(config.access_log, config.access_log_format)
        if gateway is not None:
            gateway.access_log = access_log
            gateway.new_request_id = make_request_id
    limit_table = None
    if limit_table_needed(config):
        limit_table = LimitTable(limits_buffer if limits_buffer is not None else make_limit_table(config))
    try:
        handler, file_cache, proxies, services = build_handler(config, gateway, access_log, loop, limit_table)
    except BindError as e:
        error_log.error("%s", e)
        report(report_fd, str(e))
        return BOOT_ERROR
    server = Server(loop, handler, config)
    server.set_stats(stats)
    server.access_log = access_log  # requests the server refuses by itself (send_error)
    if proxies:
        watch_pools(loop, proxies, board, channel)
    if threads is not None and multiprocess:
        # every thread busy: accept nothing, another worker serves new clients
        # (with one worker there is no other: it keeps accepting, and static
        # files and proxied requests are still answered by its loop)
        threads.on_full = server.set_saturated
    kinds = listener_kinds(config, sockets)
    if tls is None and any(kinds):
        from fastcore._core.tls import TLSConfigError
        try:
            tls = make_tls_context(config)
        except TLSConfigError as e:
            error_log.error("setting %s", e)
            report(report_fd, f"setting {e}")
            return BOOT_ERROR
    redirect = None
    if config.https_redirect:
        https_port = next(describe(sock)[2] for sock, is_tls in zip(sockets, kinds) if is_tls)
        redirect = HttpsRedirect(https_port)
    for sock, is_tls in zip(sockets, kinds):
        url, host, port = describe(sock)
        server.listen(sock, listener_environ(config, host, port, multiprocess=multiprocess,
                                             scheme="https" if is_tls else "http"),
                      exclusive=exclusive and sock.family != socket.AF_UNIX,
                      tls=tls if is_tls else None, handler=None if is_tls else redirect)

    stopping = {"deadline": None}
    limit = config.max_requests + random.randint(0, config.max_requests_jitter) if config.max_requests else 0

    def check_drained():
        now = loop.time()
        if now >= stopping["idle_until"]:
            server.close_idle()
        # idle keep-alive connections get their grace; with no connection
        # left there is nothing to wait for, so the worker stops at once.
        # An ASGI worker also waits for its WebSocket handlers: their cleanup after the 1001
        if (now >= stopping["idle_until"] or server.connections == 0) and server.idle and \
                (asgi is None or asgi.gateway.idle):
            loop.stop()
            return
        if now >= stopping["deadline"]:
            loop.stop()
            return
        loop.call_later(0.05, check_drained)

    def stop_gracefully(reason):
        if stopping["deadline"] is None:
            error_log.info("worker stopping (%s): finishing in-flight requests", reason)
            stopping["deadline"] = loop.time() + config.graceful_timeout
            grace = min(config.graceful_idle_timeout, config.graceful_timeout)
            stopping["idle_until"] = loop.time() + grace
            stats.set_draining(True)
            server.drain(grace)
            if asgi is not None:
                asgi.gateway.drain()  # open WebSockets get a close frame 1001
            loop.call_soon(check_drained)

    def housekeeping():
        if access_log is not None:
            access_log.flush()
        if threads is not None and not stopping.get("stuck"):
            oldest = threads.oldest_job_start()
            if oldest is not None and time.monotonic() - oldest > config.timeout:
                # the loop still turns, but an application thread is stuck: stop
                # beating and date the heartbeat back to that job, so the arbiter
                # dumps every thread's stack and replaces this worker
                stopping["stuck"] = True
                error_log.error("an application thread has run one request for over %s s (timeout)",
                                config.timeout)
                loop.set_stats(None)
                stats.set_heartbeat(int(oldest * 1e9))
        loop.call_later(0.5, housekeeping)

    if limit:
        server.request_limit = limit
        server.on_request_limit = lambda: stop_gracefully(
            f"recycled after {limit} requests (max_requests {config.max_requests})")

    # A handler may run between two bytecodes of an inline application (or of
    # the access log's own code): it only queues the signal, and the loop acts
    # on the queue between events (handle_signals, through watch_signals).
    signals = collections.deque()

    def queue_signal(signum, frame):
        signals.append(signum)

    def handle_signals():
        while signals:
            signum = signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                stop_gracefully(signal.Signals(signum).name)
            elif signum == signal.SIGQUIT:
                error_log.info("worker stopping now: SIGQUIT")
                loop.stop()
            elif signum == signal.SIGUSR1 and access_log is not None:
                access_log.reopen()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, queue_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    loop.watch_signals(handle_signals)
    # time-driven work only when there is some: a worker with no access log
    # and no application thread started does no work that depends on the
    # clock (which also keeps the cost gate's instruction counts independent
    # of how fast the machine runs)
    if access_log is not None:
        loop.call_soon(housekeeping)
    elif threads is not None:
        threads.on_start = lambda: loop.call_soon(housekeeping)
    error_log.debug("worker %d booted: application %s", os.getpid(),
                    "inline" if threads is None else
                    f"inline, on up to {threads.count} threads after a slow call" if config.threads == "auto" else
                    f"on {threads.count} threads")
    if asgi is not None:
        try:
            asgi.start()  # the lifespan startup, before the first request
        except LifespanError as e:
            error_log.error("%s", e)
            report(report_fd, str(e))
            return APP_LOAD_ERROR
    try:
        if asgi is not None:
            asgi.run()
        else:
            loop.run()
    finally:
        for service in services:
            service.stop()
        for location in proxies:
            location.close_idle()
        server.close_all()
        if threads is not None:
            threads.stop()
        if asgi is not None:
            asgi.close()  # after close_all: the tasks left were told http.disconnect
        if access_log is not None:
            access_log.close()
    error_log.info("worker %d stopped after %d requests", os.getpid(), server.requests)
    return 0
