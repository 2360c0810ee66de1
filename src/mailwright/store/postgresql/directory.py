"""The directory for PostgreSQL: domains, accounts, aliases, credentials, DKIM keys and
the per-domain POP3 EXPIRE setting, as store/sqlite/directory.py keeps them (the same
name checks and password helpers, imported from there). Every change is one
transaction; the uniqueness the SQLite writer gets from running alone comes from the
tables' UNIQUE constraints here (a second node adding the same name loses on the
constraint, and gets the same StoreError)."""

from __future__ import annotations

import asyncio
import time

from psycopg.types.json import Jsonb

from ...address import Address, display_domain, parse_mailbox
from ...auth.passwords import Credentials, ScramKeys, password_keys
from ..base import StoreError
from ..directory import DEFAULT_MAILBOXES, AccountInfo, AliasInfo, DKIMKeyInfo
from ..names import account_key, alias_source, alias_targets, domain_name, merged_targets
from .blobrefs import release_blobs
from .db import Cursor, Database
from .mailboxes import new_uidvalidity

_MAILBOX_NAMES = [name for name, _ in DEFAULT_MAILBOXES]
_MAILBOX_USES = [special for _, special in DEFAULT_MAILBOXES]


class PostgresDirectory:
    db: Database

    # --- domains ---------------------------------------------------------
    async def add_domain(self, domain: str) -> str:
        name = domain_name(domain)
        if not await self.db.execute("INSERT INTO domains (name, created) VALUES (%s, %s) "
                                     "ON CONFLICT (name) DO NOTHING", (name, time.time())):
            raise StoreError(f"domain {display_domain(name)} already exists")
        return name

    async def remove_domain(self, domain: str, force: bool = False) -> None:
        name = domain_name(domain)

        async def job(cur: Cursor) -> None:
            domain_id = await _lock_domain(cur, name)
            if domain_id is None:
                raise StoreError(f"no such domain: {display_domain(name)}")
            await cur.execute("SELECT (SELECT count(*) FROM accounts WHERE domain_id=%s), "
                              "(SELECT count(*) FROM aliases WHERE domain_id=%s)",
                              (domain_id, domain_id))
            n_acc, n_ali = await cur.fetchone()
            if (n_acc or n_ali) and not force:
                raise StoreError(f"domain {display_domain(name)} still has {n_acc} account(s) "
                                 f"and {n_ali} alias(es); remove them first or pass --force")
            blobs = await _account_blobs(cur, "a.domain_id=%s", domain_id)
            await cur.execute("DELETE FROM domains WHERE id=%s", (domain_id,))
            await release_blobs(cur, blobs)
        await self.db.transaction(job)

    async def list_domains(self) -> list[str]:
        return [r[0] for r in await self.db.fetchall(
            'SELECT name FROM domains ORDER BY name COLLATE "C"')]

    async def is_local_domain(self, domain: str) -> bool:
        return await self.db.fetchone("SELECT 1 FROM domains WHERE name=%s",
                                      (domain,)) is not None

    # --- accounts --------------------------------------------------------
    async def add_account(self, address: Address, password: str) -> None:
        # argon2 and PBKDF2 take tens of milliseconds: off the loop.
        hashed, keys = await asyncio.to_thread(password_keys, password)

        async def job(cur: Cursor) -> None:
            domain_id = await _lock_domain(cur, address.domain)
            if domain_id is None:
                raise StoreError(f"no such domain: {display_domain(address.domain)} "
                                 f"(add it with: mailwright domain add {address.domain})")
            await cur.execute("SELECT 1 FROM aliases WHERE lookup=%s", (address.key,))
            if await cur.fetchone():
                raise StoreError(f"{address} is an alias; remove the alias first")
            # UIDVALIDITY (RFC 9051 §2.3.1.1): greater than any given out before, so
            # an account removed and added again (even within a second) does not
            # reuse its mailboxes' values.
            first = (await new_uidvalidity(cur, len(_MAILBOX_NAMES)))[0]
            # The account, its mailboxes and their subscriptions in one statement. The
            # mailboxes we provision start subscribed (clients that show only
            # subscribed mailboxes see them); CREATE does not subscribe.
            await cur.execute(
                "WITH a AS (INSERT INTO accounts (domain_id, local_part, lookup, "
                "password_hash, scram_salt, scram_stored_key, scram_server_key, "
                "scram_iterations, created) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (lookup) DO NOTHING RETURNING id), "
                "boxes AS (INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) "
                "SELECT a.id, n.name, n.special, %s + n.i - 1 FROM a, "
                "unnest(%s::text[], %s::text[]) WITH ORDINALITY AS n(name, special, i)), "
                "subs AS (INSERT INTO subscriptions (account_id, name) "
                "SELECT a.id, n FROM a, unnest(%s::text[]) AS n) "
                "SELECT id FROM a",
                (domain_id, address.local_part, address.key, hashed, keys.salt,
                 keys.stored_key, keys.server_key, keys.iterations, time.time(),
                 first, _MAILBOX_NAMES, _MAILBOX_USES, _MAILBOX_NAMES))
            if await cur.fetchone() is None:
                raise StoreError(f"account {address} already exists")
        await self.db.transaction(job)

    async def set_password(self, address: Address, password: str) -> None:
        # argon2 and PBKDF2 take tens of milliseconds: off the loop.
        hashed, keys = await asyncio.to_thread(password_keys, password)
        if not await self.db.execute(
                "UPDATE accounts SET password_hash=%s, scram_salt=%s, scram_stored_key=%s, "
                "scram_server_key=%s, scram_iterations=%s WHERE lookup=%s",
                (hashed, keys.salt, keys.stored_key, keys.server_key, keys.iterations,
                 address.key)):
            raise StoreError(f"no such account: {address}")

    async def remove_account(self, address: Address) -> None:
        async def job(cur: Cursor) -> None:
            await cur.execute("SELECT id FROM accounts WHERE lookup=%s FOR UPDATE",
                              (address.key,))
            row = await cur.fetchone()
            if not row:
                raise StoreError(f"no such account: {address}")
            blobs = await _account_blobs(cur, "a.id=%s", row[0])
            await cur.execute("DELETE FROM accounts WHERE id=%s", row)
            await release_blobs(cur, blobs)
        await self.db.transaction(job)

    async def list_accounts(self, domain: str | None = None) -> list[AccountInfo]:
        # Counts per account first, then joined: one pass over messages.
        sql = ("SELECT a.local_part, d.name, a.created, coalesce(u.n, 0), "
               "coalesce(u.size, 0) FROM accounts a JOIN domains d ON a.domain_id=d.id "
               "LEFT JOIN (SELECT b.account_id, count(*) AS n, sum(m.size) AS size "
               "FROM messages m JOIN mailboxes b ON m.mailbox_id=b.id "
               "GROUP BY b.account_id) u ON u.account_id=a.id ")
        args: tuple = ()
        if domain:
            sql += "WHERE d.name=%s "
            args = (domain_name(domain),)
        sql += 'ORDER BY d.name COLLATE "C", a.lookup COLLATE "C"'
        return [AccountInfo(str(Address(lp, d)), created, n, int(size))
                for lp, d, created, n, size in await self.db.fetchall(sql, args)]

    # --- login names -------------------------------------------------------------
    async def account_id(self, account: str) -> int | None:
        key = account_key(account)
        if key is None:
            return None
        return await self._account_by_key(key)

    async def _account_by_key(self, key: str) -> int | None:
        row = await self.db.fetchone("SELECT id FROM accounts WHERE lookup=%s", (key,))
        return row[0] if row else None

    async def credentials(self, username: str) -> Credentials | None:
        key = account_key(username.strip())
        if key is None:
            return None
        row = await self.db.fetchone(
            "SELECT a.local_part, d.name, password_hash, scram_salt, scram_stored_key, "
            "scram_server_key, scram_iterations FROM accounts a JOIN domains d "
            "ON a.domain_id=d.id WHERE lookup=%s", (key,))
        if not row:
            return None
        return Credentials(str(Address(row[0], row[1])), row[2], ScramKeys(*row[3:]))

    async def rehash_password(self, account: str, old_hash: str, new_hash: str) -> bool:
        key = account_key(account)
        if key is None:
            return False
        return await self.db.execute("UPDATE accounts SET password_hash=%s WHERE lookup=%s "
                                     "AND password_hash=%s", (new_hash, key, old_hash)) == 1

    # --- aliases ---------------------------------------------------------
    async def add_alias(self, source: str, targets: list[str]) -> None:
        src_local, src_domain, lookup = alias_source(source)
        norm = alias_targets(targets)

        async def job(cur: Cursor) -> None:
            domain_id = await _lock_domain(cur, src_domain)
            if domain_id is None:
                raise StoreError(f"no such domain: {display_domain(src_domain)}")
            await cur.execute("SELECT EXISTS (SELECT 1 FROM accounts WHERE lookup=%s), "
                              "(SELECT targets FROM aliases WHERE lookup=%s)", (lookup, lookup))
            is_account, existing = await cur.fetchone()
            if is_account:
                raise StoreError(f"{source} is an account; an alias cannot shadow it")
            if existing is not None:
                merged = merged_targets(list(existing), norm)
                await cur.execute("UPDATE aliases SET targets=%s WHERE lookup=%s",
                                  (Jsonb(merged), lookup))
            else:
                await cur.execute(
                    "INSERT INTO aliases (domain_id, local_part, lookup, targets, created) "
                    "VALUES (%s,%s,%s,%s,%s)",
                    (domain_id, src_local, lookup, Jsonb(norm), time.time()))
        await self.db.transaction(job)

    async def remove_alias(self, source: str) -> None:
        _, _, lookup = alias_source(source)
        if not await self.db.execute("DELETE FROM aliases WHERE lookup=%s", (lookup,)):
            raise StoreError(f"no such alias: {source}")

    async def list_aliases(self, domain: str | None = None) -> list[AliasInfo]:
        sql = ("SELECT a.local_part, d.name, a.targets FROM aliases a "
               "JOIN domains d ON a.domain_id=d.id ")
        args: tuple = ()
        if domain:
            sql += "WHERE d.name=%s "
            args = (domain_name(domain),)
        sql += 'ORDER BY d.name COLLATE "C", a.lookup COLLATE "C"'
        return [AliasInfo(str(Address(lp, d)) if lp else f"@{d}", list(t))
                for lp, d, t in await self.db.fetchall(sql, args)]

    # --- lookups -------------------------------------------------------------
    async def find_account(self, address: Address) -> int | None:
        return await self._account_by_key(address.key)

    async def alias(self, address: Address) -> list[str] | None:
        return await self._alias_targets(address.key)

    async def catch_all(self, domain: str) -> list[str] | None:
        return await self._alias_targets(f"@{domain}")

    async def _alias_targets(self, lookup: str) -> list[str] | None:
        row = await self.db.fetchone("SELECT targets FROM aliases WHERE lookup=%s", (lookup,))
        return list(row[0]) if row else None

    async def set_pop3_expire(self, domain: str, days: int | None) -> None:
        name = domain_name(domain)
        if not await self.db.execute("UPDATE domains SET pop3_expire_days=%s WHERE name=%s",
                                     (days, name)):
            raise StoreError(f"no such domain: {display_domain(name)}")

    async def pop3_expire_days(self, account: str) -> int | None:
        row = await self.db.fetchone("SELECT pop3_expire_days FROM domains WHERE name=%s",
                                     (parse_mailbox(account).domain,))
        return row[0] if row else None

    async def pop3_expire_policies(self) -> dict[str, int]:
        return dict(await self.db.fetchall("SELECT name, pop3_expire_days FROM domains "
                                           "WHERE pop3_expire_days IS NOT NULL"))

    # --- email authentication ---------------------------------------------------
    async def add_dkim_keys(self, keys: list[DKIMKeyInfo]) -> None:
        async def job(cur: Cursor) -> None:
            for k in keys:
                await cur.execute(
                    "INSERT INTO dkim_keys (domain, name, selector, algorithm, path, txt, "
                    "active, created) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (domain, selector) DO NOTHING RETURNING 1",
                    (k.domain, k.name, k.selector, k.algorithm, k.path, k.txt, k.active,
                     k.created))
                if await cur.fetchone() is None:
                    raise StoreError(f"selector {k.selector} already exists for {k.domain}")
        await self.db.transaction(job)

    async def dkim_keys(self, domain: str | None = None) -> list[DKIMKeyInfo]:
        where, args = ("WHERE domain=%s", (domain,)) if domain else ("", ())
        rows = await self.db.fetchall(
            "SELECT domain, name, selector, algorithm, path, txt, active, created "
            f'FROM dkim_keys {where} '
            'ORDER BY domain COLLATE "C", created, selector COLLATE "C"', args)
        return [DKIMKeyInfo(*r) for r in rows]

    async def activate_dkim_keys(self, domain: str, name: str) -> None:
        # One statement: the key set must exist; then it alone is active.
        if not await self.db.execute(
                "UPDATE dkim_keys SET active=(name=%s) WHERE domain=%s AND EXISTS "
                "(SELECT 1 FROM dkim_keys WHERE domain=%s AND name=%s)",
                (name, domain, domain, name)):
            raise StoreError(f"no DKIM keys named {name} for {domain}")

    async def remove_dkim_keys(self, domain: str, name: str) -> list[str]:
        """Retire a key set: returns the private key files to delete."""
        async def job(cur: Cursor) -> list[str]:
            await cur.execute("SELECT path, active FROM dkim_keys WHERE domain=%s AND "
                              "name=%s FOR UPDATE", (domain, name))
            rows = await cur.fetchall()
            if not rows:
                raise StoreError(f"no DKIM keys named {name} for {domain}")
            if any(active for _, active in rows):
                raise StoreError(f"{name} signs mail for {domain}; activate another key "
                                 "set first (mailwright dkim activate)")
            await cur.execute("DELETE FROM dkim_keys WHERE domain=%s AND name=%s",
                              (domain, name))
            return [path for path, _ in rows]
        return await self.db.transaction(job)


async def _lock_domain(cur: Cursor, name: str) -> int | None:
    """The domain's id, its row locked until the transaction ends: the writers of its
    accounts and aliases take turns per domain (what the SQLite writer gets from running
    alone), so an account and an alias of one address cannot both be added by two
    nodes at once, and a domain removal waits for them, then counts them. The checks
    that follow are statements of their own, whose snapshots see what the previous
    holder committed."""
    await cur.execute("SELECT id FROM domains WHERE name=%s FOR NO KEY UPDATE", (name,))
    row = await cur.fetchone()
    return row[0] if row else None


async def _account_blobs(cur: Cursor, where: str, arg: int) -> list[str]:
    """The blobs the messages of some accounts refer to (released once they go)."""
    await cur.execute("SELECT DISTINCT m.blob FROM messages m JOIN mailboxes b "
                      "ON m.mailbox_id=b.id JOIN accounts a ON b.account_id=a.id "
                      f"WHERE {where}", (arg,))
    return [r[0] for r in await cur.fetchall()]
