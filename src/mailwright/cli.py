"""The command line: serve, config, domain, user, alias, queue, dkim, dns."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import sys

from . import config as config_mod
from .address import AddressError, display_domain, parse_mailbox
from .store.base import StoreError

MIN_PASSWORD = 8


class CliError(Exception):
    pass


def _load(args) -> config_mod.Config:
    return config_mod.load(config_mod.config_path(getattr(args, "config", None)))


@contextlib.contextmanager
def _store(args):
    from .app import open_store
    store = open_store(_load(args))
    try:
        yield store
    finally:
        store.close()


def _address(text: str):
    try:
        return parse_mailbox(text.strip())
    except AddressError as e:
        raise CliError(f"invalid address {text!r}: {e}") from None


def _read_password(args) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("passwords do not match")
    else:
        raise CliError("no terminal to ask for the password: pipe it in with --password-stdin")
    if len(password) < MIN_PASSWORD:
        raise CliError(f"password too short: use at least {MIN_PASSWORD} characters")
    return password


def cmd_serve(args) -> int:
    from .app import (
        ListenError,
        bind_listeners,
        bootstrap_demo,
        connect_summary,
        open_store,
        server_certificate,
    )
    from .workers import run_worker, supervise
    cfg = _load(args)
    logging.basicConfig(level=cfg.log.level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        store = open_store(cfg)
    except OSError as e:
        raise CliError(f"cannot open the mail store in {cfg.data_dir}: {e.strerror or e}") \
            from None
    try:
        password = bootstrap_demo(cfg, store)
        store.queue_release_leases()      # no worker runs yet: old claims are void
    finally:
        store.close()          # workers open their own; no threads may cross a fork
    # Issue the certificate (and make the local CA) once, before any worker is forked.
    certificate = server_certificate(cfg)
    try:
        sockets = bind_listeners(cfg)
    except ListenError as e:
        raise CliError(str(e)) from None
    demo = parse_mailbox(f"{cfg.demo.user}@{cfg.demo.domain}") if cfg.demo.user else None
    print(connect_summary(cfg, demo, password, certificate.ca), flush=True)
    if cfg.workers == 1:
        run_worker(cfg, sockets)
        return 0
    return supervise(cfg, sockets)


def cmd_config_check(args) -> int:
    cfg = _load(args)
    print(f"{cfg.path}: OK ({len(cfg.listeners)} listeners, data_dir {cfg.data_dir})")
    return 0


def cmd_domain(args) -> int:
    with _store(args) as store:
        if args.action == "add":
            name = store.add_domain(args.domain)
            print(f"added domain {display_domain(name)}")
        elif args.action == "remove":
            store.remove_domain(args.domain, force=args.force)
            print(f"removed domain {args.domain}")
        elif args.action == "set":
            days = _expire_days(args.pop3_expire)
            store.set_pop3_expire(args.domain, days)
            print(f"{args.domain}: POP3 downloads kept "
                  + ("until the client deletes them" if days is None else f"{days} days"))
        else:
            for name in store.list_domains():
                shown = display_domain(name)
                print(shown if shown == name else f"{shown} ({name})")
    return 0


def _local_domain(store, text: str) -> str:
    from .address import canonical_domain
    try:
        domain = canonical_domain(text)
    except AddressError as e:
        raise CliError(f"invalid domain {text!r}: {e}") from None
    if not store.is_local_domain(domain):
        raise CliError(f"{text} is not a local domain: mailwright domain add {text}")
    return domain


def cmd_dkim(args) -> int:
    from .trust import keys as keys_mod
    cfg = _load(args)
    with _store(args) as store:
        if args.action == "list":
            domain = _local_domain(store, args.domain) if args.domain else None
            for k in store.dkim_keys(domain):
                print(f"{k.domain}\t{k.selector}\t{k.algorithm}\t"
                      f"{'signing' if k.active else 'published'}")
            return 0
        domain = _local_domain(store, args.domain)
        if args.action == "generate":
            name = args.selector or keys_mod.default_name()
            made = keys_mod.generate(store, cfg.data_dir, domain, name)
            print(f"; DKIM keys for {domain} (private keys in {cfg.data_dir / 'dkim' / domain})")
            for k in made:
                print(_zone_line(f"{k.selector}._domainkey.{domain}", "TXT", k.txt))
            if made[0].active:
                print(f"; {domain} signs with {name} now; publish the records above.")
            else:
                print(f"; publish the records, wait for the TTL of the old ones, then: "
                      f"mailwright dkim activate {domain} {name}")
        elif args.action == "activate":
            store.activate_dkim_keys(domain, args.selector)
            print(f"{domain} now signs with {args.selector}; keep the old records published "
                  "until mail signed with them has arrived, then: mailwright dkim retire")
        elif args.action == "retire":
            keys_mod.retire(store, domain, args.selector)
            print(f"retired {args.selector} of {domain}: remove its TXT records from DNS")
    return 0


def _zone_line(name: str, rtype: str, value: str) -> str:
    if rtype == "TXT":
        from .trust.keys import txt_strings
        value = " ".join(f'"{part}"' for part in txt_strings(value))
    return f"{name}.\t3600\tIN\t{rtype}\t{value}"


def cmd_dns(args) -> int:
    import asyncio

    from .dns import Resolver
    from .trust import records
    cfg = _load(args)
    with _store(args) as store:
        domain = _local_domain(store, args.domain)
        keys = store.dkim_keys(domain)
    if args.action == "records":
        print(f"; DNS records for {domain}")
        for r in records.expected(cfg, domain, keys):
            print(f"; {r.purpose}")
            print(_zone_line(r.name, r.type, r.value))
        print(f"; MTA-STS also needs mta-sts.{domain} (A/CNAME) serving over HTTPS "
              f"https://mta-sts.{domain}/.well-known/mta-sts.txt containing:")
        for line in records.mta_sts_policy(cfg).splitlines():
            print(f";   {line}")
        print(f"; Reverse DNS: ask whoever owns this server's IP addresses for a PTR record "
              f"naming {cfg.hostname} (and an A/AAAA record for {cfg.hostname} back to them).")
        return 0
    dns = cfg.dns
    resolver = Resolver(list(dns.nameservers), dns.port, dns.timeout)
    findings = asyncio.run(records.check(cfg, resolver, domain, keys))
    width = max(len(f.what) for f in findings)
    for f in findings:
        print(f"{f.status:<8} {f.what:<{width}}  {f.detail}")
    return 1 if any(f.status in ("missing", "wrong", "error") for f in findings) else 0


def _expire_days(text: str) -> int | None:
    if text.lower() == "never":
        return None
    if not text.isdigit():
        raise CliError(f"--pop3-expire takes a number of days or 'never', not {text!r}")
    return int(text)


def _size(text: str) -> int:
    """"500M", "2G", "1048576" or "none" (no limit) as octets."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    if t in ("NONE", "0"):
        return 0
    factor = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    if not number.isdigit():
        raise CliError(f"quota takes a size like 500M, 2G or none, not {text!r}")
    return int(number) * factor


