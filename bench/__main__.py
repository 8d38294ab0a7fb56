"""python -m bench report: see bench/report.py."""
import sys

if len(sys.argv) < 2 or sys.argv[1] != "report":
    print("usage: python -m bench report [--duration N] [--skip-load]", file=sys.stderr)
    sys.exit(2)
from bench.report import main

sys.exit(main(sys.argv[2:]))
