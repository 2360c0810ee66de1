"""Trace fields (RFC 5321 §4.4): Received on every copy, Return-Path on local ones."""

from __future__ import annotations

import re

from mailwright.delivery.stages.trace import TraceStage

from .helpers import TLS, local, message, remote, run


def stamped(**kw):
    return run(TraceStage("mx.example.test"), message(**kw))


def test_received_names_client_server_protocol_id_and_the_single_recipient():
    msg = stamped()
    text = msg.trace.decode()
    assert text.startswith("Received: from client.test ([192.0.2.7])\r\n"
                           "\tby mx.example.test (Mailwright) with ESMTP id M1\r\n"
                           "\tfor <bob@example.test>; ")
    assert text.endswith("\r\n") and text.count("\r\n") == 3
    # RFC 5322 §3.6.7: the date after the semicolon.
    assert re.search(r"; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n$", text)


def test_no_for_clause_with_several_recipients():
    # Naming every recipient would disclose Bcc recipients to all of them.
    msg = run(TraceStage("mx.example.test"),
              message(local("bob@example.test", 1), remote("x@far.test")))
    assert b"for <" not in msg.trace
    assert b"id M1;\r\n\t" in msg.trace


def test_protocol_names_rfc3848_and_rfc6531():
    def protocol(**kw) -> str:
        return re.search(rb"with (\S+) id", stamped(**kw).trace).group(1).decode()
    assert protocol(esmtp=False) == "SMTP"
    assert protocol(tls=TLS) == "ESMTPS"
    assert protocol(tls=TLS, account="alice@example.test") == "ESMTPSA"
    assert protocol(smtputf8=True, tls=TLS) == "UTF8SMTPS"


def test_tls_details_and_ipv6_literal():
    msg = stamped(tls=TLS, ip="2001:db8::7")
    assert b"from client.test ([IPv6:2001:db8::7])" in msg.trace     # RFC 5321 §4.1.3
    assert b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))\r\n" \
        in msg.trace


def test_the_clients_helo_cannot_break_the_field():
    msg = stamped(helo="evil\r\nX-Injected: 1 (comment)")
    first = msg.trace.split(b"\r\n")[0]
    assert first.startswith(b"Received: from evil??X-Injected:?1??comment?")
    assert b"\r\nX-Injected" not in msg.trace


def test_return_path_is_the_reverse_path_and_only_on_local_copies():
    msg = stamped()
    assert msg.return_path == b"Return-Path: <a@origin.test>\r\n"
    assert stamped(mail_from=None).return_path == b"Return-Path: <>\r\n"
    assert msg.local_copy().startswith(msg.return_path + msg.trace)
    assert msg.relay_copy().startswith(msg.trace)
