"""Running the server: one process, or a supervisor and N forked worker processes.

With `workers = N` the listening sockets are bound first, one per worker and
listener (SO_REUSEPORT: the kernel spreads new connections evenly over them, app.py
bind_listeners), then N processes each run their own event loop on theirs and
their own store connection and writer thread (SQLite in WAL mode serialises the
commits, and the writers take turns on an flock: store/sqlite/db.py WriteLock; each
process still commits its own deliveries in batches). Python runs
one thread of Python at a time per process, so this is how Mailwright uses more
than one core.

Per process, not shared: connection limits, the failed-auth counters and POP3
LOGIN-DELAY. The POP3 maildrop lock is a file lock, shared by all processes. With
several nodes on PostgreSQL (store/cluster.py) the failed-auth counters and the
maildrop lock are shared by every process of every node instead.

One process is the primary (worker 0, and its replacement if it dies): it alone
serves the HTTP API and /metrics (so an API key's rate limit is one counter) and runs
the housekeeping tasks that must not run twice at once (event pruning, webhook
deliveries); with several nodes the primaries elect one leader that runs them
(app.py App._lead). On SQLite it also builds the full-text index of every
process's deliveries (store/sqlite/textindex.py). The mail protocols and the queue
run in every process.

Metrics are counted in every process and summed by the one serving /metrics: each
process writes its values to files in data_dir/metrics (metrics/processes.py), which
`mailwright serve` empties before the fork; a worker's counts stay in the sum after it
exits, its open-session gauge does not.

Signals to the supervisor: SIGTERM/SIGINT stop every worker (each ends its sessions
gracefully, app.py); SIGHUP checks the config file once and, when it loads, is passed to
every worker, which reloads (app.py App.reload). systemd hears READY once the workers
are forked (the sockets are bound before: a connection made meanwhile waits in the
accept queue), RELOADING/READY around a reload and STOPPING at the end (net/notify.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time

from . import metrics
from .config import Config, Listener
from .net.notify import DISABLED, Notifier
from .service.reload import ReloadError, load_checked

log = logging.getLogger("mailwright")

RESPAWN_MIN_UPTIME = 5.0     # a worker dying sooner than this is a crash loop: give up

_reload_asked = False        # SIGHUP came before the worker's loop could take it


def remember_reload() -> None:
    """Until a process can reload (App.run_started takes SIGHUP over), a SIGHUP is
    noted rather than lost or fatal (its default action ends the process); the worker
    reloads once it serves. A child forked meanwhile inherits the note."""
    def note(signum, frame) -> None:
        global _reload_asked
        _reload_asked = True
    signal.signal(signal.SIGHUP, note)


def run_worker(config: Config, sockets: list[tuple[Listener, socket.socket]],
               primary: bool = True, notifier: Notifier = DISABLED) -> None:
    from .app import App
    app = App(config, primary=primary, notifier=notifier)
    try:
        asyncio.run(_serve(app, sockets))
    finally:
        app.close()


async def _serve(app, sockets) -> None:
    await app.start(sockets)
    await app.run_started(reload_missed=lambda: _reload_asked)


def supervise(config: Config, sockets: list[list[tuple[Listener, socket.socket]]],
              notifier: Notifier = DISABLED) -> int:
    """Fork config.workers workers, restart any that dies, stop them all on a signal,
    pass SIGHUP on to them. sockets[i]: worker i's listening sockets (app.py
    bind_listeners); a worker's replacement takes them over, with the connections
    waiting in their accept queues."""
    children: dict[int, tuple[float, int]] = {}     # pid: (started, worker index)
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            remember_reload()
            code = 0
            try:
                run_worker(config, sockets[index], primary=index == 0)
            except BaseException:  # a worker must never return into the supervisor's code
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children[pid] = (time.monotonic(), index)

    def tell_all(signum: int) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def stop(signum, frame) -> None:
        nonlocal stopping
        if not stopping:
            notifier.stopping()
        stopping = True
        tell_all(signal.SIGTERM)

    def reload(signum, frame) -> None:
        notifier.reloading()
        try:
            load_checked(config.path)     # once here, rather than N errors from N workers
        except ReloadError as e:
            log.error("reload failed, still serving the previous configuration: %s", e)
        else:
            tell_all(signal.SIGHUP)
        notifier.ready()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for index in range(config.workers):
        spawn(index)
    log.info("supervisor %d started %d workers", os.getpid(), config.workers)
    notifier.ready()
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        child = children.pop(pid, None)
        metrics.process_exited(pid)
        if child is None or stopping:
            continue
        started, index = child
        log.error("worker %d exited with status %d", pid, os.waitstatus_to_exitcode(code))
        if time.monotonic() - started < RESPAWN_MIN_UPTIME:
            log.error("worker crashed right after starting; stopping")
            status = 1
            stop(signal.SIGTERM, None)
            continue
        spawn(index)
    return status
