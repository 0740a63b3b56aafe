"""Run every benchmark in bench/ and print one table (``make bench``).

Each ``bench_*.py`` module defines ``run(quick: bool = False) -> list[BenchRow]``;
every figure stands beside a baseline measured in the same run, with the ratio.

    python bench/run_all.py [--quick] [--only detector,model] [--json results.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a fast check")
    parser.add_argument(
        "--only", default="", help="comma-separated benchmark names (e.g. detector)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    names = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s) {sorted(unknown)}; valid: {names}")
        names = [n for n in names if n in wanted]

    rows: list[BenchRow] = []
    failed: list[str] = []
    for name in names:
        start = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(f"bench_{name}").run(quick=args.quick))
        except Exception:  # keep going: one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
        print(f"[bench] {name} done in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    print(format_table(rows))
    if args.json:
        payload = [{**asdict(r), "ratio": r.ratio} for r in rows]
        args.json.write_text(json.dumps(payload, indent=2))
    if failed:
        print(f"failed benchmarks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
