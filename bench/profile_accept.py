"""Where SMTP acceptance spends its time: py-spy samples every busy thread of a Mailwright
server while smtp-source sends (until the text index has caught up), then the stacks are
put in buckets (framing, dot-unstuffing, hashing, MIME parse, FTS, DKIM/SPF, SQLite,
fsync) and the top frames listed.

py-spy counts a thread that is runnable but waiting for a CPU as busy: on a loaded machine
the shares lean towards the threads that run longest (the writer); the CPU per message of
bench/smtp_accept.py is the measure of cost, this of where it goes.

    .venv/bin/python bench/profile_accept.py [--size 102400] [--messages 1200]
        [--checkout DIR] [--raw OUT.txt]
"""

from __future__ import annotations

import argparse
import collections
import functools
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Mailwright, smtp_source

ROOT = Path(__file__).resolve().parent.parent

# The first bucket whose test matches a stack (all frames, and its innermost one) wins.
BUCKETS = [
    ("long texts made after delivery",
     lambda s, leaf: re.search(r"make_pending|make_texts|store_texts", s)),
    ("FTS index (trigram insert)",
     lambda s, leaf: re.search(r"index_pending|_index_text|Indexer|Writer\._background", s)),
    ("hashing (sha256)",
     lambda s, leaf: "digest_of" in s or re.search(r"\.update\(|sha256", source_line(leaf))),
    ("fsync / syncfs of blob files",
     lambda s, leaf: re.search(r"BlobStore\._sync|fsync|fdatasync", s)),
    ("blob files: create, write, rename",
     lambda s, leaf: re.search(r"_write_one|_write_tmp|_write_all|prewrite|write_batch", s)),
    ("DKIM/SPF/DMARC/ARC (trust/)", lambda s, leaf: "/trust/" in s),
    ("MIME parse + FETCH views",
     lambda s, leaf: re.search(r"/message/|imap/fetch\.py|SQLiteMeta\._index", s)),
    ("SQLite writer (SQL, commit and its fsync)",
     lambda s, leaf: re.search(r"_run_batch|store/sqlite/", s)),
    ("DATA framing, dot-unstuffing, text checks",
     lambda s, leaf: re.search(r"_next_message|_pass_on|_text_span|_end_of_message|"
                               r"TextCheck|LineMeter|Incoming\.write", s)),
    ("SMTP session, other framing", lambda s, leaf: "/smtp/" in s),
    ("delivery pipeline (rest)", lambda s, leaf: "/delivery/" in s),
    ("event loop, sockets, other", lambda s, leaf: True),
]


SOURCES = [ROOT / "src"]


@functools.cache
def source_line(frame: str) -> str:
    """The source text of a frame "function (package/module.py:line)", if found: C
    calls made from Python (hashlib, os.write) show as the line that calls them."""
    found = re.search(r"\(([^():]+\.py):(\d+)\)$", frame)
    if found:
        for base in SOURCES:
            path = base / found[1]
            if path.exists():
                lines = path.read_text().splitlines()
                number = int(found[2])
                return lines[number - 1] if 0 < number <= len(lines) else ""
    return ""


def summarize(raw: Path, top: int = 12) -> None:
    buckets: collections.Counter = collections.Counter()
    frames: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count, parts = int(n), stack.split(";")
        total += count
        name = next(name for name, test in BUCKETS if test(stack, parts[-1]))
        buckets[name] += count
        frames[" <- ".join(f.split(" (")[0] for f in parts[:-3:-1])] += count
    if not total:
        sys.exit("py-spy recorded no samples")
    print(f"{total} samples")
    for name, _ in BUCKETS:
        print(f"  {name:<44} {100 * buckets[name] / total:5.1f}%")
    print("top frames (innermost <- caller):")
    for frame, count in frames.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100 * 1024, help="message size, bytes")
    ap.add_argument("--messages", type=int, default=1200)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--checkout", type=Path, help="profile another checkout's Mailwright")
    ap.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    args = ap.parse_args()
    if args.checkout:
        SOURCES.insert(0, args.checkout.resolve() / "src")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy not found: .venv/bin/pip install py-spy (and run as root)")
    work = Path(tempfile.mkdtemp(prefix="mw-profile-", dir=ROOT / "bench"))
    raw = args.raw or work / "stacks.txt"
    server = Mailwright(work, checkout=args.checkout)
    try:
        smtp_source(server.port, 200, args.size, args.sessions)      # warm-up
        server.settle()
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(server.proc.pid), "--rate", "200", "--format",
             "raw", "--output", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = smtp_source(server.port, args.messages, args.size, args.sessions)
        server.settle()
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        print(f"{args.messages} x {args.size} B at {args.messages / elapsed:.0f} msg/s")
        summarize(raw)
    finally:
        server.proc.terminate()
        server.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)     # the stacks were read (or are --raw)


if __name__ == "__main__":
    main()
