"""Campaign tracking: the cost of the rewrite stage, and the pixel and click endpoints
under load against a bare peer.

1. The tracking stage (delivery/stages/tracking.py) in-process on a 50 KB HTML campaign
   message (multipart/alternative, the HTML quoted-printable, ~200 links), one
   recipient, the rest of the pipeline a no-op: median time per message with a body not
   seen before and with the same body again (the tokenized part is cached), and of the
   two halves (tokenizing, writing the copy with its tokens); wall and CPU time (the
   process's, all threads), since on a shared machine wall time includes waiting.
2. GET /t/o/TOKEN (pixel) and /t/c/TOKEN (302) of a Mailwright server (one process,
   its event log writing every hit), driven by wrk (Debian's, a real HTTP load client:
   1 thread, 64 keep-alive connections, 1,000 distinct recipients' tokens picked at
   random by a Lua script), against a peer: a bare Starlette app on uvicorn with the
   same loop and HTTP implementation (uvloop, h11) answering the same GIF and redirect
   without checking anything. Rounds alternate; prints requests/s medians and the ratio.

    .venv/bin/python bench/tracking.py [--rounds 3] [--seconds 8] [--messages 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import quopri
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import Mailwright, free_port, raise_fd_limit, wait_port

from mailwright.address import parse_mailbox
from mailwright.config import parse
from mailwright.delivery.campaigns import keys, rewrite, tokens
from mailwright.delivery.pipeline import Pipeline
from mailwright.delivery.received import Client, Envelope, ReceivedMessage, Recipient
from mailwright.delivery.recipients import Target
from mailwright.delivery.stages.tracking import PIXEL, TrackingStage
from mailwright.events.log import EventLog

ROOT = Path(__file__).resolve().parent.parent
WRK = "/usr/bin/wrk"
SECRET = base64.urlsafe_b64encode(b"b" * 32).rstrip(b"=").decode()
RECIPIENTS = 1000


def campaign_message(size: int = 50_000) -> bytes:
    row = ('<tr><td style="padding:8px;color:#333;font-family:Arial">Item {i}: something '
           'you might like, now 20% off &amp; free shipping</td><td><a href="https://shop.'
           'example/item/{i}?utm_source=mail&amp;utm_campaign=spring">Buy</a></td></tr>\n')
    rows, i = [], 0
    while sum(map(len, rows)) < size - 200:
        rows.append(row.format(i=i))
        i += 1
    html = ("<html><head><style>td{border:0}</style></head><body><table>"
            + "".join(rows) + "</table></body></html>\n").encode()
    body = quopri.encodestring(html).replace(b"\n", b"\r\n")
    return (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: Spring\r\n"
            b"X-Mailwright-Campaign: spring\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nSpring sale at https://shop.example/\r\n"
            b"--b\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body + b"\r\n--b--\r\n")


class Done:
    async def run(self, msg: ReceivedMessage) -> None:
        self.last = msg


def stage_timings(messages: int, work: Path) -> dict[str, float]:
    """Median seconds per message: the whole stage with a body not seen before and with
    the body of the previous message (a campaign's next recipient: the tokenized part
    is cached), and the halves: tokenizing, writing the copy."""
    config = parse(f'hostname = "mail.example.test"\ndata_dir = "{work}"\n'
                   '[[listeners]]\nrole = "submission"\nport = 587\n')
    done = Done()
    stage = TrackingStage(config, EventLog(None), Pipeline([done]))
    content = campaign_message()
    client = Client("S", "127.0.0.1", "", True, None, "alice@example.test", "submission")

    async def one(fresh: bool) -> tuple[float, float]:
        envelope = Envelope(parse_mailbox("alice@example.test"), recipients=[
            Recipient(parse_mailbox("bob@remote.test"), [Target("bob@remote.test")])])
        msg = ReceivedMessage("M1", time.time(), envelope, client, content)
        if fresh:
            rewrite._cache.clear()
        start, cpu = time.perf_counter(), time.process_time()
        await stage.run(msg)
        return time.perf_counter() - start, time.process_time() - cpu

    async def all_of(fresh: bool) -> list[tuple[float, float]]:
        for _ in range(20):                       # warm-up: key ring, imports, caches
            await one(fresh)
        return [await one(fresh) for _ in range(messages)]

    result = {}
    for name, fresh in (("new body", True), ("same body", False)):
        runs = asyncio.run(all_of(fresh))
        result[name] = statistics.median(wall for wall, _ in runs)
        result[f"{name} cpu"] = statistics.median(cpu for _, cpu in runs)
    assert b"/t/c/" in done.last.content and len(content) >= 50_000
    ring = keys.ring_for(config)
    plans, applies = [], []
    for _ in range(messages):
        rewrite._cache.clear()
        start = time.process_time()
        plan = rewrite.analyse(content)
        plans.append(time.process_time() - start)
        start = time.process_time()
        click = tokens.click_encoder(ring, "M1", "bob@remote.test", "example.test", "spring")
        plan.apply(click, PIXEL)
        applies.append(time.process_time() - start)
    result["tokenize"] = statistics.median(plans)
    result["write the copy"] = statistics.median(applies)
    result["links"] = plan.links
    return result


PEER = textwrap.dedent('''
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    sys.path.insert(0, {src!r})
    from mailwright.public.tracking import PIXEL, NO_CACHE

    async def pixel(request):
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    async def click(request):
        return Response(status_code=302, headers={{"Location": "https://shop.example/"}})

    app = Starlette(routes=[Route("/t/o/{{token}}", pixel), Route("/t/c/{{token}}", click)])
    uvicorn.run(app, host="127.0.0.1", port={port}, loop="uvloop", http="h11",
                log_config=None, access_log=False, server_header=False)
''')


def lua(paths: list[str]) -> str:
    listed = ",\n".join(f'"{p}"' for p in paths)
    return (f"paths = {{\n{listed}\n}}\nmath.randomseed(17)\n"
            "request = function()\n"
            "  return wrk.format('GET', paths[math.random(#paths)])\nend\n")


def wrk(port: int, script: Path, seconds: int) -> float:
    out = subprocess.run([WRK, "-t1", "-c64", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    if "Non-2xx or 3xx" in out:
        sys.exit(f"errors under load:\n{out}")
    return float(re.search(r"Requests/sec:\s*([\d.]+)", out)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--messages", type=int, default=300)
    args = ap.parse_args()
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    try:
        t = stage_timings(args.messages, work / "stage")
        print(f"\nTracking stage, 50 KB HTML (quoted-printable, {t['links']} links), one "
              f"recipient, {args.messages} messages, median ms per message:")
        print(f"  a new body      {t['new body'] * 1000:6.2f} (CPU {t['new body cpu'] * 1000:.2f})")
        print(f"  the same body   {t['same body'] * 1000:6.2f} (CPU "
              f"{t['same body cpu'] * 1000:.2f})")
        print(f"  CPU of the halves: tokenize {t['tokenize'] * 1000:.2f}, write the copy "
              f"{t['write the copy'] * 1000:.2f}")
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall "
              f"times on a busy machine include waiting for a CPU)")
        endpoints(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def endpoints(work: Path, args) -> None:
    if not Path(WRK).exists():
        sys.exit(f"{WRK} not found: apt-get install wrk (make bench-deps)")
    http_port, peer_port = free_port(), free_port()
    server = Mailwright(work, extra=(
        f'[[listeners]]\nrole = "http"\nport = {http_port}\n[http]\nrate_limit = 0\n'
        f'[campaigns]\nkeys = ["b1:{SECRET}"]\n'))
    peer_py = work / "peer.py"
    peer_py.write_text(PEER.format(src=str(ROOT / "src"), port=peer_port))
    peer = subprocess.Popen([sys.executable, str(peer_py)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(http_port, server.proc)
        wait_port(peer_port, peer)
        ring = keys.KeyRing((("b1", base64.urlsafe_b64decode(SECRET + "="),),))
        scripts = {}
        for kind, route in ((tokens.OPEN, "o"), (tokens.CLICK, "c")):
            paths = [f"/t/{route}/" + tokens.encode(ring, tokens.Token(
                kind, f"M{i}", f"reader{i}@remote.test", "example.test", "spring",
                "https://shop.example/item/7?utm=spring" if kind == tokens.CLICK else ""))
                for i in range(RECIPIENTS)]
            scripts[route] = work / f"{route}.lua"
            scripts[route].write_text(lua(paths))
        for route in scripts:                          # warm-up, not counted
            wrk(http_port, scripts[route], 2)
            wrk(peer_port, scripts[route], 2)
        rates = {(who, route): [] for who in ("mailwright", "peer") for route in scripts}
        for r in range(args.rounds):
            order = [("mailwright", http_port), ("peer", peer_port)]
            for who, port in order if r % 2 == 0 else order[::-1]:
                for route in scripts:
                    rates[(who, route)].append(wrk(port, scripts[route], args.seconds))
        print(f"\nPixel and click endpoints, one worker each, wrk -t1 -c64 "
              f"{args.seconds} s x {args.rounds} rounds, {RECIPIENTS} recipients' tokens, "
              "requests/s (median [min-max]):")
        print(f"{'':>14}{'mailwright':>24}{'bare starlette':>24}{'ratio':>8}")
        for route, name in (("o", "pixel /t/o"), ("c", "click /t/c")):
            ours, bare = rates[("mailwright", route)], rates[("peer", route)]
            print(f"{name:>14}{_fmt(ours):>24}{_fmt(bare):>24}"
                  f"{statistics.median(ours) / statistics.median(bare):7.2f}x")
    finally:
        peer.terminate()
        server.proc.terminate()
        peer.wait(30)
        server.proc.wait(30)


def _fmt(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.0f} [{min(rates):.0f}-{max(rates):.0f}]"


if __name__ == "__main__":
    main()
