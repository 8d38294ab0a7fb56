"""Requests/s of fastcore and its peers in alternated rounds: the order of
the servers rotates every round, so a machine that slows down or speeds up
during the run weighs on every server alike. Prints each round and the mean,
min and max of each peer's ratio (fastcore's requests/s over the peer's).

    python -m bench.peers.rounds asgi_hello 6 6
    python -m bench.peers.rounds fastapi_hello 6 6 fastcore uvicorn granian-asgi
"""
import statistics
import sys

from bench.load.harness import measure

DEFAULT_SERVERS = ["fastcore", "uvicorn", "granian-asgi"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    app, rounds, seconds = argv[0], int(argv[1]), int(argv[2])
    names = argv[3:] or DEFAULT_SERVERS
    if names[0] != "fastcore":
        print("the first server must be fastcore (ratios are to it)", file=sys.stderr)
        return 2
    ratios = {name: [] for name in names[1:]}
    for number in range(rounds):
        shift = number % len(names)
        order = names[shift:] + names[:shift]
        results = {name: measure(name, app, seconds, 64) for name in order}
        for name in names[1:]:
            ratios[name].append(results["fastcore"]["rps"] / results[name]["rps"])
        figures = "  ".join(f"{name} {results[name]['rps']:,.0f} ({results[name]['cpu_us']:.1f} µs)" for name in names)
        print(f"round {number + 1} ({' > '.join(order)}): {figures}; fastcore vs " +
              ", ".join(f"{name} {ratios[name][-1]:.2f}x" for name in names[1:]), flush=True)
    print("mean: fastcore vs " + ", ".join(
        f"{name} {statistics.mean(values):.2f}x (min {min(values):.2f}, max {max(values):.2f})"
        for name, values in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
