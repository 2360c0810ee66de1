"""A FETCH racing another session's EXPUNGE (found by imaptest's default mix: two
clients on one mailbox, one expunging while the other fetches bodies)."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.store.messages import Delivery, LocalCopy

from .conftest import PASSWORD
from .test_imap_session import Imap

USER = "imap@example.test"


@pytest.fixture
def store(make_store):
    s = make_store()
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_account(parse_mailbox(USER), PASSWORD))
    account = asyncio.run(s.account_id(USER))
    for i in range(3):
        asyncio.run(s.deliver(Delivery(
            message_id=f"R{i}", mail_from="a@x.test", local=[LocalCopy(account)],
            local_content=f"Subject: {i}\r\n\r\nbody number {i}\r\n".encode())))
    return s


def _expunge_first_read(store, uid: int):
    """The store as it is when another session expunges `uid` just after this
    session read the message rows and before it reads the message's text (the
    small ones of a slice in one read_blobs, others by read_blob)."""
    read_blob, read_blobs = store.read_blob, store.read_blobs
    done = []

    async def expunge_once() -> None:
        if not done:
            done.append(True)
            inbox = await store.mailbox(await store.account_id(USER), "INBOX")
            await store.store_flags(inbox.id, [uid], "add", ["\\Deleted"])
            await store.expunge(inbox.id, [uid])

    async def racing(digest: str) -> bytes:
        await expunge_once()
        return await read_blob(digest)

    async def racing_batch(digests: list[str]) -> dict[str, bytes]:
        await expunge_once()
        return await read_blobs(digests)
    store.read_blob, store.read_blobs = racing, racing_batch


def test_a_message_expunged_meanwhile_is_expungeissued_not_a_server_bug(store):
    c = Imap(store)
    c.login()
    c.cmd("s SELECT INBOX")
    _expunge_first_read(store, 1)
    lines = c.cmd("f FETCH 1:3 (BODY.PEEK[])")
    # RFC 5530 §3: the others' data, then NO [EXPUNGEISSUED]; the client learns of
    # the expunge at its next command that allows it (RFC 9051 §7.5.1: not during FETCH).
    assert lines[-1] == b"f NO [EXPUNGEISSUED] Some of the requested messages no longer exist"
    assert b"body number 1" in b"\r\n".join(lines) and b"body number 2" in b"\r\n".join(lines)
    assert b"body number 0" not in b"\r\n".join(lines)
    assert b"* 1 EXPUNGE" in c.cmd("n NOOP")


def test_a_blob_missing_for_a_message_still_there_is_a_server_bug(store):
    c = Imap(store)
    c.login()
    c.cmd("s SELECT INBOX")

    async def lost(digest: str) -> bytes:
        raise FileNotFoundError(digest)

    async def none_found(digests: list[str]) -> dict[str, bytes]:
        return {}
    store.read_blob, store.read_blobs = lost, none_found
    assert c.cmd("f FETCH 1 (BODY.PEEK[])")[-1] == \
        b"f NO [SERVERBUG] Message content unavailable"
