"""Local copies and Junk routing (delivery/local.py): one copy per account; a
quarantined recipient's copy goes to Junk (RFC 6154 \\Junk), or to the INBOX when
the user deleted Junk."""

from __future__ import annotations

import asyncio

from mailwright.delivery import local
from mailwright.delivery.recipients import Target
from mailwright.store.messages import Delivery, LocalCopy


def test_junk_routing_one_copy_per_account():
    ann, bob = Target("ann@a.test", 1), Target("bob@b.test", 2)
    far = Target("far@remote.test")
    copies = local.local_copies([(False, [ann, far]), (True, [ann, bob]), (False, [bob])])
    assert copies == [LocalCopy(1, ("Junk", "INBOX")), LocalCopy(2, ("Junk", "INBOX"))]
    assert local.local_copies([(False, [ann])]) == [LocalCopy(1, ("INBOX",))]


def inbox_and_junk(s, account):
    async def counts():
        boxes = [await s.mailbox(account, name) for name in ("INBOX", "Junk")]
        return [len(await s.message_states(box.id)) if box else None for box in boxes]
    return asyncio.run(counts())


def test_quarantined_copy_lands_in_junk_or_inbox_without_one(ann_stores):
    s, ann = ann_stores

    def deliver(copies):
        asyncio.run(s.deliver(Delivery(message_id="J", mail_from="", local=copies,
                                       local_content=b"Subject: j\r\n\r\nx\r\n")))
    deliver(local.local_copies([(True, [Target("ann@a.test", ann)])]))
    assert inbox_and_junk(s, ann) == [0, 1]
    asyncio.run(s.delete_mailbox(ann, "Junk"))           # the user removed it
    deliver(local.local_copies([(True, [Target("ann@a.test", ann)])]))
    assert inbox_and_junk(s, ann) == [1, None]
