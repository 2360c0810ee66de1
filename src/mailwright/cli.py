"""The command line: serve, reload, config, domain, user, admin, alias, queue, dkim, dns,
check, apikey, events, stats, webhook, suppression, campaign, cert.

Only arguments and rendering live here: every operation is admin/'s (the HTTP API
calls the same), and its refusals (AdminError) become "mailwright: error: ..." and
exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import json
import os
import signal
import sys
import time
from pathlib import Path

from . import config as config_mod
from .admin import Admin, AdminError, config_check, validate
from .admin.stats import SPANS
from .store.base import StoreUnavailable

# `mailwright check` exits 0/1/2 for its verdict, so its own errors take sysexits.h
# codes that cannot be mistaken for one: EX_USAGE (bad target, bad option), EX_CONFIG.
USAGE_ERROR = 64
CONFIG_ERROR = 78


class CliError(Exception):
    """A problem with the command line itself (arguments, terminal)."""


def _load(args) -> config_mod.Config:
    return config_mod.load(config_mod.config_path(getattr(args, "config", None)))


def _as_service_user(cfg: config_mod.Config) -> None:
    """Root running a command on a server's data works as [server] user, so that what
    it writes (the database, DKIM keys) stays the server's."""
    from .service import privileges
    if os.geteuid() != 0 or not cfg.server.user:
        return
    try:
        identity = privileges.resolve(cfg)
        privileges.prepare_data_dir(cfg, identity)
        privileges.check_python(identity)
        privileges.drop(identity)
    except privileges.PrivilegeError as e:
        raise CliError(str(e)) from None


@contextlib.contextmanager
def _admin(args):
    from .app import open_store
    cfg = _load(args)
    _as_service_user(cfg)
    store = open_store(cfg)
    try:
        yield Admin(store, cfg)
    finally:
        store.close()


def _admin_command(command):
    """A command over admin/ (whose operations are coroutines): the store is opened
    for it and one event loop runs it."""
    def run(args) -> int:
        with _admin(args) as admin:
            return asyncio.run(command(args, admin))
    return run


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("passwords do not match")
        return password
    raise CliError("no terminal to ask for the password: pipe it in with --password-stdin")


def cmd_serve(args) -> int:
    from . import metrics
    from .app import ListenError, bind_listeners, connect_summary, open_store, server_certificate
    from .net.notify import Notifier
    from .service import logs, memory, pidfile, privileges
    from .workers import remember_reload, run_worker, supervise
    cfg = _load(args)
    # A reload asked for while starting must neither end the server (SIGHUP's default)
    # nor be lost: it is done once the server serves (or passed on by the supervisor).
    remember_reload()
    logs.configure(cfg.log)
    notifier = Notifier.from_environment()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    memory.return_large_allocations()     # before any thread or fork: argon2's 19 MiB each
    # Root is needed for the listeners only (ports below 1024): check what the switch to
    # [server] user needs, bind, switch, and only then touch the store.
    try:
        identity = privileges.resolve(cfg)
        privileges.check_start(cfg, identity)
        privileges.prepare_data_dir(cfg, identity)
        privileges.check_keys([Path(p.key) for p in cfg.tls.pairs()], identity)
        privileges.check_python(identity)
        sockets = bind_listeners(cfg, cfg.workers)
        privileges.drop(identity)
    except (privileges.PrivilegeError, ListenError) as e:
        raise CliError(str(e)) from None
    try:
        store = open_store(cfg)
    except OSError as e:
        raise CliError(f"cannot open the mail store in {cfg.data_dir}: {e.strerror or e}") \
            from None
    try:
        demo = asyncio.run(_prepare(Admin(store, cfg)))
    finally:
        store.close()          # workers open their own; no threads may cross a fork
    # Issue the certificate (and make the local CA) once, before any worker is forked.
    certificate = server_certificate(cfg)
    print(connect_summary(cfg, demo.address if demo else None,
                          demo.password if demo else None, certificate.ca,
                          demo.admin_password if demo else None),
          file=sys.stderr if cfg.log.format == "json" else sys.stdout, flush=True)
    metrics.prepare(cfg.data_dir)     # before the fork: every worker counts into one place
    pidfile.write(cfg.data_dir)
    try:
        if cfg.workers == 1:
            run_worker(cfg, sockets[0], notifier=notifier)
            return 0
        return supervise(cfg, sockets, notifier)
    finally:
        pidfile.remove(cfg.data_dir)


def cmd_reload(args) -> int:
    """SIGHUP to the running server (data_dir/mailwright.pid): it re-reads the config
    and its certificates; the server's log says whether the new config was taken."""
    from .service import pidfile
    from .service.reload import ReloadError, load_checked
    cfg = _load(args)
    try:
        load_checked(cfg.path)
        pid = pidfile.running(cfg.data_dir)
    except (ReloadError, pidfile.NotRunning) as e:
        raise CliError(f"not reloaded: {e}") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as e:
        raise CliError(f"cannot signal the server (pid {pid}): {e.strerror}") from None
    print(f"sent SIGHUP to the server (pid {pid}): it reloads {cfg.path}")
    return 0