def cmd_user(args) -> int:
    with _store(args) as store:
        if args.action == "add":
            address = _address(args.address)
            store.add_account(address, _read_password(args))
            print(f"added user {address}")
        elif args.action == "passwd":
            address = _address(args.address)
            store.set_password(address, _read_password(args))
            print(f"password changed for {address}")
        elif args.action == "remove":
            address = _address(args.address)
            store.remove_account(address)
            print(f"removed user {address} and its mail")
        elif args.action == "quota":
            address = _address(args.address)
            limit = _size(args.size)
            store.set_quota(str(address), limit)
            print(f"quota of {address}: " + (f"{limit} octets" if limit else "none"))
        else:
            rows = store.list_accounts(args.domain)
            width = max([len(r.address) for r in rows] + [7])
            print(f"{'ADDRESS':<{width}}  {'MESSAGES':>8}  {'SIZE':>12}")
            for r in rows:
                print(f"{r.address:<{width}}  {r.messages:>8}  {r.size:>12}")
    return 0


def cmd_alias(args) -> int:
    with _store(args) as store:
        if args.action == "add":
            store.add_alias(args.source, args.targets)
            print(f"alias {args.source} -> {', '.join(args.targets)}")
        elif args.action == "remove":
            store.remove_alias(args.source)
            print(f"removed alias {args.source}")
        else:
            for a in store.list_aliases(args.domain):
                print(f"{a.source} -> {', '.join(a.targets)}")
    return 0


