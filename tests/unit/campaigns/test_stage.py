"""The tracking stage: campaign mail split per recipient, rewritten, given
List-Unsubscribe; everything else handed on untouched (the same object)."""

from __future__ import annotations

import asyncio
import dataclasses
import re

from mailwright.delivery.campaigns import keys, tokens
from mailwright.delivery.pipeline import Pipeline
from mailwright.delivery.stages.tracking import TrackingStage

from ..delivery.helpers import Events, local, message, remote, spooled
from ..session_harness import make_config

HTML = (b"From: alice@example.test\r\nTo: x@far.test\r\nSubject: s\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b'<html><body><a href="https://shop.example/?q=1">buy</a></body></html>\r\n')


class Rest:
    def __init__(self):
        self.seen = []

    async def run(self, msg):
        self.seen.append(msg)


def stage(tmp_path, **campaigns):
    config = make_config()
    config = dataclasses.replace(config, data_dir=tmp_path, campaigns=dataclasses.replace(
        config.campaigns, **campaigns))
    rest, events = Rest(), Events()
    return TrackingStage(config, events.log, Pipeline([rest])), rest, events, config


def test_mail_not_opted_in_is_handed_on_as_it_is(tmp_path):
    s, rest, events, _ = stage(tmp_path)
    msg = message(remote("x@far.test"), content=HTML, account="alice@example.test")
    asyncio.run(s.run(msg))
    assert rest.seen == [msg] and rest.seen[0].content is HTML and events.rows == []
    unauthenticated = message(remote("x@far.test"), content=HTML.replace(
        b"Subject", b"X-Mailwright-Campaign: spring\r\nSubject"))
    asyncio.run(s.run(unauthenticated))
    assert rest.seen[-1] is unauthenticated and b"X-Mailwright-Campaign" in \
        unauthenticated.content


def test_header_opt_in_split_per_recipient_field_removed(tmp_path):
    s, rest, _, config = stage(tmp_path, tracking_host="t.example.test")
    content = HTML.replace(b"Subject", b"X-Mailwright-Campaign: spring\r\nSubject")
    msg = message(remote("x@far.test"), local("bob@example.test", 2), content=content,
                  account="alice@example.test")
    asyncio.run(s.run(msg))
    assert [m.id for m in rest.seen] == ["M1-1", "M1-2"]
    ring = keys.ring_for(config)
    for copy, rcpt in zip(rest.seen, ["x@far.test", "bob@example.test"], strict=True):
        assert [str(r.address) for r in copy.envelope.recipients] == [rcpt]
        assert copy.tag == "spring" and b"X-Mailwright-Campaign" not in copy.content
        head = copy.content.split(b"\r\n\r\n")[0].decode()
        unsub = re.search(r"List-Unsubscribe: <https://t\.example\.test/u/([\w-]+)>,\r\n"
                          r" <mailto:unsubscribe@example\.test\?subject=([\w-]+)>\r\n", head)
        assert unsub[2] == unsub[1]         # RFC 2369 §3.2: the same token by mail
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
        token = tokens.decode(ring, unsub[1], tokens.UNSUBSCRIBE)
        assert (token.message_id, token.rcpt, token.domain, token.tag) == \
            (copy.id, rcpt, "example.test", "spring")
        click = re.search(rb'href="https://t\.example\.test/t/c/([\w-]+)"', copy.content)
        assert tokens.decode(ring, click[1].decode(), tokens.CLICK).url == \
            "https://shop.example/?q=1"
        assert re.search(rb'<img src="https://t\.example\.test/t/o/[\w-]+"[^>]*></body>',
                         copy.content)


def test_domain_opt_in_and_a_spooled_message(tmp_path):
    s, rest, _, _ = stage(tmp_path, tracked_domains=("example.test",))
    msg = message(remote("x@far.test"), content=spooled(tmp_path, HTML),
                  account="alice@example.test")
    asyncio.run(s.run(msg))
    (copy,) = rest.seen
    assert copy.id == "M1" and copy.tag is None and b"/t/o/" in copy.content


def test_unsafe_html_still_gets_unsubscribe_and_an_event(tmp_path):
    s, rest, events, _ = stage(tmp_path)
    content = HTML.replace(b"charset=utf-8", b"charset=utf-16")
    msg = message(remote("x@far.test"), content=content, account="alice@example.test")
    msg.campaign, msg.tag = True, "api"
    asyncio.run(s.run(msg))
    (copy,) = rest.seen
    assert copy.content.split(b"List-Unsubscribe=One-Click\r\n", 1)[1] == content
    assert events.data("tracking-skipped") == {"reason": "charset", "domain": "example.test",
                                               "tag": "api"}


def test_without_a_local_part_only_the_https_uri(tmp_path):
    s, rest, _, _ = stage(tmp_path, tracked_domains=("example.test",),
                          unsubscribe_local_part="")
    asyncio.run(s.run(message(remote("x@far.test"), content=HTML,
                              account="alice@example.test")))
    (copy,) = rest.seen
    assert re.match(rb"List-Unsubscribe: <https://[^>]+>\r\nList-Unsubscribe-Post: ",
                    copy.content)
    assert b"mailto:unsubscribe" not in copy.content


def test_a_link_grown_past_998_octets_in_an_8bit_part_marks_long_lines(tmp_path):
    s, rest, _, _ = stage(tmp_path, tracked_domains=("example.test",))
    long_line = HTML.replace(b"<html>", b"<html>" + b"x" * 900)
    for content, grown in ((long_line, True), (HTML, False)):
        asyncio.run(s.run(message(remote("x@far.test"), content=content,
                                  account="alice@example.test")))
        copy = rest.seen[-1]
        assert b"/t/c/" in copy.content and copy.long_lines is grown
