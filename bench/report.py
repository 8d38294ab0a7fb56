"""Latency of each layer, side by side with the peers, and the cost trend.

    python -m bench report [--duration 10] [--skip-load]

1. runs the parser micro benchmarks (pytest-benchmark, fastcore, httptools and
   h11 in one run) and prints median/p99 latency and requests/s per parser;
2. runs the load harness (bench/load) for the WSGI and static-file layers
   against the peers;
3. draws bench/charts/cost.png (instructions per request of each layer over
   the commits of bench/history.jsonl) and bench/charts/latency.png (the
   latest requests/s and p99 of every server), the charts the README shows.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
CHARTS = BENCH / "charts"


def parser_layer():
    """{(case, parser): stats} from one pytest-benchmark run of bench_parser.py."""
    out = pathlib.Path(tempfile.mkdtemp()) / "parser.json"
    subprocess.run([sys.executable, "-m", "pytest", str(BENCH / "bench_parser.py"), "-q", "-p", "no:cacheprovider",
                    "--benchmark-only", f"--benchmark-json={out}"], check=True, cwd=BENCH / "load",
                   stdout=subprocess.DEVNULL)
    results = {}
    for bench in json.loads(out.read_text())["benchmarks"]:
        case, parser = bench["param"].split("-") if "param" in bench else bench["name"].split("[")[1][:-1].split("-")
        stats = bench["stats"]
        data = sorted(stats.get("data") or [stats["median"]])
        p99 = data[min(len(data) - 1, int(len(data) * 0.99))]
        results.setdefault(case, {})[parser] = {"p50": stats["median"], "p99": p99, "rps": stats["ops"]}
    return results


def print_layer(title, rows):
    base = rows.get("fastcore")
    print(f"\n### {title}\n")
    print("| implementation | p50 | p99 | requests/s | requests/s vs fastcore |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        if not r:
            print(f"| {name} | absent | | | |")
            continue
        ratio = f"{r['rps'] / base['rps']:.2f}x" if base else ""
        print(f"| {name} | {r['p50'] * 1e6:.2f} µs | {r['p99'] * 1e6:.2f} µs | {r['rps']:,.0f} | {ratio} |")


def load_layers(duration):
    out = pathlib.Path(tempfile.mkdtemp()) / "load.json"
    subprocess.run([sys.executable, "-m", "bench.load", "--scenarios", "hello,flask,pipeline,static", "--duration",
                    str(duration), "--json", str(out)], check=True, cwd=ROOT)
    load = json.loads(out.read_text())
    # one scenario per static file, servers named as in the others
    for label, rows in load.pop("static", {}).items():
        load[f"static {label}"] = {name.replace("-static", ""): r for name, r in rows.items()}
    return load


def draw_charts(load=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    CHARTS.mkdir(exist_ok=True)
    history = [json.loads(line) for line in (BENCH / "history.jsonl").read_text().splitlines() if line.strip()]
    layers = sorted({name for record in history for name in record["layers"]})
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 2.2 * len(layers)), squeeze=False)
    labels = [f"{r['commit']}\n{r['date']}" for r in history]
    for ax, layer in zip(axes[:, 0], layers):
        values = [r["layers"].get(layer) for r in history]
        ax.plot(range(len(history)), values, marker="o")
        ax.set_title(f"{layer}: instructions per request", fontsize=10)
        ax.set_xticks(range(len(history)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(CHARTS / "cost.png", dpi=100)
    plt.close(fig)
    if load:
        scenarios = [s for s in load if s != "idle"]
        columns = min(4, len(scenarios))
        rows_count = (len(scenarios) + columns - 1) // columns
        fig, axes = plt.subplots(rows_count, columns, figsize=(4.5 * columns, 3.6 * rows_count), squeeze=False)
        for ax in axes.flat[len(scenarios):]:
            ax.set_visible(False)
        for ax, scenario in zip(axes.flat, scenarios):
            rows = {k: v for k, v in load[scenario].items() if v}
            ax.bar(list(rows), [v["rps"] for v in rows.values()],
                   color=["tab:red" if k == "fastcore" else "tab:gray" for k in rows])
            ax.set_title(f"{scenario}: requests/s" + (" (2 workers)" if scenario == "workers" else " (one worker)"),
                         fontsize=10)
            ax.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        fig.savefig(CHARTS / "latency.png", dpi=100)
        plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--skip-load", action="store_true", help="parser layer and charts only")
    args = parser.parse_args(argv)
    for case, rows in parser_layer().items():
        print_layer(f"parser, {case}", rows)
    load = None
    if not args.skip_load:
        load = load_layers(args.duration)
        for scenario, rows in load.items():
            if scenario != "idle":
                print_layer(f"server, {scenario}", {k: (v and {"p50": v["p50"], "p99": v["p99"], "rps": v["rps"]})
                                                    for k, v in rows.items()})
    draw_charts(load)
    print(f"\ncharts: {CHARTS / 'cost.png'}" + (f", {CHARTS / 'latency.png'}" if load else ""))
    return 0
