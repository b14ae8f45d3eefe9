"""Run every benchmark in turn (`make bench`); each prints its own table.

They are separate processes so one's TensorFlow state or memory peak cannot colour the next.
Expect 10-15 minutes on a 2-core machine; run one script alone for a single table.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ("ingest_bench.py", "train_bench.py", "tflite_bench.py", "fullres_bench.py")


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in BENCHES:
        print(f"\n===== {name} =====", flush=True)
        if subprocess.call([sys.executable, str(here / name)]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
