"""The directory for SQLite: domains, accounts, aliases, credentials, DKIM keys and
the per-domain POP3 EXPIRE setting. Lookups only: what an alias or a catch-all
means is delivery/recipients.py's."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any

from ...address import Address, display_domain, parse_mailbox
from ...auth.passwords import Credentials, ScramKeys, password_keys
from ..base import StoreError
from ..directory import DEFAULT_MAILBOXES, AccountInfo, AliasInfo, DKIMKeyInfo
from ..names import account_key, alias_source, alias_targets, domain_name, merged_targets
from .blobrefs import release_blobs


class SQLiteDirectory:
    conn: sqlite3.Connection
    _write: Any

    # --- domains ---------------------------------------------------------
    def _domain_id(self, domain: str) -> int | None:
        row = self.conn.execute("SELECT id FROM domains WHERE name=?", (domain,)).fetchone()
        return row[0] if row else None

    async def add_domain(self, domain: str) -> str:
        name = domain_name(domain)

        def job(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO domains (name, created) VALUES (?, ?)", (name, time.time()))
            except sqlite3.IntegrityError:
                raise StoreError(f"domain {display_domain(name)} already exists") from None
        await self._write(job)
        return name

    async def remove_domain(self, domain: str, force: bool = False) -> None:
        name = domain_name(domain)

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name=?", (name,)).fetchone()
            if not row:
                raise StoreError(f"no such domain: {display_domain(name)}")
            n_acc = c.execute("SELECT count(*) FROM accounts WHERE domain_id=?", row).fetchone()[0]
            n_ali = c.execute("SELECT count(*) FROM aliases WHERE domain_id=?", row).fetchone()[0]
            if (n_acc or n_ali) and not force:
                raise StoreError(f"domain {display_domain(name)} still has {n_acc} account(s) "
                                 f"and {n_ali} alias(es); remove them first or pass --force")
            c.execute("DELETE FROM domains WHERE id=?", row)
        await self._write(job)

    async def list_domains(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM domains ORDER BY name")]

    async def is_local_domain(self, domain: str) -> bool:
        return self._domain_id(domain) is not None

    # --- accounts --------------------------------------------------------
    async def add_account(self, address: Address, password: str) -> None:
        # argon2 and PBKDF2 take tens of milliseconds: off the loop.
        hashed, keys = await asyncio.to_thread(password_keys, password)

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name=?", (address.domain,)).fetchone()
            if not row:
                raise StoreError(f"no such domain: {display_domain(address.domain)} "
                                 f"(add it with: mailwright domain add {address.domain})")
            if c.execute("SELECT 1 FROM aliases WHERE lookup=?", (address.key,)).fetchone():
                raise StoreError(f"{address} is an alias; remove the alias first")
            try:
                cur = c.execute(
                    "INSERT INTO accounts (domain_id, local_part, lookup, password_hash, "
                    "scram_salt, scram_stored_key, scram_server_key, scram_iterations, created) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (row[0], address.local_part, address.key, hashed, keys.salt,
                     keys.stored_key, keys.server_key, keys.iterations, time.time()))
            except sqlite3.IntegrityError:
                raise StoreError(f"account {address} already exists") from None
            account_id = cur.lastrowid
            # UIDVALIDITY (RFC 9051 §2.3.1.1): distinct per mailbox incarnation.
            base = int(time.time())
            for i, (name, special) in enumerate(DEFAULT_MAILBOXES):
                c.execute("INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) "
                          "VALUES (?,?,?,?)", (account_id, name, special, base + i))
                # The mailboxes we provision start subscribed (clients that show
                # only subscribed mailboxes see them); CREATE does not subscribe.
                c.execute("INSERT INTO subscriptions (account_id, name) VALUES (?,?)",
                          (account_id, name))
        await self._write(job)

    async def set_password(self, address: Address, password: str) -> None:
        # argon2 and PBKDF2 take tens of milliseconds: off the loop.
        hashed, keys = await asyncio.to_thread(password_keys, password)

        def job(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE accounts SET password_hash=?, scram_salt=?, scram_stored_key=?, "
                "scram_server_key=?, scram_iterations=? WHERE lookup=?",
                (hashed, keys.salt, keys.stored_key, keys.server_key, keys.iterations,
                 address.key))
            if cur.rowcount == 0:
                raise StoreError(f"no such account: {address}")
        await self._write(job)

    async def remove_account(self, address: Address) -> None:
        def job(c: sqlite3.Connection) -> list[str]:
            row = c.execute("SELECT id FROM accounts WHERE lookup=?", (address.key,)).fetchone()
            if not row:
                raise StoreError(f"no such account: {address}")
            blobs = [r[0] for r in c.execute(
                "SELECT DISTINCT m.blob FROM messages m JOIN mailboxes b ON m.mailbox_id=b.id "
                "WHERE b.account_id=?", row)]
            c.execute("DELETE FROM accounts WHERE id=?", row)
            return release_blobs(c, blobs)
        await self._unlink(await self._write(job))

    async def list_accounts(self, domain: str | None = None) -> list[AccountInfo]:
        sql = ("SELECT a.local_part, d.name, a.created, count(m.id), coalesce(sum(m.size), 0) "
               "FROM accounts a JOIN domains d ON a.domain_id=d.id "
               "LEFT JOIN mailboxes b ON b.account_id=a.id "
               "LEFT JOIN messages m ON m.mailbox_id=b.id ")
        args: tuple = ()
        if domain:
            sql += "WHERE d.name=? "
            args = (domain_name(domain),)
        sql += "GROUP BY a.id ORDER BY d.name, a.lookup"
        return [AccountInfo(str(Address(lp, d)), created, n, size)
                for lp, d, created, n, size in self.conn.execute(sql, args)]

    # --- login names -------------------------------------------------------------
    async def account_id(self, account: str) -> int | None:
        key = account_key(account)
        if key is None:
            return None
        row = self.conn.execute("SELECT id FROM accounts WHERE lookup=?", (key,)).fetchone()
        return row[0] if row else None

    async def credentials(self, username: str) -> Credentials | None:
        key = account_key(username.strip())
        if key is None:
            return None
        row = self.conn.execute(
            "SELECT a.local_part, d.name, password_hash, scram_salt, scram_stored_key, "
            "scram_server_key, scram_iterations FROM accounts a JOIN domains d "
            "ON a.domain_id=d.id WHERE lookup=?", (key,)).fetchone()
        if not row:
            return None
        return Credentials(str(Address(row[0], row[1])), row[2], ScramKeys(*row[3:]))

    async def rehash_password(self, account: str, old_hash: str, new_hash: str) -> bool:
        key = account_key(account)
        if key is None:
            return False

        def job(c: sqlite3.Connection) -> bool:
            return c.execute("UPDATE accounts SET password_hash=? WHERE lookup=? AND "
                             "password_hash=?", (new_hash, key, old_hash)).rowcount == 1
        return await self._write(job)

    # --- aliases ---------------------------------------------------------
    async def add_alias(self, source: str, targets: list[str]) -> None:
        src_local, src_domain, lookup = alias_source(source)
        norm = alias_targets(targets)

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name=?", (src_domain,)).fetchone()
            if not row:
                raise StoreError(f"no such domain: {display_domain(src_domain)}")
            if c.execute("SELECT 1 FROM accounts WHERE lookup=?", (lookup,)).fetchone():
                raise StoreError(f"{source} is an account; an alias cannot shadow it")
            existing = c.execute("SELECT targets FROM aliases WHERE lookup=?",
                                 (lookup,)).fetchone()
            if existing:
                merged = merged_targets(json.loads(existing[0]), norm)
                c.execute("UPDATE aliases SET targets=? WHERE lookup=?",
                          (json.dumps(merged), lookup))
            else:
                c.execute("INSERT INTO aliases (domain_id, local_part, lookup, targets, created) "
                          "VALUES (?,?,?,?,?)",
                          (row[0], src_local, lookup, json.dumps(norm), time.time()))
        await self._write(job)

    async def remove_alias(self, source: str) -> None:
        _, _, lookup = alias_source(source)

        def job(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM aliases WHERE lookup=?", (lookup,)).rowcount == 0:
                raise StoreError(f"no such alias: {source}")
        await self._write(job)

    async def list_aliases(self, domain: str | None = None) -> list[AliasInfo]:
        sql = ("SELECT a.local_part, d.name, a.targets FROM aliases a "
               "JOIN domains d ON a.domain_id=d.id ")
        args: tuple = ()
        if domain:
            sql += "WHERE d.name=? "
            args = (domain_name(domain),)
        sql += "ORDER BY d.name, a.lookup"
        return [AliasInfo(str(Address(lp, d)) if lp else f"@{d}", json.loads(t))
                for lp, d, t in self.conn.execute(sql, args)]

    # --- lookups -------------------------------------------------------------
    async def find_account(self, address: Address) -> int | None:
        row = self.conn.execute("SELECT id FROM accounts WHERE lookup=?",
                                (address.key,)).fetchone()
        return row[0] if row else None

    async def alias(self, address: Address) -> list[str] | None:
        return self._alias_targets(address.key)

    async def catch_all(self, domain: str) -> list[str] | None:
        return self._alias_targets(f"@{domain}")

    def _alias_targets(self, lookup: str) -> list[str] | None:
        row = self.conn.execute("SELECT targets FROM aliases WHERE lookup=?",
                                (lookup,)).fetchone()
        return json.loads(row[0]) if row else None

    async def set_pop3_expire(self, domain: str, days: int | None) -> None:
        name = domain_name(domain)

        def job(c: sqlite3.Connection) -> None:
            if c.execute("UPDATE domains SET pop3_expire_days=? WHERE name=?",
                         (days, name)).rowcount == 0:
                raise StoreError(f"no such domain: {display_domain(name)}")
        await self._write(job)

    async def pop3_expire_days(self, account: str) -> int | None:
        row = self.conn.execute("SELECT pop3_expire_days FROM domains WHERE name=?",
                                (parse_mailbox(account).domain,)).fetchone()
        return row[0] if row else None

    async def pop3_expire_policies(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT name, pop3_expire_days FROM domains "
                                      "WHERE pop3_expire_days IS NOT NULL"))

    # --- email authentication ---------------------------------------------------
    async def add_dkim_keys(self, keys: list[DKIMKeyInfo]) -> None:
        def job(c: sqlite3.Connection) -> None:
            for k in keys:
                if c.execute("SELECT 1 FROM dkim_keys WHERE domain=? AND selector=?",
                             (k.domain, k.selector)).fetchone():
                    raise StoreError(f"selector {k.selector} already exists for {k.domain}")
                c.execute("INSERT INTO dkim_keys (domain, name, selector, algorithm, path, "
                          "txt, active, created) VALUES (?,?,?,?,?,?,?,?)",
                          (k.domain, k.name, k.selector, k.algorithm, k.path, k.txt,
                           int(k.active), k.created))
        await self._write(job)

    async def dkim_keys(self, domain: str | None = None) -> list[DKIMKeyInfo]:
        where, args = ("WHERE domain=?", (domain,)) if domain else ("", ())
        rows = self.conn.execute(
            "SELECT domain, name, selector, algorithm, path, txt, active, created "
            f"FROM dkim_keys {where} ORDER BY domain, created, selector", args).fetchall()
        return [DKIMKeyInfo(*r[:6], bool(r[6]), r[7]) for r in rows]

    async def activate_dkim_keys(self, domain: str, name: str) -> None:
        def job(c: sqlite3.Connection) -> None:
            if not c.execute("SELECT 1 FROM dkim_keys WHERE domain=? AND name=?",
                             (domain, name)).fetchone():
                raise StoreError(f"no DKIM keys named {name} for {domain}")
            c.execute("UPDATE dkim_keys SET active=(name=?) WHERE domain=?", (name, domain))
        await self._write(job)

    async def remove_dkim_keys(self, domain: str, name: str) -> list[str]:
        """Retire a key set: returns the private key files to delete."""
        def job(c: sqlite3.Connection) -> list[str]:
            rows = c.execute("SELECT path, active FROM dkim_keys WHERE domain=? AND name=?",
                             (domain, name)).fetchall()
            if not rows:
                raise StoreError(f"no DKIM keys named {name} for {domain}")
            if any(active for _, active in rows):
                raise StoreError(f"{name} signs mail for {domain}; activate another key "
                                 "set first (mailwright dkim activate)")
            c.execute("DELETE FROM dkim_keys WHERE domain=? AND name=?", (domain, name))
            return [path for path, _ in rows]
        return await self._write(job)


