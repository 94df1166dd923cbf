"""How long the command line takes to start: `i2i --help`, `i2i recipes`, `python -m i2i --help`
and `import i2i`, each in fresh processes, beside `import torch` for scale.

    python scripts/bench_cli.py --runs 10
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "i2i --help": ["i2i", "--help"],
    "i2i recipes": ["i2i", "recipes"],
    "python -m i2i --help": [sys.executable, "-m", "i2i", "--help"],
    "python -c 'import i2i'": [sys.executable, "-c", "import i2i"],
    "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
}


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per command (rounds interleaved)")
    args = parser.parse_args()
    if shutil.which("i2i") is None:
        sys.exit("The i2i command is not on PATH; install the package first (pip install -e .).")
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, command in COMMANDS.items():  # one untimed run each warms the file cache
        wall_seconds(command)
    for _ in range(args.runs):  # rounds interleaved, so drift on a shared machine hits every command alike
        for name, command in COMMANDS.items():
            times[name].append(wall_seconds(command))
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}, {args.runs} runs each")
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in times.items():
        print(f"{name:<40} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f}")


if __name__ == "__main__":
    main()
