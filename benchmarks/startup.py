"""Start-up time of the light commands: ``dstbench --version``, ``--help`` and ``plugins``.

Each command runs in a fresh interpreter ``--repeat`` times; the median wall time is printed,
with the time of a bare ``python -c pass`` for scale. ``--help`` and ``--version`` must not
import torch (``tests/test_layering.py`` checks it); ``plugins`` loads the built-in plugins,
which do.

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "dstbench --version": [sys.executable, "-m", "dstbench", "--version"],
    "dstbench --help": [sys.executable, "-m", "dstbench", "--help"],
    "dstbench plugins": [sys.executable, "-m", "dstbench", "plugins"],
}


def median_seconds(argv: list[str], repeat: int) -> float:
    """Median wall time of ``argv`` over ``repeat`` fresh processes."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=False, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Print the median start-up time of each command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, argv in COMMANDS.items():
        print(f"{name:<22} {median_seconds(argv, args.repeat):6.2f} s")


if __name__ == "__main__":
    main()