def cmd_migrate(args) -> int:
    """Bring the PostgreSQL schema to this release's (store/postgresql/migrate.py); the
    SQLite backend updates its schema itself when it opens."""
    cfg = _load(args)
    if args.source and cfg.store.backend != "postgresql":
        raise CliError(f"--from copies into PostgreSQL: set [store] backend = \"postgresql\" "
                       f"(it is {cfg.store.backend!r}) and its dsn first")
    if cfg.store.backend != "postgresql":
        print(f"nothing to migrate: [store] backend is {cfg.store.backend!r}, whose schema "
              "is brought up to date when the server opens it")
        return 0
    import psycopg

    from .store.postgresql import where
    from .store.postgresql.migrate import migrate, migrations
    if args.source:
        return _migrate_from(cfg, args.source)
    try:
        done = migrate(cfg.store.conninfo())
    except psycopg.Error as e:
        # Each step is its own transaction: those before the failing one stay applied.
        raise CliError(f"migrating the database {where(cfg.store.conninfo())} stopped: "
                       f"{str(e).strip()}") from None
    for m in done:
        print(f"applied {m.version:04d}_{m.name}")
    print(f"schema at version {len(migrations())}" + ("" if done else " (nothing to do)"))
    return 0


def _migrate_from(cfg, source: str) -> int:
    """--from sqlite:PATH: the schema, then a single-node install copied into it."""
    import psycopg

    from .store.postgresql import where
    from .store.postgresql.from_sqlite import MigrateError, copy_from_sqlite, parse_source
    try:
        copied = copy_from_sqlite(cfg.store.conninfo(), parse_source(source))
    except MigrateError as e:
        raise CliError(f"not migrated: {e}") from None
    except psycopg.Error as e:
        raise CliError(f"copying into the database {where(cfg.store.conninfo())} failed, "
                       f"nothing was copied: {str(e).strip()}") from None
    for c in copied:
        print(f"{c.table}\t{c.rows}")
    print(f"copied {source} into {where(cfg.store.conninfo())}")
    return 0


async def _prepare(admin: Admin):
    demo = await admin.ensure_demo()
    # No worker of this node runs yet: its old claims are void (other nodes' stand:
    # store/postgresql/queue.py).
    await admin.ctx.store.queue_release_leases()
    return demo


def cmd_config_check(args) -> int:
    r = config_check.report(_load(args))
    print(f"{r.path}: OK ({r.listeners} listeners, data_dir {r.data_dir})")
    return 0


async def cmd_domain(args, admin: Admin) -> int:
    if args.action == "add":
        print(f"added domain {(await admin.domains.add(args.domain)).display}")
    elif args.action == "remove":
        await admin.domains.remove(args.domain, force=args.force)
        print(f"removed domain {args.domain}")
    elif args.action == "set":
        days = (await admin.domains.set_pop3_expire(args.domain,
                                                    _expire_days(args.pop3_expire))).days
        print(f"{args.domain}: POP3 downloads kept "
              + ("until the client deletes them" if days is None else f"{days} days"))
    else:
        for d in await admin.domains.list():
            print(d.display if d.display == d.name else f"{d.display} ({d.name})")
    return 0


async def cmd_dkim(args, admin: Admin) -> int:
    if args.action == "list":
        for k in await admin.dkim.list(args.domain):
            print(f"{k.domain}\t{k.selector}\t{k.algorithm}\t"
                  f"{'signing' if k.active else 'published'}")
    elif args.action == "generate":
        made = await admin.dkim.generate(args.domain, args.selector or None)
        domain, name = made.domain, made.name
        print(f"; DKIM keys for {domain} (private keys in {made.directory})")
        for k in made.keys:
            print(_zone_line(f"{k.selector}._domainkey.{domain}", "TXT", k.txt))
        if made.active:
            print(f"; {domain} signs with {name} now; publish the records above.")
        else:
            print(f"; publish the records, wait for the TTL of the old ones, then: "
                  f"mailwright dkim activate {domain} {name}")
    elif args.action == "activate":
        made = await admin.dkim.activate(args.domain, args.selector)
        print(f"{made.domain} now signs with {made.name}; keep the old records published "
              "until mail signed with them has arrived, then: mailwright dkim retire")
    elif args.action == "retire":
        gone = await admin.dkim.retire(args.domain, args.selector)
        print(f"retired {gone.name} of {gone.domain}: remove its TXT records from DNS")
    return 0


async def cmd_tracking(args, admin: Admin) -> int:
    kid = await admin.tracking.rotate_key()
    print(f"tracking tokens are signed with key {kid} once the server restarts; older "
          f"keys still verify (remove their lines from the key file when their mail is old)")
    return 0


async def cmd_apikey(args, admin: Admin) -> int:
    if args.action == "create":
        made = await admin.api_keys.create(args.name, args.scope, args.domain or (),
                                           args.campaigns)
        k = made.key
        print(f"created API key {k.id} ({k.name}, {k.scope}"
              + (f": {', '.join(k.domains)}" if k.domains else "")
              + ("; its mail is tracked campaign mail" if k.campaigns else "") + ")")
        print(made.token)
        print("; shown once: only its hash is kept. Send it as: Authorization: Bearer TOKEN",
              file=sys.stderr)
    elif args.action == "revoke":
        k = await admin.api_keys.revoke(args.id)
        print(f"revoked API key {k.id} ({k.name})")
    else:
        now = time.time()
        for k in await admin.api_keys.list():
            used = f"used {_age(now - k.last_used)} ago" if k.last_used else "never used"
            state = "revoked" if k.revoked else used
            print(f"{k.id}\tmw_{k.prefix}_…\t{k.name}\t{k.scope}\t"
                  f"{','.join(k.domains) or '*'}\t{state}")
    return 0


