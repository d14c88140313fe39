"""Run every benchmark in this folder, one after the other, each in its own process.

    python benchmarks/run_all.py            # full runs (tens of minutes on a 2-core machine)
    python benchmarks/run_all.py --quick    # smoke runs: every script once with few trials
    python benchmarks/run_all.py cnn overhead   # only the scripts whose names contain these words

Each script prints its own table (ratio tinydl / PyTorch first); copy the tables you measured into README.md
with the command and the machine. Benchmarks are run one at a time: two at once would time each other's load.
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent


def scripts(words: list[str]) -> list[pathlib.Path]:
    found = sorted(HERE.glob("bench_*.py"))
    return [s for s in found if not words or any(word in s.stem for word in words)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("words", nargs="*", help="run only the scripts whose names contain one of these")
    parser.add_argument("--quick", action="store_true", help="smoke runs with few trials")
    args = parser.parse_args()
    failures = 0
    for script in scripts(args.words):
        print(f"\n=== {script.name} ===", flush=True)
        command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        failures += subprocess.run(command, cwd=HERE).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
