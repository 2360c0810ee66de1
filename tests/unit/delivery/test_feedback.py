"""Complaints: ARF feedback reports (RFC 5965) parsed, and the stage that records them
on a real store: a `complained` event, the complaining recipient suppressed when
configured; reports naming nobody or not about our mail change nothing."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mailwright.delivery.feedback import parse_report
from mailwright.delivery.stages.feedback import FeedbackStage

from ..session_harness import make_config
from .helpers import Events, message, remote, run

FEEDBACK = "fbl@a.test"


def report(feedback_type="abuse", rcpt_to="Original-Rcpt-To: <Bob@Remote.TEST>\r\n",
           original_to="bob@remote.test", original_from="news@a.test",
           original_type="message/rfc822", report_type="feedback-report") -> bytes:
    return (
        "From: fbl@isp.test\r\nTo: fbl@a.test\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report\r\n"
        "--b1\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: Test/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <bounces@mail.a.test>\r\n{rcpt_to}"
        "Reported-Domain: a.test\r\n\r\n"
        f"--b1\r\nContent-Type: {original_type}\r\n\r\n"
        f"From: News <{original_from}>\r\nTo: {original_to}\r\nSubject: sale\r\n\r\n"
        "--b1--\r\n").encode()


def test_parse_report():
    r = parse_report(report())
    assert (r.feedback_type, r.recipients, r.complaint) == ("abuse", ("Bob@remote.test",), True)
    assert r.domains == ("a.test", "mail.a.test")
    # No Original-Rcpt-To: the reported message's one To; headers only (RFC 5965 §2 (e)).
    r = parse_report(report(rcpt_to="", original_type="text/rfc822-headers"))
    assert r.recipients == ("bob@remote.test",)
    # Redacted recipients: nobody.
    assert parse_report(report(rcpt_to="", original_to="redacted")).recipients == ()
    assert parse_report(report(rcpt_to="", original_to="a@x.test, b@x.test")).recipients == ()
    assert not parse_report(report(feedback_type="virus")).complaint
    assert parse_report(report(report_type="delivery-status")) is None
    assert parse_report(b"Subject: hi\r\n\r\nnot a report\r\n") is None


def stage(store, events, **settings):
    cfg = make_config()
    campaigns = dataclasses.replace(cfg.campaigns, feedback_address=FEEDBACK, **settings)
    return FeedbackStage(store, events.log, campaigns)


def entries(store):
    return asyncio.run(store.suppressions(None, None, None, 10, None))


@pytest.mark.parametrize("suppress", [True, False])
def test_a_complaint_is_recorded_and_suppresses_when_configured(ann_store, suppress):
    store, _ = ann_store
    events = Events()
    run(stage(store, events, suppress_on_complaint=suppress),
        message(remote("FBL@a.test"), content=report()))
    assert events.rows == [("complained", "S1", "M1", {
        "rcpt": "Bob@remote.test", "domain": "a.test", "type": "abuse",
        "suppressed": suppress})]
    found = entries(store)
    if suppress:
        [entry] = found
        assert (entry.domain, entry.address, entry.campaign, entry.reason) == (
            "a.test", "Bob@remote.test", None, "complaint")
        assert entry.source == "ARF abuse report M1"
    else:
        assert found == []


@pytest.mark.parametrize("msg", [
    message(remote("other@a.test"), content=report()),                 # not to the address
    message(remote("fbl@a.test"), content=report(), account="ann@a.test"),   # our user's
    message(remote("fbl@a.test"), content=report(feedback_type="not-spam")),
])
def test_what_suppresses_nobody(ann_store, msg):
    store, _ = ann_store
    run(stage(store, Events()), msg)
    assert entries(store) == []


def test_a_report_about_mail_not_ours_is_ignored(ann_store):
    store, _ = ann_store
    events = Events()
    content = report().replace(b"a.test", b"elsewhere.test").replace(
        b"To: fbl@elsewhere.test", b"To: fbl@a.test")
    run(stage(store, events), message(remote("fbl@a.test"), content=content))
    assert events.rows == [] and entries(store) == []