async def cmd_webhook(args, admin: Admin) -> int:
    hooks = admin.webhooks
    if args.action == "add":
        made = await hooks.add(args.url, args.domain, args.event or ())
        print(f"added webhook {_webhook_line(made.webhook)}")
        print(made.secret)
        print("; the signing secret, shown once: receivers check Mailwright-Signature "
              "with it (README: Webhooks)", file=sys.stderr)
    elif args.action == "list":
        for w in await hooks.list(args.domain):
            print(_webhook_line(w))
    elif args.action == "deliveries":
        _print_deliveries(await hooks.deliveries(args.id, args.limit, state=args.state))
    elif args.action == "test":
        sent = await hooks.test(args.id)
        if not sent.ok:
            raise CliError(f"test to {sent.webhook.url} failed: {sent.error}")
        print(f"test event sent to {sent.webhook.url}: HTTP {sent.status}")
    elif args.action == "redeliver":
        d = await hooks.redeliver(args.id)
        print(f"delivery {d.id} ({d.event_type}) is pending again; a running server "
              "sends it within seconds")
    else:                               # remove / enable / disable
        w = await getattr(hooks, args.action)(args.id)
        print(f"{args.action.removesuffix('e')}ed webhook {w.id} ({w.url})")
    return 0


def _webhook_line(w) -> str:
    state = "disabled" if not w.enabled else \
        f"enabled, {w.failures} failure(s) in a row" if w.failures else "enabled"
    return f"{w.id}\t{w.url}\t{w.domain or '*'}\t{','.join(w.events)}\t{state}"


def _print_deliveries(rows) -> None:
    from rich.console import Console
    from rich.table import Table
    now = time.time()
    table = Table(title=f"{len(rows)} deliveries, newest first")
    for col in ("ID", "EVENT", "TYPE", "STATE", "ATTEMPTS", "QUEUED", "LAST"):
        table.add_column(col)
    for d in rows:
        last = d.last_error or (f"HTTP {d.last_status}" if d.last_status else "")
        table.add_row(str(d.id), str(d.event_id), d.event_type, d.state, str(d.attempts),
                      f"{_age(now - d.queued)} ago", last)
    Console().print(table)


async def cmd_suppression(args, admin: Admin) -> int:
    entries = admin.suppressions
    if args.action == "add":
        s = await entries.add(args.domain, args.address, campaign=args.campaign,
                              reason=args.reason, source=args.source)
        print(f"{s.address} suppressed for {_scope(s)} ({s.reason})")
    elif args.action == "remove":
        s = await entries.remove(args.domain, args.address, campaign=args.campaign)
        print(f"{s.address} is no longer suppressed for {_scope(s)}")
    else:
        page = await entries.list(args.domain, campaign=args.campaign, address=args.address,
                                  limit=args.limit, after=args.after)
        _print_suppressions(page)
    return 0


def _scope(s) -> str:
    return f"campaign {s.campaign!r} of {s.domain}" if s.campaign is not None else s.domain


def _print_suppressions(page) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console = Console()
    table = Table(title=f"{len(page.suppressions)} suppressed address(es)")
    for col in ("ID", "DOMAIN", "ADDRESS", "CAMPAIGN", "REASON", "SINCE", "SOURCE"):
        table.add_column(col, overflow="fold")
    for s in page.suppressions:
        table.add_row(str(s.id), s.domain, escape(s.address), escape(s.campaign or "(all)"),
                      s.reason, time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.created)),
                      escape(s.source))
    console.print(table)
    if page.next is not None:
        console.print(f"more: add --after {page.next}", soft_wrap=True)


async def cmd_campaign(args, admin: Admin) -> int:
    if args.action == "list":
        _print_campaigns(await admin.campaigns.list(args.domain))
        return 0
    if args.name is None:
        if args.domain is None:
            raise CliError("give a campaign NAME, or --domain for all of a domain's campaigns")
        report = await admin.campaigns.domain_report(args.domain)
    else:
        report = await admin.campaigns.report(args.name, args.domain)
    if args.csv:
        from .admin.campaigns import report_csv
        sys.stdout.write(report_csv(report))
    elif args.json:
        import dataclasses
        import json
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        _print_report(report)
    return 0


def _print_campaigns(rows) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    table = Table(title=f"{len(rows)} campaign(s), last sent first")
    for col in ("NAME", "DOMAIN", "MESSAGES", "RECIPIENTS", "FIRST", "LAST"):
        table.add_column(col, overflow="fold")
    for c in rows:
        table.add_row(escape(c.name), c.domain, str(c.messages), str(c.recipients),
                      _when(c.first), _when(c.last))
    Console().print(table)


def _print_report(report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console, f = Console(), report.figures
    title = (f"campaign {report.name!r}" if report.name is not None else "every campaign") + \
        f" of {report.domain or 'every domain'}: {report.messages} message(s)"
    if report.first is not None:
        title += f", {_when(report.first)} to {_when(report.last)}"
    console.print(escape(title))
    table = Table(show_header=False)
    table.add_column("figure")
    table.add_column("count", justify="right")
    table.add_column("rate", justify="right")
    for label, count, rate in (
            ("sent", f.sent, None), ("delivered", f.delivered, None),
            ("bounced", f.bounced, f.bounce_rate), ("suppressed", f.suppressed, None),
            ("opened (people)", f.opened, f.open_rate),
            ("opened (with machines)", f.opened_all, f.open_rate_all),
            ("clicked (people): CTR", f.clicked, f.click_rate),
            ("clicked (with machines)", f.clicked_all, f.click_rate_all),
            ("click-to-open", None, f.click_to_open),
            ("unsubscribed", f.unsubscribed, f.unsubscribe_rate)):
        table.add_row(label, "" if count is None else str(count), _percent(rate))
    console.print(table)
    if report.days:
        days = Table(title="per day (UTC)")
        for col in ("DAY", "SENT", "DELIVERED", "BOUNCED", "OPENED", "CLICKED", "UNSUBSCRIBED"):
            days.add_column(col, justify="right")
        for d in report.days:
            g = d.figures
            days.add_row(d.day, *(str(v) for v in (g.sent, g.delivered, g.bounced, g.opened,
                                                   g.clicked, g.unsubscribed)))
        console.print(days)


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}%"


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _zone_line(name: str, rtype: str, value: str) -> str:
    if rtype == "TXT":
        from .trust.keys import txt_strings
        value = " ".join(f'"{part}"' for part in txt_strings(value))
    return f"{name}.\t3600\tIN\t{rtype}\t{value}"


