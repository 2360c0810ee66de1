"""The RCPT quota decision (delivery/quota.py, RFC 9208 §4: a full mailbox is a
temporary failure, told at RCPT) and the limit rule it shares with the store."""

from __future__ import annotations

import asyncio

from mailwright.delivery import quota
from mailwright.delivery.recipients import Target
from mailwright.store.mailboxes import Quota


def test_rcpt_quota_decision(ann_stores):
    assert Quota(used=90, limit=100, messages=3).exceeded_by(11)
    assert not Quota(used=90, limit=100, messages=3).exceeded_by(10)
    assert not Quota(used=10 ** 9, limit=0, messages=3).exceeded_by(1)    # 0: no limit
    s, ann = ann_stores
    target = [Target("ann@a.test", ann), Target("far@remote.test")]
    assert not asyncio.run(quota.any_over_quota(s, target, 10 ** 9))
    asyncio.run(s.set_quota("ann@a.test", 1000))
    assert not asyncio.run(quota.any_over_quota(s, target, 1000))
    assert asyncio.run(quota.any_over_quota(s, target, 1001))
    assert not asyncio.run(quota.any_over_quota(s, [Target("far@remote.test")], 1001))
