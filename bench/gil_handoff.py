"""How long a helper thread's work takes beside a busy event loop: the blob store
writing batches of 100 KB files (BlobStore.write_batch, its thread pool and one
syncfs), alone and beside a thread that, like a loaded event loop, runs Python for
~100 µs at a time and lets go of the GIL only for a short syscall in between.

CPython gives the GIL to a waiting thread only once the holder has kept it for the
switch interval without a switch, and a holder that lets go and takes it back at
each syscall counts as switching. So the helper gets the GIL mainly when the loop
blocks, however short the interval (docs/ARCHITECTURE.md: what bounds SMTP accept).

    .venv/bin/python bench/gil_handoff.py [--batches 10] [--interval 0.005]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from mailwright.store.blobs import BlobStore  # noqa: E402

BATCH = 9                 # about what the writer batches under 20 sessions
SIZE = 100 * 1024


def busy_loop(stop: threading.Event) -> None:
    """Python work in ~100 µs stretches, each followed by a syscall that releases the
    GIL for a moment (as the event loop's sends and epoll_wait(0) do)."""
    while not stop.is_set():
        total = 0
        for i in range(1500):
            total += i
        select.select([], [], [], 0)


def batches(store: BlobStore, count: int) -> list[float]:
    times = []
    for _ in range(count):
        items = [os.urandom(16) * (SIZE // 16) for _ in range(BATCH)]
        start = time.perf_counter()
        store.write_batch(items)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--interval", type=float, default=sys.getswitchinterval(),
                    help="sys.setswitchinterval, seconds")
    args = ap.parse_args()
    sys.setswitchinterval(args.interval)
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    try:
        store = BlobStore(work)
        alone = statistics.median(batches(store, args.batches))
        stop = threading.Event()
        loop = threading.Thread(target=busy_loop, args=(stop,), daemon=True)
        loop.start()
        try:
            beside = statistics.median(batches(store, args.batches))
        finally:
            stop.set()
            loop.join()
        print(f"{BATCH} blob files of {SIZE // 1024} KB, switch interval "
              f"{args.interval * 1e6:.0f} µs, median of {args.batches} batches:")
        print(f"  alone            {alone * 1e3:9.1f} ms")
        print(f"  beside the loop  {beside * 1e3:9.1f} ms  ({beside / alone:.0f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
