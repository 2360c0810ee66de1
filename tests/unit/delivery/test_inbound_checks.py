"""The inbound checks stage: the trust verdict applied to a message from elsewhere."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.delivery.pipeline import Rejection
from mailwright.delivery.stages.inbound_checks import CheckStage
from mailwright.store.blobs import Spooled
from mailwright.trust.inbound import CheckRejection, Verdict

from .helpers import TEXT, Events, local, message, remote, run, spooled

AR = b"Authentication-Results: mx.example.test; spf=pass\r\n"
FORGED = b"Authentication-Results: mx.example.test; dmarc=pass\r\n"
THEIRS = b"Authentication-Results: other.test; dkim=pass\r\n"


class FakeChecks:
    """Stands in for trust/inbound.py InboundChecks: records its calls, returns `verdict`."""
    authserv_id = "mx.example.test"

    def __init__(self, verdict: Verdict | Exception):
        self.verdict = verdict
        self.calls: list[tuple] = []

    async def check(self, conn, ip, helo, mail_from, content, domains):
        self.calls.append((conn, ip, helo, mail_from, content, domains))
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict


def test_forged_results_removed_verdict_prepended():
    # RFC 8601 §5: fields with our authserv-id that we did not add are removed before
    # the checks; others' are kept.
    checks, events = FakeChecks(Verdict(AR)), Events()
    msg = run(CheckStage(checks, events.log), message(content=FORGED + THEIRS + TEXT))
    assert checks.calls[0][4] == THEIRS + TEXT
    assert msg.content == AR + THEIRS + TEXT
    assert msg.checked
    assert events.kinds == []


def test_the_checks_get_the_envelope_and_the_recipient_domains():
    checks = FakeChecks(Verdict(AR))
    run(CheckStage(checks, Events().log),
        message(local("bob@example.test", 1), local("c@other.test", 3)))
    _, ip, helo, mail_from, _, domains = checks.calls[0]
    assert (ip, helo, mail_from, domains) == ("192.0.2.7", "client.test", "a@origin.test",
                                              {"example.test", "other.test"})


def test_a_reject_verdict_refuses_the_message():
    verdict = Verdict(AR, reject=CheckRejection("5.7.23",
                                                "SPF validation failed for a@origin.test"),
                      failed=["spf", "dkim"])
    events = Events()
    with pytest.raises(Rejection) as caught:
        run(CheckStage(FakeChecks(verdict), events.log), message())
    refusal = caught.value
    assert (refusal.status, refusal.text, refusal.reason) == (
        "5.7.23", "SPF validation failed for a@origin.test", "spf,dkim")
    assert events.data("auth-checks") == {"ip": "192.0.2.7", "mail_from": "a@origin.test",
                                          "failed": "spf,dkim", "action": "reject"}


def test_quarantine_files_only_the_recipients_of_those_domains_in_junk():
    verdict = Verdict(AR, quarantine_domains={"example.test"}, failed=["dmarc_quarantine"])
    events = Events()
    msg = run(CheckStage(FakeChecks(verdict), events.log),
              message(local("bob@example.test", 1), local("c@other.test", 3)))
    assert [r.junk for r in msg.envelope.recipients] == [True, False]
    assert events.data("auth-checks")["action"] == "quarantine"


def test_a_failing_check_loses_nothing():
    events = Events()
    msg = run(CheckStage(FakeChecks(RuntimeError("resolver broke")), events.log), message())
    assert msg.content == TEXT                      # tagged with nothing
    assert msg.checked                              # and still sealed when forwarded
    assert events.data("check-error") == {"error": "RuntimeError('resolver broke')"}


def test_mail_from_an_authenticated_user_is_not_checked():
    checks = FakeChecks(Verdict(AR))
    msg = run(CheckStage(checks, Events().log),
              message(account="alice@example.test", content=FORGED + TEXT))
    assert checks.calls == [] and not msg.checked
    assert msg.content == FORGED + TEXT


def test_connection_results_are_kept_across_messages():
    # iprev and HELO are computed once per connection (trust/inbound.py).
    checks = FakeChecks(Verdict(AR))
    stage = CheckStage(checks, Events().log)
    run(stage, message())
    run(stage, message(remote("x@far.test")))
    assert checks.calls[0][0] is checks.calls[1][0] is stage.connection


def test_a_spooled_message_has_only_its_head_edited(tmp_path):
    body = b"x" * 4000 + b"\r\n"
    content = spooled(tmp_path, FORGED + b"Subject: big\r\n\r\n" + body)
    assert isinstance(content, Spooled)
    msg = run(CheckStage(FakeChecks(Verdict(AR)), Events().log), message(content=content))
    assert isinstance(msg.content, Spooled) and msg.content.file is content.file
    assert msg.content.head == AR + b"Subject: big\r\n\r\n"
    assert asyncio.run(asyncio.to_thread(msg.content.read)).endswith(body)