async def cmd_dns(args, admin: Admin) -> int:
    if args.action == "records":
        _print_records(await admin.dns.records(args.domain))
        return 0
    report = await admin.dns.check(args.domain)
    width = max(len(f.what) for f in report.findings)
    for f in report.findings:
        print(f"{f.status:<8} {f.what:<{width}}  {f.detail}")
    return 1 if report.failed else 0


def _print_records(r) -> None:
    domain, host = r.domain, r.hostname
    print(f"; DNS records for {domain}")
    for record in r.records:
        print(f"; {record.purpose}")
        print(_zone_line(record.name, record.type, record.value))
    print(f"; MTA-STS also needs mta-sts.{domain} (A/CNAME) serving over HTTPS "
          f"https://mta-sts.{domain}/.well-known/mta-sts.txt containing:")
    for line in r.mta_sts_policy.splitlines():
        print(f";   {line}")
    print(f"; Reverse DNS: ask whoever owns this server's IP addresses for a PTR record "
          f"naming {host} (and an A/AAAA record for {host} back to them).")


def cmd_check(args) -> int:
    """Diagnostics of any domain or server: needs no mail store, and no config file (the
    system's resolver then); with one, its [dns] resolver and [queue] CA bundle."""
    from rich.console import Console

    from .admin import Invalid
    from .admin import check as checks
    from .check.report import render, to_json
    from .dns import Resolver
    try:
        cfg = _load(args) if getattr(args, "config", None) or \
            os.environ.get(config_mod.ENV_VAR) else None
    except config_mod.ConfigError as e:
        print(f"mailwright: config error: {e}", file=sys.stderr)
        return CONFIG_ERROR
    dns_settings = cfg.dns if cfg else config_mod.DNSSettings()
    queue = cfg.queue if cfg else config_mod.QueueSettings()
    try:
        report = asyncio.run(checks.run(
            Resolver.from_settings(dns_settings), args.target, only=args.only or (),
            selectors=args.selector or (), port=args.port, timeout=args.timeout,
            allow_private=args.allow_private, cafile=queue.ca_bundle,
            https_port=queue.mta_sts_port, rcpt=args.rcpt or ""))
    except Invalid as e:
        print(f"mailwright: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    if args.json:
        print(to_json(report))
    else:
        render(report, Console(highlight=False, soft_wrap=True))
    return report.exit_status


def _expire_days(text: str) -> int | None:
    if text.lower() == "never":
        return None
    if not text.isdigit():
        raise CliError(f"--pop3-expire takes a number of days or 'never', not {text!r}")
    return int(text)


def cmd_user(args) -> int:
    password = None
    if args.action in ("add", "passwd"):
        validate.address(args.address)                # refused before asking a password
        password = _read_password(args)               # the terminal: before the loop
    with _admin(args) as admin:
        return asyncio.run(_user(args, admin, password))


def cmd_admin(args) -> int:
    password = None
    if args.action in ("add", "passwd"):
        password = _read_password(args)               # the terminal: before the loop
    with _admin(args) as admin:
        return asyncio.run(_web_admin(args, admin, password))


async def _web_admin(args, admin: Admin, password: str | None) -> int:
    admins = admin.admins
    if args.action == "list":
        now = time.time()
        for a in await admins.list():
            seen = f"last login {_age(now - a.last_login)} ago" if a.last_login \
                else "never logged in"
            print(f"{a.name}\tcreated {time.strftime('%Y-%m-%d', time.gmtime(a.created))}"
                  f"\t{seen}")
    elif args.action == "add":
        print(f"added web admin {(await admins.add(args.name, password)).name}")
    elif args.action == "passwd":
        changed = await admins.set_password(args.name, password)
        print(f"password changed for web admin {changed.name}; its sessions ended")
    else:
        print(f"removed web admin {(await admins.remove(args.name)).name}")
    return 0


async def _user(args, admin: Admin, password: str | None) -> int:
    if args.action == "list":
        _print_accounts(await admin.accounts.list(args.domain))
        return 0
    address = validate.address(args.address)
    if args.action == "add":
        made = await admin.accounts.add(address, password)
        print(f"added user {made.address}")
    elif args.action == "passwd":
        changed = await admin.accounts.set_password(address, password)
        print(f"password changed for {changed.address}")
    elif args.action == "remove":
        gone = await admin.accounts.remove(address)
        print(f"removed user {gone.address} and its mail")
    elif args.action == "quota":
        quota = await admin.accounts.set_quota(address, validate.quota_size(args.size))
        print(f"quota of {quota.address}: "
              + (f"{quota.limit} octets" if quota.limit else "none"))
    return 0


def _print_accounts(rows) -> None:
    width = max([len(r.address) for r in rows] + [7])
    print(f"{'ADDRESS':<{width}}  {'MESSAGES':>8}  {'SIZE':>12}")
    for r in rows:
        print(f"{r.address:<{width}}  {r.messages:>8}  {r.size:>12}")


async def cmd_alias(args, admin: Admin) -> int:
    if args.action == "add":
        await admin.aliases.add(args.source, args.targets)
        print(f"alias {args.source} -> {', '.join(args.targets)}")
    elif args.action == "remove":
        await admin.aliases.remove(args.source)
        print(f"removed alias {args.source}")
    else:
        for a in await admin.aliases.list(args.domain):
            print(f"{a.source} -> {', '.join(a.targets)}")
    return 0


async def cmd_queue(args, admin: Admin) -> int:
    if args.action == "list":
        _print_queue(await admin.queue.list())
    elif args.action == "show":
        _print_entry(await admin.queue.show(args.id))
    elif args.action == "raw":
        sys.stdout.buffer.write((await admin.queue.raw(args.id)).content)
        sys.stdout.buffer.flush()
    elif args.action == "delete":
        print(f"deleted {await admin.queue.delete(args.id)}")
    else:
        if args.action == "flush":
            done = await admin.queue.flush()
        else:
            change = getattr(admin.queue, args.action)    # hold / release / retry
            done = await change(args.id, all_messages=args.all)
        verb = {"hold": "held", "release": "released"}.get(args.action, "due now")
        print(f"{done.recipients} recipient(s) {verb}"
              + ("; a running server picks them up within [queue] interval"
                 if verb != "held" else ""))
    return 0


def _print_queue(overview) -> None:
    from rich.console import Console
    from rich.table import Table
    console, now = Console(), time.time()
    messages = overview.messages
    table = Table(title=f"{len(messages)} queued message(s)")
    for col in ("ID", "AGE", "SIZE", "FROM", "RECIPIENTS"):
        table.add_column(col)
    for m in messages:
        table.add_row(m.message_id, _age(now - m.created), str(m.size), m.mail_from or "<>",
                      "\n".join(f"{r.address} ({r.state})" for r in m.recipients))
    console.print(table)
    if messages:
        console.print("by state: " + ", ".join(f"{k} {v}" for k, v in overview.by_state.items()))
        console.print("by destination: " + ", ".join(
            f"{k} {v}" for k, v in overview.by_destination))


def _print_entry(entry) -> None:
    from rich.console import Console
    from rich.table import Table
    console, now, m = Console(), time.time(), entry.message
    console.print(f"message {m.message_id}: from <{m.mail_from}>, {m.size} octets, "
                  f"queued {_age(now - m.created)} ago"
                  + (f", ENVID {m.envid}" if m.envid else "")
                  + (f", RET={m.ret}" if m.ret else ""))
    table = Table()
    for col in ("RECIPIENT", "STATE", "ATTEMPTS", "NEXT", "LAST REPLY"):
        table.add_column(col)
    for r in m.recipients:
        due = _age(r.next_attempt - now) if r.state == "deferred" else ""
        table.add_row(r.address, r.state, str(r.attempts), due, r.last_reply or "")
    console.print(table)
    if entry.attempts:
        log = Table(title="attempts")
        for col in ("AGO", "RECIPIENT", "REMOTE", "TLS", "REPLY"):
            log.add_column(col)
        for a in entry.attempts:
            log.add_row(_age(now - a.ts), a.address, a.remote, a.tls or "none", a.reply)
        console.print(log)


async def cmd_events(args, admin: Admin) -> int:
    if args.action == "prune":
        done = await admin.events.prune()
        print(f"deleted {done.events} event(s) past their retention and "
              f"{done.messages} finished message(s) past message_retention_days")
        return 0
    filters = dict(since=args.since, until=args.until, types=args.type,
                   message_id=args.message_id, address=args.address, domain=args.domain,
                   tag=args.tag)
    if args.action == "search":
        _print_events(await admin.events.search(**filters, limit=args.limit,
                                                cursor=args.cursor))
        return 0
    chunks = await admin.events.export(format=args.format, **filters)   # checked: may raise
    try:
        # newline="": the chunks carry their own line ends (CSV's are CRLF, RFC 4180).
        with (open(args.output, "w", encoding="utf-8", newline="") if args.output
              else contextlib.nullcontext(sys.stdout)) as out:
            async for chunk in chunks:
                out.write(chunk)
    except BrokenPipeError:
        raise                   # the reader went away (`| head`): main() ends quietly
    except OSError as e:
        raise CliError(f"cannot write {args.output or 'the export'}: {e.strerror or e}") \
            from None
    return 0


def _print_events(page) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console = Console()
    table = Table(title=f"{len(page.events)} event(s), newest first")
    table.add_column("TIME", no_wrap=True)
    table.add_column("TYPE", no_wrap=True)
    for col in ("ADDRESS", "DOMAIN", "MESSAGE", "DETAILS"):
        table.add_column(col, overflow="fold")     # wrapped when narrow, never cut short
    for e in page.events:
        table.add_row(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.ts)), e.type,
                      e.address or "", e.domain or "", e.message_id or "",
                      escape(" ".join(f"{k}={v}" for k, v in e.data.items())))
    console.print(table)
    if page.next:
        console.print(f"more: add --cursor {page.next}", soft_wrap=True)


