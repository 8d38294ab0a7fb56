"""Instructions per request of fastcore or a peer, under callgrind, for the
raw ASGI hello or the FastAPI hello: requests one at a time on one
keep-alive connection, at 300 and at 1,300 requests, the difference over
1,000 (bench.cost.measure.per_request, as the cost gate counts), so start-up
and shutdown cancel out. Instruction counts do not drift with the machine's
load, where requests/s do.

    python -m bench.peers.instructions fastcore fastapi_hello

SERVER: fastcore (uvloop; its workers, as its arbiter does no per-request
work), uvicorn (uvloop, httptools), granian (asgi; every process).
"""
import sys

from bench.cost.layers import REQUEST, server_env
from bench.cost.measure import LOAD, per_request, python_executable

ANSWERS = {"asgi_hello": b"Hello, World!", "fastapi_hello": b'{"message":"Hello, World!"}'}
SERVERS = ("fastcore", "uvicorn", "granian")


def command(server, app):
    py = python_executable()
    return {
        "fastcore": lambda port: [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                                  "--asyncio-loop", "uvloop"],
        "uvicorn": lambda port: [py, "-m", "uvicorn", f"apps:{app}", "--port", str(port), "--loop", "uvloop",
                                 "--http", "httptools", "--log-level", "warning", "--no-access-log"],
        "granian": lambda port: [py, "-m", "granian", "--interface", "asgi", "--port", str(port), "--workers", "1",
                                 "--no-ws", f"apps:{app}"],
    }[server]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in SERVERS or argv[1] not in ANSWERS:
        print(__doc__, file=sys.stderr)
        return 2
    server, app = argv
    cost = per_request(command(server, app), REQUEST, ANSWERS[app], counts=(300, 1300), env=server_env(),
                       cwd=str(LOAD), children_only=server == "fastcore", trace_children=True, load_timeout=600)
    print(f"{server} {app}: {cost:,.0f} instructions per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
