"""``python -m fastcore``: the same as the ``fastcore`` command."""

from fastcore.cli import run

if __name__ == "__main__":
    run()
