"""Requests/s and CPU per request of fastcore and its peers in alternated
rounds: the order of the servers rotates every round, so a machine that
slows down or speeds up during the run weighs on every server alike. Prints
each round, then the mean, min and max of each peer's ratios: fastcore's
requests/s over the peer's, and fastcore's CPU time per request over the
peer's (below 1: fastcore spends less).

    python -m bench.peers.rounds asgi_hello 6 6
    python -m bench.peers.rounds fastapi_hello 6 6 fastcore uvicorn granian-asgi
    python -m bench.peers.rounds proxy 6 6

`proxy` is the reverse proxy's small response: the backend nginx (on the
client's core) behind fastcore-proxy, nginx-proxy and haproxy, each on core 0.
"""
import contextlib
import statistics
import sys

from bench.load.harness import measure, proxy_backend

DEFAULT_SERVERS = {"proxy": ["fastcore-proxy", "nginx-proxy", "haproxy"]}
ASGI_SERVERS = ["fastcore", "uvicorn", "granian-asgi"]


@contextlib.contextmanager
def target(app):
    """What each server is given: the application's name, or for `proxy`
    the backend's address (the backend runs for the whole run)."""
    if app != "proxy":
        yield app
        return
    with proxy_backend() as port:
        yield f"127.0.0.1:{port}"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    app, rounds, seconds = argv[0], int(argv[1]), int(argv[2])
    names = argv[3:] or DEFAULT_SERVERS.get(app, ASGI_SERVERS)
    first = names[0]
    if not first.startswith("fastcore"):
        print("the first server must be fastcore (ratios are to it)", file=sys.stderr)
        return 2
    rps_ratios = {name: [] for name in names[1:]}
    cpu_ratios = {name: [] for name in names[1:]}
    with target(app) as given:
        for number in range(rounds):
            shift = number % len(names)
            order = names[shift:] + names[:shift]
            results = {name: measure(name, given, seconds, 64) for name in order}
            for name in names[1:]:
                rps_ratios[name].append(results[first]["rps"] / results[name]["rps"])
                cpu_ratios[name].append(results[first]["cpu_us"] / results[name]["cpu_us"])
            figures = "  ".join(f"{name} {results[name]['rps']:,.0f} ({results[name]['cpu_us']:.1f} µs)"
                                for name in names)
            print(f"round {number + 1} ({' > '.join(order)}): {figures}; {first} vs " +
                  ", ".join(f"{name} {rps_ratios[name][-1]:.2f}x requests/s, {cpu_ratios[name][-1]:.2f}x CPU"
                            for name in names[1:]), flush=True)
    for label, ratios in (("requests/s", rps_ratios), ("CPU per request", cpu_ratios)):
        print(f"mean {label}: {first} vs " + ", ".join(
            f"{name} {statistics.mean(values):.2f}x (min {min(values):.2f}, max {max(values):.2f})"
            for name, values in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
