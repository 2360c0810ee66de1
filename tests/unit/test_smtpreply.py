"""The one SMTP reply type (RFC 5321 §4.2): written by our server, read by our client."""

from __future__ import annotations

import pytest

from mailwright.smtpreply import Reply


def test_multiline_reply_uses_hyphen_until_the_last_line():
    # RFC 5321 §4.2.1: "250-First line", ..., "250 Last line".
    reply = Reply(250, "2.0.0", "first", "second", "last")
    assert reply.render() == (b"250-2.0.0 first\r\n250-2.0.0 second\r\n"
                              b"250 2.0.0 last\r\n")


def test_enhanced_codes_can_be_left_out():
    # RFC 2034 §3: not on the greeting or EHLO reply.
    assert Reply(250, "2.0.0", "hello").render(False) == b"250 hello\r\n"
    assert Reply(220, "", "mx.example.test ESMTP").render() == b"220 mx.example.test ESMTP\r\n"


def test_an_empty_challenge_keeps_its_space():
    # RFC 4954 §4: "334 " followed by the (possibly empty) base64 challenge.
    assert Reply(334, "", "").render() == b"334 \r\n"
    assert Reply(250, "", "").render() == b"250\r\n"


@pytest.mark.parametrize("texts,status,lines", [
    (["2.1.5 ok"], "2.1.5", ("ok",)),
    (["5.7.1 no", "5.7.1 really not"], "5.7.1", ("no", "really not")),
    (["mx.example.test Hello", "PIPELINING"], "", ("mx.example.test Hello", "PIPELINING")),
    (["2.0.0 first", "second"], "", ("2.0.0 first", "second")),      # not on every line
    (["2.0.0"], "", ("2.0.0",)),                                     # a code, no text
    (["9.9.9 odd"], "", ("9.9.9 odd",)),                             # class is 2, 4 or 5
    (["dGVzdA=="], "", ("dGVzdA==",)),                               # a 334 challenge
])
def test_a_received_reply_is_taken_apart_only_when_it_can_be_put_back(texts, status, lines):
    reply = Reply.received(250, texts)
    assert (reply.status, reply.lines) == (status, lines)
    assert reply.text == "\n".join(texts)


def test_one_line_form_for_logs_and_dsns():
    assert str(Reply.received(550, ["5.1.1 no such user"])) == "550 5.1.1 no such user"
    assert str(Reply(451, "4.3.0", "DATA was not accepted")) == "451 4.3.0 DATA was not accepted"
    assert str(Reply.received(250, [""])) == "250"


def test_replies_compare_by_content():
    assert Reply.received(220, ["hi"]) == Reply(220, "", "hi")
    r = Reply(250, "2.0.0", "ok")
    r.render()                                     # the wire cache is no part of equality
    assert r == Reply(250, "2.0.0", "ok")
