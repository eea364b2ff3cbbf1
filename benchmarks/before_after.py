"""The same cases on two source trees of poolcli, alternated: python benchmarks/before_after.py OLD NEW

For a change that should not change speed (the structure issue): compute (Python API, 4096²
RGB), end to end (a 12-MP PNG through the command line), batch (200 photos of 640×480) and
streaming (the 12-MP PNG forced through the banded path).  Each round runs every case once on
each tree, in alternating order, so the drift of this shared machine hits both; the table gives
the median of the rounds for each tree and their ratio (old / new: above 1 means the new tree
is faster).  Each tree compiles its own Numba cache first (a warm-up round, not counted).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ensure_data  # noqa: E402  (the benchmark images, made once)

COMPUTE = """
import sys, time, numpy as np, poolcli
img = (np.random.default_rng(0).random((4096, 4096, 3)) * 255).astype(np.uint8)
call = {{"sharpen": lambda: poolcli.convolve(img, "sharpen"), "max2": lambda: poolcli.pool(img, "max", 2),
        "avg2": lambda: poolcli.pool(img, "avg", 2)}}["{case}"]
call()
times = []
for _ in range(5):
    t0 = time.perf_counter(); call(); times.append(time.perf_counter() - t0)
print(sorted(times)[2])
"""


def in_tree(tree: Path, args: list[str], tmp: Path) -> float:
    """Seconds one command takes with ``tree`` first on the path (its compute time, for the
    compute cases: what the script prints)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, *args], env=env, cwd=tmp, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return float(out.stdout.strip().splitlines()[-1]) if args[0] == "-c" else wall


def cases(data: dict[str, Path], tmp: Path) -> dict[str, list[str]]:
    big, folder = str(data["big"]), str(data["folder"])
    cli = ["-m", "poolcli"]
    return {
        "compute: 4096² uint8 sharpen": ["-c", COMPUTE.format(case="sharpen")],
        "compute: 4096² uint8 max pool 2": ["-c", COMPUTE.format(case="max2")],
        "compute: 4096² uint8 avg pool 2": ["-c", COMPUTE.format(case="avg2")],
        "end to end: 12 MP Sobel → PNG": [*cli, "convolve", big, "-k", "sobel", "-q", "-o", "e.png"],
        "end to end: 12 MP max pool 2 → PNG": [*cli, "pool", big, "-m", "max", "-s", "2", "-q", "-o", "m.png"],
        "batch: 200 photos, max pool 2": [*cli, "pool", folder, "-m", "max", "-s", "2", "-q", "-o", "b/"],
        "streaming: 12 MP Sobel, --stream": [*cli, "convolve", big, "-k", "sobel", "--stream", "-q", "-o", "s.png"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    data = ensure_data()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        todo = cases(data, tmp)
        times: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in todo}
        for r in range(args.rounds + 1):  # round 0 compiles each tree's cache: not counted
            order = ["old", "new"] if r % 2 else ["new", "old"]
            for case, argv in todo.items():
                for which in order:
                    t = in_tree(trees[which], argv, tmp)
                    if r:
                        times[case][which].append(t)
        print(f"| case | old (median of {args.rounds}) | new | old / new |")
        print("|---|---|---|---|")
        for case, got in times.items():
            old, new = median(got["old"]), median(got["new"])
            spread = (max(got["new"]) - min(got["new"])) / new
            print(f"| {case} | {old * 1e3:,.0f} ms | {new * 1e3:,.0f} ms | {old / new:.2f} (new's spread ±{spread / 2:.0%}) |")


if __name__ == "__main__":
    main()
