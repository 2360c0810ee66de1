"""Relayed copies keep to 998 octets a line (RFC 5322 §2.1.1); local ones stay as they came."""

from __future__ import annotations

from mailwright.delivery.stages.relay_format import RelayFormatStage
from mailwright.net.lines import longest_line

from .helpers import local, message, remote, run, spooled

LONG = (b"From: a@origin.test\r\nSubject: long\r\nContent-Type: text/plain\r\n\r\n"
        + b"word " * 400 + b"\r\n")


def test_a_relayed_copy_is_reencoded():
    msg = run(RelayFormatStage(), message(remote("x@far.test"), content=LONG,
                                          long_lines=True))
    assert msg.content == LONG
    assert msg.relay_text is not None and longest_line(msg.relay_text) <= 998
    assert b"Content-Transfer-Encoding: quoted-printable" in msg.relay_text
    assert msg.relay_copy().endswith(msg.relay_text)
    assert msg.local_copy().endswith(LONG)


def test_local_only_or_short_lines_leave_it_alone():
    assert run(RelayFormatStage(), message(local("b@example.test", 2), content=LONG,
                                           long_lines=True)).relay_text is None
    assert run(RelayFormatStage(), message(remote("x@far.test"))).relay_text is None


def test_a_spooled_message_is_reencoded_from_its_file(tmp_path):
    msg = run(RelayFormatStage(), message(remote("x@far.test"),
                                          content=spooled(tmp_path, LONG), long_lines=True))
    assert isinstance(msg.relay_text, bytes) and longest_line(msg.relay_text) <= 998
