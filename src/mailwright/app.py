"""Composition root: build the services from the config and start the listeners."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .address import Address
from .admin import Admin
from .admin.demo import DEMO_ADMIN
from .admin.pruner import prune_periodically
from .auth import passwords
from .auth.logins import Logins
from .certificates.files import AcmeFiles
from .certificates.renewal import Renewer
from .certificates.watch import watch as watch_certificate
from .config import Config, Listener
from .delivery import pop3_expiry
from .delivery.assemble import Parts
from .dns import Resolver
from .events.log import EventLog
from .events.types import Event
from .imap.fetch import views as fetch_views
from .imap.notify import MailboxWatch
from .imap.server import ImapProtocol
from .metrics import Metrics, queue_recipients, webhook_backlog
from .net.asgi import HttpServer
from .net.certs import CertificateError, ServerCertificates
from .net.connection import LINGER
from .net.limits import ConnectionLimiter
from .net.notify import DISABLED, Notifier
from .net.timeouts import IdleTimeouts
from .net.tls import LocalCertificate, local_certificate
from .pop3.locks import ClusterMaildropLocks, MaildropLocks
from .pop3.server import Pop3Protocol
from .pop3.session import Shared as Pop3Shared
from .queue import states as queue_states
from .queue.runner import QueueRunner
from .service import logs
from .service.reload import ReloadError, load_checked, needs_restart
from .smtp.server import SmtpProtocol
from .store import open_store as open_backend
from .store.base import MailStore
from .store.cluster import Cluster
from .trust.inbound import InboundChecks
from .trust.outbound import OutboundSigner
from .trust.sav import SenderVerifier
from .webhooks.dispatcher import Dispatcher

log = logging.getLogger("mailwright")

PROTOCOLS = {"smtp": SmtpProtocol, "pop3": Pop3Protocol, "imap": ImapProtocol}


class ListenError(Exception):
    pass


@dataclass
class Services:
    config: Config
    store: MailStore
    logins: Logins
    events: EventLog
    connections: set = field(default_factory=set)   # live protocol objects
    pop3: Pop3Shared | None = None
    watch: MailboxWatch | None = None                # IMAP IDLE wake-ups
    runner: QueueRunner | None = None
    inbound: InboundChecks | None = None
    outbound: OutboundSigner | None = None
    metrics: Metrics | None = None                   # counted from events; /metrics renders

    def parts(self) -> Parts:
        """What delivery pipelines are built from: the shared checks and signer, the
        queue's wake-up. SMTP sessions use them, and the HTTP API's sends
        (Admin(..., parts=services.parts()))."""
        return Parts(self.config, self.store, self.events, inbound=self.inbound,
                     outbound=self.outbound, on_queued=self.runner.wake if self.runner else None)


def trust_services(config: Config, store: MailStore, resolver: Resolver
                   ) -> tuple[InboundChecks, OutboundSigner]:
    checks = config.checks
    verifier = None
    if any(a.sender_verify != "off"
           for a in (checks.actions, *(actions for _, actions in checks.domains))):
        verifier = SenderVerifier(resolver, config.hostname, port=config.queue.port,
                                  positive_ttl=checks.sender_verify_positive_ttl,
                                  negative_ttl=checks.sender_verify_negative_ttl,
                                  rate=checks.sender_verify_rate)
    inbound = InboundChecks(config, resolver, verifier)
    return inbound, OutboundSigner(store, inbound.authserv_id)


def open_store(config: Config, indexer: bool = False) -> MailStore:
    """The configured store backend. It keeps IMAP's FETCH views of each message
    (imap/fetch.py) without knowing IMAP: the views are handed to it here. Passwords it
    stores from now on are hashed with the configured argon2 parameters. indexer: this
    process keeps the full-text index up (the server's primary; never the CLI)."""
    a = config.auth
    passwords.use(passwords.Argon2Params(a.argon2_time_cost, a.argon2_memory_kib,
                                         a.argon2_parallelism))
    return open_backend(config, render_views=fetch_views, indexer=indexer)


def server_certificate(config: Config) -> LocalCertificate:
    """The configured certificate (never touched), or the one the local CA issues."""
    if config.tls.cert:
        return LocalCertificate(Path(config.tls.cert), Path(config.tls.key), ca=None)
    acme = AcmeFiles.of(config.data_dir)
    if config.acme.enabled and acme.present():
        return LocalCertificate(acme.cert, acme.key, ca=None)
    # With ACME on, the local CA's certificate serves until the first issuance.
    return local_certificate(config.data_dir / "tls", config.hostname,
                             [listener.address for listener in config.listeners])


def certificate_pairs(config: Config) -> list[tuple[Path, Path]]:
    """What the listeners serve: the configured certificates (the default first), or
    the local CA's leaf."""
    if config.tls.cert:
        return [(Path(p.cert), Path(p.key)) for p in config.tls.pairs()]
    certificate = server_certificate(config)
    return [(certificate.cert, certificate.key)]


def connect_summary(config: Config, demo: Address | None, password: str | None,
                    ca: Path | None = None, admin_password: str | None = None) -> str:
    by_role = {listener.role: listener for listener in config.listeners}
    user = str(demo) if demo else "USER@DOMAIN"
    lines = ["", f"Mailwright is running as {config.hostname}"]
    for listener in config.listeners:
        how = ("web admin /admin/, HTTP API /api/v1/docs" if listener.protocol == "http"
               else "STARTTLS")
        lines.append(f"  {listener.role:<12} {listener.address}:{listener.port}"
                     + ("  (implicit TLS)" if listener.implicit_tls else f"  ({how})"))
    if demo:
        lines.append(f"  demo account: {user}" +
                     (f"  password: {password}   (shown once; change it with "
                      f"`mailwright user passwd {user}`)" if password else ""))
    if admin_password:
        web = next((lst for lst in config.listeners if lst.protocol == "http"), None)
        scheme = "https" if web and web.implicit_tls else "http"
        where = f"{scheme}://{web.address}:{web.port}/admin/" if web else "(no http listener)"
        lines.append(f"  web admin: {where}  name: {DEMO_ADMIN}  password: {admin_password}"
                     f"   (shown once; change it with `mailwright admin passwd {DEMO_ADMIN}`)")
    if sub := by_role.get("submission"):
        lines += ["", "Send a test message with swaks:",
                  f"  swaks --server {sub.address}:{sub.port} --tls --auth PLAIN "
                  f"--auth-user {user} --auth-password PASSWORD --from {user} --to {user}"]
    if mx := by_role.get("mx"):
        lines += ["Deliver as another server would:",
                  f"  swaks --server {mx.address}:{mx.port} --to {user}"]
    lines += ["", "Thunderbird / any mail client (outgoing server):",
              f"  server {config.hostname} (or {config.listeners[0].address}), "
              f"username {user}, normal password"]
    if sub:
        lines.append(f"  port {sub.port}, connection security STARTTLS")
    if subs := by_role.get("submissions"):
        lines.append(f"  or port {subs.port}, connection security SSL/TLS")
    if imaps := by_role.get("imaps"):
        lines.append(f"Incoming mail (IMAP): port {imaps.port}, connection security SSL/TLS")
    if imap := by_role.get("imap"):
        lines.append(f"  or IMAP port {imap.port}, connection security STARTTLS")
    if pop3s := by_role.get("pop3s"):
        lines.append(f"Incoming mail (POP3): port {pop3s.port}, connection security SSL/TLS")
    if pop3 := by_role.get("pop3"):
        lines.append(f"  or POP3 port {pop3.port}, connection security STARTTLS")
    if ca:
        lines += trust_instructions(config, ca, user)
    return "\n".join(lines) + "\n"


def trust_instructions(config: Config, ca: Path, user: str) -> list[str]:
    """How a client trusts the local CA that issued the server certificate."""
    imaps = next((lst for lst in config.listeners if lst.role == "imaps"), None)
    lines = ["", f"TLS: the certificate is issued by this server's own CA: {ca}",
             "  Trust that file once, and keep certificate checks on:",
             "  Thunderbird: Settings > Privacy & Security > Certificates > Manage "
             "Certificates > Authorities > Import",
             f"  mbsync: CertificateFile {ca}   (Host: {config.hostname}, localhost or "
             "the listener address)"]
    if imaps:
        host = imaps.address if not ipaddress.ip_address(imaps.address).is_unspecified \
            else config.hostname
        host = f"[{host}]" if ":" in host else host
        lines.append(f"  curl: curl --cacert {ca} --user {user} imaps://{host}:{imaps.port}/")
    return lines


Bound = list[tuple[Listener, socket.socket]]


def bind_listeners(config: Config, workers: int = 1) -> list[Bound]:
    """Bind every listener before anything starts: all or nothing. One list of sockets
    per worker process. With several workers each mail listener is bound once per worker
    with SO_REUSEPORT, so that the kernel spreads new connections evenly over the
    workers (by a hash of the client's address and port). On one shared socket the
    worker that wakes first takes most of a burst of connections, and long sessions
    (a client sending many messages on one) leave one worker saturated while the other
    idles. HTTP is served by the primary alone: its listeners have one socket, shared."""
    per_worker: list[Bound] = [[] for _ in range(workers)]
    opened: list[socket.socket] = []
    try:
        for listener in config.listeners:
            copies = workers if workers > 1 and listener.protocol != "http" else 1
            if copies > 1:
                # SO_REUSEPORT would let this bind join another server's sockets on the
                # port (any process of the same user that set it too) and share its
                # connections: first bind without it, which fails if anyone listens.
                _bind(listener, reuse_port=False).close()
            socks = []
            for _ in range(copies):
                socks.append(_bind(listener, reuse_port=copies > 1))
                opened.append(socks[-1])
            for index, bound in enumerate(per_worker):
                bound.append((listener, socks[index % copies]))
            log.info("listening role=%s address=%s port=%d", listener.role,
                     listener.address, listener.port)
    except ListenError:
        for s in opened:
            s.close()
        raise
    return per_worker


def _bind(listener: Listener, reuse_port: bool) -> socket.socket:
    try:
        sock = socket.create_server((listener.address, listener.port), backlog=1024,
                                    family=socket.AF_INET6 if ":" in listener.address
                                    else socket.AF_INET, reuse_port=reuse_port)
    except OSError as e:
        raise ListenError(f"cannot listen on {listener.address}:{listener.port} "
                          f"({listener.role}): {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


class App:
    def __init__(self, config: Config, primary: bool = True, notifier: Notifier = DISABLED):
        self.config = config
        self.primary = primary            # serves HTTP, runs housekeeping: workers.py
        self.notifier = notifier          # systemd's, in the process systemd started
        self.store = open_store(config, indexer=primary)
        metrics = Metrics()
        metrics.collectors.add("queue", queue_recipients(self.store.queue_depth,
                                                         queue_states.ALL))
        metrics.collectors.add("webhooks", webhook_backlog(self.store.webhook_backlog,
                                                           ("pending",)))
        # Several nodes on one store share what one machine keeps to itself
        # (store/cluster.py): IDLE news, failed logins, POP3 locks, housekeeping.
        self.cluster = self.store if isinstance(self.store, Cluster) else None
        locks = (ClusterMaildropLocks(self.cluster) if self.cluster is not None
                 else MaildropLocks(config.data_dir / "locks"))
        self.services = Services(config, self.store,
                                 Logins.from_settings(config.auth, shared=self.cluster),
                                 EventLog(self.store, observers=[metrics.observe]),
                                 pop3=Pop3Shared(locks, {}),
                                 watch=MailboxWatch(self.store, changes=self.cluster),
                                 metrics=metrics)
        self.servers: list[asyncio.AbstractServer] = []
        self.timeouts = IdleTimeouts()
        self.resolver = resolver = Resolver.from_settings(config.dns)
        self.services.runner = QueueRunner(config, self.store, resolver, self.services.events)
        self.services.inbound, self.services.outbound = trust_services(config, self.store,
                                                                       resolver)

    async def start(self, sockets: list[tuple[Listener, socket.socket]]) -> None:
        """Serve on already bound sockets (see bind_listeners)."""
        # One context object for every listener, STARTTLS and HTTPS: reload() changes
        # its certificates in place (net/certs.py).
        self.certificates = ServerCertificates(certificate_pairs(self.config))
        ctx = self.certificates.context
        limiter = ConnectionLimiter(self.config.limits.max_connections,
                                    self.config.limits.max_connections_per_ip)
        loop = asyncio.get_running_loop()
        self.http_servers: list[HttpServer] = []
        http = [(listener, sock) for listener, sock in sockets if listener.protocol == "http"]
        for listener, sock in sockets:
            if listener.protocol == "http":
                continue
            server = await loop.create_server(
                functools.partial(PROTOCOLS[listener.protocol], self.services,
                                  listener, limiter, ctx, self.timeouts),
                sock=sock, backlog=1024,
                ssl=ctx if listener.implicit_tls else None,
                ssl_handshake_timeout=(self.config.limits.tls_handshake_timeout
                                       if listener.implicit_tls else None))
            self.servers.append(server)
        self.expiry = loop.create_task(self._expire_pop3())
        self.backfill = loop.create_task(self._backfill())
        self.queue_task = loop.create_task(self.services.runner.run())
        # Tasks only the primary process runs (workers.py); cancelled at shutdown.
        self.housekeeping: list[asyncio.Task] = []
        acme = AcmeFiles.of(self.config.data_dir)
        if self.config.acme.enabled:
            # Every process loads certificates the primary (or `mailwright cert renew`)
            # writes; the primary alone asks the CA.
            self.housekeeping.append(loop.create_task(watch_certificate(
                acme.cert, self.config.acme.check_interval, self.certificate_changed)))
            if self.primary:
                self.housekeeping.append(loop.create_task(Renewer(
                    self.config.acme, acme, self.services.events,
                    installed=self.certificate_changed).run()))
        if self.primary:
            # One admin service layer for the API and the housekeeping, over this
            # process's event log (its observers count what the admin does too).
            admin = Admin(self.store, self.config, self.resolver, events=self.services.events,
                          parts=self.services.parts(), lockout=self.services.logins.lockout)
            await self._serve_http(http, ctx, admin)
            if self.cluster is None:
                self.housekeeping.extend(self._once_per_cluster(admin))
            else:
                # Of the nodes' primaries one leads and runs it (store/cluster.py).
                self.housekeeping.append(loop.create_task(self._lead(admin)))
        if self.cluster is not None:
            await self.cluster.watch_lockouts(self.services.logins.lockout.lock)

    def _once_per_cluster(self, admin: Admin) -> list[asyncio.Task]:
        """The housekeeping that must not run twice at once: event pruning and the
        webhook deliveries."""
        loop = asyncio.get_running_loop()
        webhooks = Dispatcher(self.config.webhooks, self.store, self.services.events)
        return [loop.create_task(prune_periodically(admin.events, self.services.events)),
                loop.create_task(webhooks.run())]

    async def _lead(self, admin: Admin) -> None:
        """Wait to lead the cluster, run its housekeeping while leading; when the
        leadership goes (our database session broke) stop it and wait again. For the
        seconds before the loss is noticed two nodes may both run it: the pruner is
        idempotent, a webhook may go out twice (at least once, as always)."""
        assert self.cluster is not None
        while True:
            lost = asyncio.Event()
            await self.cluster.lead("housekeeping", lost.set)
            log.info("this node leads the cluster's housekeeping")
            tasks = self._once_per_cluster(admin)
            try:
                await lost.wait()
            finally:
                for task in tasks:
                    task.cancel()
            log.warning("lost the cluster's leadership; waiting to lead again")

    def certificate_changed(self) -> bool:
        """New ACME certificate files: serve them to new handshakes, as SIGHUP's
        reload does (net/certs.py, in place; established sessions keep theirs), with
        the config already loaded. False (the old certificate kept) if they do not
        load, e.g. a key and chain caught half replaced: the watch tries again."""
        try:
            self.certificates.reload(certificate_pairs(self.config))
        except CertificateError as e:
            log.error("keeping the current certificate: %s", e)
            return False
        log.info("serving %s", "; ".join(f"{s.cert} (serial {s.serial:x})"
                                          for s in self.certificates.served))
        return True

    async def _serve_http(self, sockets: list[tuple[Listener, socket.socket]], ctx,
                          admin: Admin) -> None:
        """The HTTP site (site.py) on the http (plaintext) and https (implicit TLS)
        listeners: one uvicorn server each way, both on this loop, over one admin service
        layer."""
        if not sockets:
            return
        # Imported here: every CLI command opens the store through this module, and
        # FastAPI and pydantic take longer to import than most commands take to run.
        from . import site
        from .api.limits import body_limit
        app = site.build(admin, rate_limit=self.config.http.rate_limit,
                         metrics_of=self.services.metrics,
                         metrics_auth=self.config.http.metrics_auth,
                         max_body=body_limit(self.config.limits.max_message_size))
        for tls in (False, True):
            chosen = [sock for listener, sock in sockets if listener.implicit_tls == tls]
            if chosen:
                server = HttpServer(app, ctx if tls else None)
                await server.start(chosen)
                self.http_servers.append(server)

    async def _backfill(self) -> None:
        """Messages from before IMAP metadata existed get it, in the background."""
        try:
            if done := await self.store.backfill_meta():
                log.info("parsed %d messages stored before IMAP metadata", done)
        except Exception as e:
            log.error("metadata backfill failed: %s", e)

    async def _expire_pop3(self) -> None:
        """Enforce the per-domain POP3 EXPIRE policy (RFC 2449 §6.7) periodically."""
        while True:
            try:
                removed = await pop3_expiry.expire(self.store, time.time())
            except Exception as e:
                log.error("POP3 expiry failed: %s", e)
            else:
                if removed:
                    self.services.events.emit(Event.POP3_EXPIRED, removed=removed)
            await asyncio.sleep(self.config.pop3.expire_interval)

    def reload(self) -> bool:
        """SIGHUP: read the config file again and serve its certificates to new
        handshakes; established connections keep theirs. A config or certificate that
        does not load changes nothing (the error is logged). README: Reloading."""
        try:
            new = load_checked(self.config.path)
            self.certificates.reload(certificate_pairs(new))
        except (ReloadError, CertificateError) as e:
            log.error("reload failed, still serving the previous configuration: %s", e)
            return False
        logs.set_level(new.log)
        if later := needs_restart(self.config, new):
            log.warning("reload: %s changed; that takes a restart", ", ".join(later))
        log.info("reloaded %s: serving %s", new.path, "; ".join(
            f"{s.cert} (serial {s.serial:x})" for s in self.certificates.served))
        return True

    def _reload_signalled(self) -> None:
        self.notifier.reloading()
        self.reload()
        self.notifier.ready()

    async def run_started(self, reload_missed=lambda: False) -> None:
        """Serve until SIGINT/SIGTERM (SIGHUP reloads), then close listeners and the
        store. reload_missed: whether a SIGHUP came while starting (workers.py)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_signalled)
        if reload_missed():
            self.reload()
        self.notifier.ready()
        await stop.wait()
        self.notifier.stopping()
        log.info("shutting down")
        for server in self.servers:
            server.close()
        # The queue's deliveries in progress and the sessions share the grace.
        deadline = loop.time() + self.config.server.shutdown_grace
        self.services.runner.stop()
        await self._end_sessions(loop, deadline)
        try:
            await asyncio.wait_for(asyncio.shield(self.queue_task),
                                   max(0.0, deadline - loop.time()))
        except TimeoutError:
            log.info("shutdown: outbound deliveries still in progress are tried again "
                     "at the next start")
        # HTTP requests in flight finish (uvicorn's graceful shutdown) before the store
        # closes under them.
        await asyncio.gather(*(server.stop() for server in self.http_servers))
        self.timeouts.close()
        self.services.watch.close()
        self.expiry.cancel()
        self.backfill.cancel()
        self.queue_task.cancel()
        for task in self.housekeeping:
            task.cancel()

    async def _end_sessions(self, loop, deadline: float) -> None:
        """Sessions finish the command in hand, SMTP transactions in flight get
        [server] shutdown_grace to end; then 421 4.3.2 / * BYE (a POP3 client is just
        closed, RFC 1939 §3) and a lingering close, so the reply is not lost to a reset."""
        for conn in list(self.services.connections):
            conn.shutdown()
        while self.services.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.services.connections:
            log.info("shutdown: %d sessions still busy after %g s, closing them",
                     len(self.services.connections), self.config.server.shutdown_grace)
            for conn in list(self.services.connections):
                conn.force_shutdown()
        deadline = loop.time() + LINGER + 0.5
        while self.services.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Release the store (waits for queued writes to commit)."""
        self.store.close()