async def cmd_stats(args, admin: Admin) -> int:
    traffic = await admin.stats.traffic(args.span, args.domain)
    summary = await admin.stats.summary(args.domain)
    if args.json:
        # The HTTP API's shapes (/api/v1/stats/traffic and /summary), in one object.
        print(json.dumps({
            "traffic": {"start": traffic.start, "step": traffic.step,
                        "types": list(traffic.types),
                        "counts": {k: list(v) for k, v in traffic.counts.items()}},
            "summary": {**dataclasses.asdict(summary), "top_rejections": [
                {"reason": r, "count": n} for r, n in summary.top_rejections]}}, indent=2))
        return 0
    _print_stats(traffic, summary, args.domain)
    return 0


def _print_stats(traffic, summary, domain: str | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console = Console()
    when = "%Y-%m-%d %H:00Z" if traffic.step < 86400 else "%Y-%m-%d"
    per = "hour" if traffic.step < 86400 else "day (UTC)"
    table = Table(title=f"messages per {per}" + (f", {domain}" if domain else ""))
    table.add_column("FROM", no_wrap=True)
    for name in traffic.types:
        table.add_column(name.upper(), justify="right")
    for i in range(traffic.buckets):
        start = time.strftime(when, time.gmtime(traffic.start + i * traffic.step))
        table.add_row(start, *(str(traffic.counts[name][i]) for name in traffic.types))
    table.add_section()
    table.add_row("total", *(str(sum(traffic.counts[name])) for name in traffic.types))
    console.print(table)
    rate = "-" if summary.success_rate is None else f"{summary.success_rate:.1%}"
    console.print(f"queue: {summary.queue_size} recipient(s) waiting; last 24 h: "
                  f"{summary.delivered} delivered, {summary.failed} bounced, "
                  f"success rate {rate}", soft_wrap=True)
    if summary.top_rejections:
        console.print("top rejections (24 h): " + ", ".join(
            f"{escape(reason)} {n}" for reason, n in summary.top_rejections), soft_wrap=True)


async def cmd_cert(args, admin: Admin) -> int:
    if args.action == "renew":
        info = await admin.certificates.renew()
        print(f"issued by {info.issuer} for {', '.join(info.names)}, valid until "
              f"{info.not_after:%Y-%m-%d %H:%M} UTC; written to {info.path}")
        print("a running server loads it within [acme] check_interval")
        return 0
    status = await admin.certificates.status()
    print(f"acme:       {'enabled' if status.enabled else 'disabled'} ({status.directory})")
    print(f"names:      {', '.join(status.names)}")
    cert = status.current
    if cert is None:
        print("current:    none issued yet (the server serves its local CA's certificate)")
        return 0
    print(f"file:       {cert.path}")
    print(f"issuer:     {cert.issuer}")
    print(f"serial:     {cert.serial}")
    print(f"covers:     {', '.join(cert.names)}")
    print(f"not after:  {cert.not_after:%Y-%m-%d %H:%M} UTC ({status.days_left:.1f} days left)")
    print(f"renews:     after {status.renew_after:%Y-%m-%d %H:%M} UTC")
    return 0


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: so that the subcommand's copy of --config does not reset the top level's.
    common.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                        help=f"config file (default: ${config_mod.ENV_VAR})")
    p = argparse.ArgumentParser(prog="mailwright", parents=[common],
                                description="Mailwright mail server")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", parents=[common], help="run the server").set_defaults(fn=cmd_serve)
    sub.add_parser("reload", parents=[common],
                   help="make the running server re-read its config and certificates"
                   ).set_defaults(fn=cmd_reload)
    mig = sub.add_parser("migrate", parents=[common],
                         help="bring the PostgreSQL schema up to date ([store] backend)")
    mig.add_argument("--from", dest="source", metavar="sqlite:PATH",
                     help="then copy the single-node install in data_dir PATH into the "
                          "(empty) database")
    mig.set_defaults(fn=cmd_migrate)
    cfg = sub.add_parser("config", parents=[common], help="check the config file")
    cfg.add_argument("action", choices=["check"])
    cfg.set_defaults(fn=cmd_config_check)

    d = sub.add_parser("domain", parents=[common], help="manage local domains")
    dsub = d.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", parents=[common])
    for name in ("add", "remove", "set"):
        x = dsub.add_parser(name, parents=[common])
        x.add_argument("domain")
        if name == "remove":
            x.add_argument("--force", action="store_true",
                           help="also remove the domain's accounts, their mail, and aliases")
        if name == "set":
            x.add_argument("--pop3-expire", metavar="DAYS|never", required=True,
                           help="delete mail downloaded over POP3 after DAYS days "
                                "(RFC 2449 EXPIRE); never: keep it")
    d.set_defaults(fn=_admin_command(cmd_domain))

    u = sub.add_parser("user", parents=[common], help="manage accounts")
    usub = u.add_subparsers(dest="action", required=True)
    ul = usub.add_parser("list", parents=[common])
    ul.add_argument("domain", nargs="?")
    for name in ("add", "passwd", "remove"):
        x = usub.add_parser(name, parents=[common])
        x.add_argument("address")
        if name != "remove":
            x.add_argument("--password-stdin", action="store_true",
                           help="read the password from the first line of standard input")
    uq = usub.add_parser("quota", parents=[common],
                         help="limit the account's stored mail (RFC 9208 QUOTA)")
    uq.add_argument("address")
    uq.add_argument("size", help="e.g. 500M, 2G, or none")
    u.set_defaults(fn=cmd_user)

    wa = sub.add_parser("admin", parents=[common], help="accounts of the web admin (/admin)")
    wasub = wa.add_subparsers(dest="action", required=True)
    wasub.add_parser("list", parents=[common])
    for name in ("add", "passwd", "remove"):
        x = wasub.add_parser(name, parents=[common])
        x.add_argument("name", help="the admin's login name")
        if name != "remove":
            x.add_argument("--password-stdin", action="store_true",
                           help="read the password from the first line of standard input")
    wa.set_defaults(fn=cmd_admin)

    a = sub.add_parser("alias", parents=[common], help="manage aliases")
    asub = a.add_subparsers(dest="action", required=True)
    al = asub.add_parser("list", parents=[common])
    al.add_argument("domain", nargs="?")
    aa = asub.add_parser("add", parents=[common])
    aa.add_argument("source", help="alias address, or @domain for a catch-all")
    aa.add_argument("targets", nargs="+", help="one or more target addresses")
    ar = asub.add_parser("remove", parents=[common])
    ar.add_argument("source")
    a.set_defaults(fn=_admin_command(cmd_alias))

    q = sub.add_parser("queue", parents=[common], help="inspect and manage the outbound queue")
    qsub = q.add_subparsers(dest="action", required=True)
    qsub.add_parser("list", parents=[common], help="queued messages and a summary")
    qsub.add_parser("flush", parents=[common], help="make every waiting recipient due now")
    for name, text in (("show", "one message and its recipients"),
                       ("raw", "the text of a queued message, or of a finished one "
                               "kept for [events] message_retention_days"),
                       ("delete", "remove a message from the queue (no bounce)")):
        qsub.add_parser(name, parents=[common], help=text).add_argument("id")
    for name, text in (("hold", "stop delivery attempts"), ("release", "resume held mail"),
                       ("retry", "try again now")):
        x = qsub.add_parser(name, parents=[common], help=text)
        x.add_argument("id", nargs="?")
        x.add_argument("--all", action="store_true")
    q.set_defaults(fn=_admin_command(cmd_queue))

    k = sub.add_parser("dkim", parents=[common], help="DKIM signing keys")
    ksub = k.add_subparsers(dest="action", required=True)
    ksub.add_parser("list", parents=[common]).add_argument("domain", nargs="?")
    kg = ksub.add_parser("generate", parents=[common],
                         help="make an RSA-2048 and an Ed25519 key; print the TXT records")
    kg.add_argument("domain")
    kg.add_argument("--selector", help="key set name (default mwYYYYMM); the selectors are "
                                       "NAME-rsa and NAME-ed25519")
    for name, text in (("activate", "sign with this key set from now on"),
                       ("retire", "delete a key set that no longer signs")):
        x = ksub.add_parser(name, parents=[common], help=text)
        x.add_argument("domain")
        x.add_argument("selector", help="the key set name given to generate")
    k.set_defaults(fn=_admin_command(cmd_dkim))

    t = sub.add_parser("tracking", parents=[common], help="campaign tracking tokens")
    tsub = t.add_subparsers(dest="action", required=True)
    tsub.add_parser("rotate-key", parents=[common],
                    help="a new key signs tracking tokens; the old ones still verify")
    t.set_defaults(fn=_admin_command(cmd_tracking))

    e = sub.add_parser("events", parents=[common], help="search, export and prune the event log")
    esub = e.add_subparsers(dest="action", required=True)
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--since", metavar="TIME",
                         help="from this time on: epoch seconds or ISO 8601 "
                              "(2026-11-05T12:00:00Z; no zone: UTC)")
    filters.add_argument("--until", metavar="TIME", help="before this time")
    filters.add_argument("--type", action="append", metavar="TYPE",
                         help="event type (repeat, or comma-separated; see docs/EVENTS.md)")
    filters.add_argument("--message-id", metavar="ID")
    filters.add_argument("--address", help="the address an event is about")
    filters.add_argument("--domain", help="whose events: the domain key of each event")
    filters.add_argument("--tag")
    es = esub.add_parser("search", parents=[common, filters], help="a page of matching events")
    es.add_argument("--limit", type=int, default=100, help="events per page (1-1000)")
    es.add_argument("--cursor", help="continue after a previous page (printed with it)")
    ee = esub.add_parser("export", parents=[common, filters],
                         help="every matching event as JSON Lines or CSV")
    ee.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ee.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    esub.add_parser("prune", parents=[common],
                    help="delete what is past [events] retention now")
    e.set_defaults(fn=_admin_command(cmd_events))

    st = sub.add_parser("stats", parents=[common],
                        help="messages per hour or day, queue and outcomes, from the event log")
    st.add_argument("--span", choices=list(SPANS), default="24h",
                    help="24 hourly or 30 daily (UTC) counts")
    st.add_argument("--domain", help="only this domain's events (docs/EVENTS.md `domain`)")
    st.add_argument("--json", action="store_true", help="print JSON (the HTTP API's shapes)")
    st.set_defaults(fn=_admin_command(cmd_stats))

    n = sub.add_parser("dns", parents=[common], help="DNS records a domain should publish")
    nsub = n.add_subparsers(dest="action", required=True)
    nsub.add_parser("records", parents=[common],
                    help="print every record to publish").add_argument("domain")
    nsub.add_parser("check", parents=[common],
                    help="resolve each record: found / missing / wrong").add_argument("domain")
    n.set_defaults(fn=_admin_command(cmd_dns))

    c = sub.add_parser("check", parents=[common],
                       help="diagnose any mail domain or server: DNS, SMTP, TLS, AUTH "
                            "(exit 0 pass, 1 warnings, 2 failures)")
    c.add_argument("target", help="a domain (its MX hosts are probed too), or one server "
                                  "as HOST[:PORT] ([IPv6]:PORT)")
    c.add_argument("--json", action="store_true", help="the report as JSON (docs/CHECK.md)")
    c.add_argument("--only", action="append", choices=["dns", "smtp", "tls", "auth"],
                   help="run only these checks (repeatable)")
    c.add_argument("--selector", action="append", metavar="S",
                   help="DKIM selector to check (repeatable; default: common ones)")
    c.add_argument("--port", type=int, metavar="N",
                   help="SMTP port of the server or of the domain's MX hosts (default 25)")
    c.add_argument("--timeout", type=float, metavar="S",
                   help="seconds per network step of a probe (default 30)")
    c.add_argument("--allow-private", action="store_true",
                   help="private and loopback addresses are not failures (labs, tests)")
    c.add_argument("--rcpt", metavar="ADDRESS",
                   help="an address the server accepts: enables the end-of-data smuggling "
                        "probe (which never completes a message)")
    c.set_defaults(fn=cmd_check)
    # argparse exits 2 on a bad option, which would read as "failures found".
    c.error = lambda message: c.exit(USAGE_ERROR, f"{c.prog}: error: {message}\n")

    ak = sub.add_parser("apikey", parents=[common], help="keys for the HTTP API")
    aksub = ak.add_subparsers(dest="action", required=True)
    aksub.add_parser("list", parents=[common])
    ac = aksub.add_parser("create", parents=[common], help="print a new key's token (once)")
    ac.add_argument("name", help="what the key is for, e.g. 'billing app'")
    ac.add_argument("--scope", choices=["admin", "domain-admin", "send"], required=True)
    ac.add_argument("--campaigns", action="store_true",
                    help="every message the key sends is tracked campaign mail")
    ac.add_argument("--domain", action="append", metavar="DOMAIN",
                    help="a domain a domain-admin or send key covers (repeatable)")
    aksub.add_parser("revoke", parents=[common]).add_argument("id", type=int)
    ak.set_defaults(fn=_admin_command(cmd_apikey))

    w = sub.add_parser("webhook", parents=[common], help="send events to HTTP endpoints")
    wsub = w.add_subparsers(dest="action", required=True)
    wa = wsub.add_parser("add", parents=[common],
                         help="add an endpoint; prints its signing secret (once)")
    wa.add_argument("url", help="http:// or https:// URL the events are POSTed to")
    wa.add_argument("--domain", help="only this local domain's events (default: all)")
    wa.add_argument("--event", action="append", metavar="TYPE",
                    help="an event type to send (repeatable; default: every type, '*')")
    wsub.add_parser("list", parents=[common]).add_argument(
        "domain", nargs="?", help="only the endpoints of this domain")
    for name, text in (("remove", "remove an endpoint and its delivery log"),
                       ("enable", "enable (again): pending deliveries go out"),
                       ("disable", "stop sending until enabled"),
                       ("test", "POST a signed test event now; print the answer")):
        wsub.add_parser(name, parents=[common], help=text).add_argument("id", type=int)
    wd = wsub.add_parser("deliveries", parents=[common], help="an endpoint's delivery log")
    wd.add_argument("id", type=int)
    wd.add_argument("--state", choices=["pending", "delivered", "failed"])
    wd.add_argument("--limit", type=int, default=50)
    wsub.add_parser("redeliver", parents=[common],
                    help="send a delivered or failed delivery again").add_argument(
        "id", type=int, help="the delivery's id (see: webhook deliveries)")
    w.set_defaults(fn=_admin_command(cmd_webhook))

    sp = sub.add_parser("suppression", parents=[common],
                        help="addresses a sending domain no longer sends to")
    spsub = sp.add_subparsers(dest="action", required=True)
    sl = spsub.add_parser("list", parents=[common], help="entries, oldest first, a page at a time")
    sl.add_argument("domain", nargs="?", help="only this sending domain's")
    sl.add_argument("--campaign", help="only this campaign's entries")
    sl.add_argument("--address", help="only the entries of this address")
    sl.add_argument("--limit", type=int, default=100)
    sl.add_argument("--after", type=int, help="the id the previous page said (more: ...)")
    for name, text in (("add", "stop sending to an address (all mail, or one campaign's)"),
                       ("remove", "send to an address again")):
        x = spsub.add_parser(name, parents=[common], help=text)
        x.add_argument("domain", help="the sending domain")
        x.add_argument("address")
        x.add_argument("--campaign", help="only this campaign's mail (default: all of it)")
    sa = spsub.choices["add"]
    sa.add_argument("--reason", default="manual",
                    choices=["manual", "unsubscribe", "bounce", "complaint"])
    sa.add_argument("--source", default="", help="a note on where the entry came from")
    sp.set_defaults(fn=_admin_command(cmd_suppression))

    cp = sub.add_parser("campaign", parents=[common],
                        help="campaign reports: sent, delivered, opens, clicks, unsubscribes")
    cpsub = cp.add_subparsers(dest="action", required=True)
    cpsub.add_parser("list", parents=[common], help="campaigns in the event log").add_argument(
        "--domain", help="only this sending domain's")
    cr = cpsub.add_parser("report", parents=[common],
                          help="one campaign's figures and rates (README: Campaign reports)")
    cr.add_argument("name", nargs="?", help="the campaign (the tag); omitted: every "
                                            "campaign of --domain together")
    cr.add_argument("--domain", help="only the mail of this sending domain")
    shape = cr.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="the whole report as JSON")
    shape.add_argument("--csv", action="store_true", help="the per-day figures as CSV")
    cp.set_defaults(fn=_admin_command(cmd_campaign))
    c = sub.add_parser("cert", parents=[common], help="the ACME certificate")
    c.add_argument("action", choices=["status", "renew"],
                   help="status: issuer, names, expiry; renew: ask the CA now")
    c.set_defaults(fn=_admin_command(cmd_cert))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except config_mod.ConfigError as e:
        print(f"mailwright: config error: {e}", file=sys.stderr)
        return 2
    except (CliError, AdminError) as e:
        print(f"mailwright: error: {e}", file=sys.stderr)
        return 1
    except StoreUnavailable as e:
        print(f"mailwright: store: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`mailwright events export | head`): as
        # for a program killed by SIGPIPE, stop quietly; stdout must not be flushed
        # again at exit, where the same error would print a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