def cmd_queue(args) -> int:
    import time

    from rich.console import Console
    from rich.table import Table
    console = Console()
    with _store(args) as store:
        if args.action == "list":
            messages = store.queue_messages()
            table = Table(title=f"{len(messages)} queued message(s)")
            for col in ("ID", "AGE", "SIZE", "FROM", "RECIPIENTS"):
                table.add_column(col)
            by_state: dict[str, int] = {}
            for m in messages:
                for r in m.recipients:
                    by_state[r.state] = by_state.get(r.state, 0) + 1
                table.add_row(m.message_id, _age(time.time() - m.created), str(m.size),
                              m.mail_from or "<>",
                              "\n".join(f"{r.address} ({r.state})" for r in m.recipients))
            console.print(table)
            by_domain: dict[str, int] = {}
            for m in messages:
                for r in m.recipients:
                    domain = r.address.rpartition("@")[2]
                    by_domain[domain] = by_domain.get(domain, 0) + 1
            if messages:
                console.print("by state: " + ", ".join(f"{k} {v}" for k, v in sorted(
                    by_state.items())))
                console.print("by destination: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(by_domain.items(), key=lambda kv: -kv[1])))
        elif args.action == "show":
            m = store.queue_message(args.id)
            if m is None:
                raise CliError(f"no queued message {args.id} (see: mailwright queue list)")
            console.print(f"message {m.message_id}: from <{m.mail_from}>, {m.size} octets, "
                          f"queued {_age(time.time() - m.created)} ago"
                          + (f", ENVID {m.envid}" if m.envid else "")
                          + (f", RET={m.ret}" if m.ret else ""))
            table = Table()
            for col in ("RECIPIENT", "STATE", "ATTEMPTS", "NEXT", "LAST REPLY"):
                table.add_column(col)
            for r in m.recipients:
                due = _age(r.next_attempt - time.time()) if r.state == "deferred" else ""
                table.add_row(r.address, r.state, str(r.attempts), due, r.last_reply or "")
            console.print(table)
            attempts = store.queue_attempts(m.message_id)
            if attempts:
                log = Table(title="attempts")
                for col in ("AGO", "RECIPIENT", "REMOTE", "TLS", "REPLY"):
                    log.add_column(col)
                for a in attempts:
                    log.add_row(_age(time.time() - a["ts"]), a["address"], a["remote"],
                                a["tls"] or "none", a["reply"])
                console.print(log)
        elif args.action == "delete":
            if not store.queue_delete(args.id):
                raise CliError(f"no queued message {args.id}")
            print(f"deleted {args.id}")
        else:
            target = None if args.action == "flush" or args.all else args.id
            if target is None and args.action in ("hold", "release", "retry") and not args.all:
                raise CliError(f"queue {args.action} needs a message ID or --all")
            state = "held" if args.action == "hold" else "pending"
            n = store.queue_set_state(target, state, time.time())
            verb = {"hold": "held", "release": "released"}.get(args.action, "due now")
            print(f"{n} recipient(s) {verb}"
                  + ("; a running server picks them up within [queue] interval"
                     if verb != "held" else ""))
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
    d.set_defaults(fn=cmd_domain)

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

    a = sub.add_parser("alias", parents=[common], help="manage aliases")
    asub = a.add_subparsers(dest="action", required=True)
    al = asub.add_parser("list", parents=[common])
    al.add_argument("domain", nargs="?")
    aa = asub.add_parser("add", parents=[common])
    aa.add_argument("source", help="alias address, or @domain for a catch-all")
    aa.add_argument("targets", nargs="+", help="one or more target addresses")
    ar = asub.add_parser("remove", parents=[common])
    ar.add_argument("source")
    a.set_defaults(fn=cmd_alias)

    q = sub.add_parser("queue", parents=[common], help="inspect and manage the outbound queue")
    qsub = q.add_subparsers(dest="action", required=True)
    qsub.add_parser("list", parents=[common], help="queued messages and a summary")
    qsub.add_parser("flush", parents=[common], help="make every waiting recipient due now")
    for name, text in (("show", "one message and its recipients"),
                       ("delete", "remove a message from the queue (no bounce)")):
        qsub.add_parser(name, parents=[common], help=text).add_argument("id")
    for name, text in (("hold", "stop delivery attempts"), ("release", "resume held mail"),
                       ("retry", "try again now")):
        x = qsub.add_parser(name, parents=[common], help=text)
        x.add_argument("id", nargs="?")
        x.add_argument("--all", action="store_true")
    q.set_defaults(fn=cmd_queue)

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
    k.set_defaults(fn=cmd_dkim)

    n = sub.add_parser("dns", parents=[common], help="DNS records a domain should publish")
    nsub = n.add_subparsers(dest="action", required=True)
    nsub.add_parser("records", parents=[common],
                    help="print every record to publish").add_argument("domain")
    nsub.add_parser("check", parents=[common],
                    help="resolve each record: found / missing / wrong").add_argument("domain")
    n.set_defaults(fn=cmd_dns)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except config_mod.ConfigError as e:
        print(f"mailwright: config error: {e}", file=sys.stderr)
        return 2
    except (CliError, StoreError) as e:
        print(f"mailwright: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
