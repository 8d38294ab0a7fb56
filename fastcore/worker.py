"""One worker process: binds (or is given) the listening sockets, builds the
loop, the WSGI gateway and the server, announces readiness, and runs until
it is told to stop.

Signals (single-process mode; the arbiter will own them with workers > 1):
TERM and INT stop gracefully (stop accepting, let in-flight requests finish
within graceful_timeout, exit 0); QUIT stops at once.
"""
import logging
import os
import resource
import signal
import socket
import sys

from fastcore.config import parse_address

error_log = logging.getLogger("fastcore.error")


class BindError(Exception):
    """A listening address could not be bound; the message is one line."""


def setup_logging(config):
    logger = logging.getLogger("fastcore")
    logger.handlers.clear()
    if config.error_log in (None, "-"):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(config.error_log)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(config.log_level.upper())
    logger.propagate = False


def raise_descriptor_limit(wanted):
    """Lets the worker hold max_connections sockets: soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def bind_socket(text, backlog):
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
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
    except OSError as e:
        raise BindError(f"cannot listen on {text}: {e.strerror or e}") from None
    return sock


def describe(sock):
    """(url, host, port) of a listening socket, with the real port when 0 was asked."""
    if sock.family == socket.AF_UNIX:
        path = sock.getsockname()
        return f"unix:{path}", "localhost", ""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    return f"http://{shown}:{port}", host, port


def serve(config, app, sockets=None):
    """Runs one worker in this process until stopped; returns the exit status."""
    from fastcore._core.connection import Server
    from fastcore._core.loop import Loop
    from fastcore.wsgi import AppThreads, Gateway, listener_environ

    setup_logging(config)
    if app is None:
        error_log.error("no application given: `fastcore serve MODULE:APP` (static files come later)")
        return 2
    raise_descriptor_limit(config.max_connections + 64)
    if sockets is None:
        try:
            sockets = [bind_socket(text, config.backlog) for text in config.bind]
        except BindError as e:
            print(f"fastcore: error: {e}", file=sys.stderr, flush=True)
            return 1

    loop = Loop()
    threads = AppThreads(loop, config.threads) if config.threads > 1 else None
    gateway = Gateway(app, config, threads)
    server = Server(loop, gateway, config)
    for sock in sockets:
        url, host, port = describe(sock)
        server.listen(sock, listener_environ(config, host, port, multiprocess=config.workers > 1))
        print(f"fastcore: listening on {url} (pid {os.getpid()})", file=sys.stderr, flush=True)

    stopping = {"deadline": None}

    def check_drained():
        if server.idle or loop.time() >= stopping["deadline"]:
            loop.stop()
        else:
            loop.call_later(0.05, check_drained)

    def graceful(signum, frame):
        if stopping["deadline"] is None:
            error_log.info("stopping: %s, finishing in-flight requests", signal.Signals(signum).name)
            stopping["deadline"] = loop.time() + config.graceful_timeout
            server.drain()
            loop.call_soon(check_drained)

    def immediate(signum, frame):
        error_log.info("stopping now: %s", signal.Signals(signum).name)
        loop.stop()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    signal.signal(signal.SIGQUIT, immediate)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    loop.watch_signals()
    try:
        loop.run()
    finally:
        server.close_all()
        if threads is not None:
            threads.stop()
        for sock in sockets:
            if sock.family == socket.AF_UNIX:
                try:
                    os.unlink(sock.getsockname())
                except OSError:
                    pass
            sock.close()
    error_log.info("stopped")
    return 0
