"""The POP3 EXPIRE policy (delivery/pop3_expiry.py, RFC 2449 §6.7): messages downloaded
over POP3 go the policy's days after their first download; others stay."""

from __future__ import annotations

import asyncio
import time

from mailwright.delivery import pop3_expiry
from mailwright.store.messages import Delivery, LocalCopy


def test_pop3_expire_removes_only_downloaded_messages_past_the_policy(ann_stores):
    s, ann = ann_stores
    for i in range(3):
        asyncio.run(s.deliver(Delivery(message_id=f"E{i}", mail_from="",
                                       local=[LocalCopy(ann)],
                                       local_content=f"Subject: {i}\r\n\r\n".encode())))
    drop = asyncio.run(s.maildrop("ann@a.test"))
    uids = [m.uid for m in drop.messages]
    asyncio.run(s.pop3_update(drop.mailbox_id, [], uids[:2]))      # two downloaded
    now = time.time()
    assert asyncio.run(pop3_expiry.expire(s, now + 400 * 86400)) == 0   # no policy
    asyncio.run(s.set_pop3_expire("a.test", 0))           # RFC 2449 §6.7: EXPIRE 0, at once
    assert asyncio.run(s.pop3_retrieved_by("a.test", now - 60)) == {}
    assert asyncio.run(s.pop3_retrieved_by("a.test", pop3_expiry.due_since(0, now + 1))) == \
        {drop.mailbox_id: uids[:2]}
    assert asyncio.run(pop3_expiry.expire(s, now + 1)) == 2
    assert [m.uid for m in asyncio.run(s.maildrop("ann@a.test")).messages] == uids[2:]
