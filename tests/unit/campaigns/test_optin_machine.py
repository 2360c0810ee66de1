"""Which mail is campaign mail, and who loaded a pixel."""

from __future__ import annotations

import dataclasses

import pytest

from mailwright.config import ConfigError, parse
from mailwright.delivery.campaigns import machine, optin, unsubscribe

from ..delivery.helpers import message, remote
from ..session_harness import CONFIG_TEXT

SETTINGS = parse(CONFIG_TEXT).campaigns


def campaign(content: bytes, account="alice@example.test", **kw):
    msg = message(remote("x@far.test"), content=content, account=account)
    for k, v in kw.items():
        setattr(msg, k, v)
    return optin.campaign_of(msg, SETTINGS)


def test_the_field_names_the_campaign_and_is_removed_folded_or_not():
    c = campaign(b"From: a@example.test\r\nX-Mailwright-Campaign: =?utf-8?q?Fr=C3=BChling?="
                 b"\r\n  2025\r\nSubject: s\r\n\r\nbody x-mailwright-campaign: no\r\n")
    assert (c.name, c.domain) == ("Frühling 2025", "example.test")
    assert c.content == b"From: a@example.test\r\nSubject: s\r\n\r\nbody " \
                        b"x-mailwright-campaign: no\r\n"


def test_not_opted_in_or_not_authenticated_is_not_a_campaign():
    assert campaign(b"From: a@example.test\r\n\r\nx-mailwright-campaign: x\r\n") is None
    assert campaign(b"X-Mailwright-Campaign: x\r\n\r\nhi\r\n", account=None) is None


def test_api_flag_and_tracked_domains():
    c = campaign(b"Subject: s\r\n\r\nhi\r\n", campaign=True, tag="spring")
    assert (c.name, c.content) == ("spring", b"Subject: s\r\n\r\nhi\r\n")
    tracked = dataclasses.replace(SETTINGS, tracked_domains=("example.test",))
    msg = message(remote("x@far.test"), content=b"\r\nhi\r\n", account="bob@example.test")
    assert optin.campaign_of(msg, tracked).name is None


def test_list_unsubscribe_fields_replace_the_senders():
    text = b"List-Unsubscribe: <mailto:x@y>\r\nSubject: s\r\n\r\nList-Unsubscribe: body\r\n"
    assert unsubscribe.replace_fields(text, "https://t/u/T") == (
        b"List-Unsubscribe: <https://t/u/T>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"Subject: s\r\n\r\nList-Unsubscribe: body\r\n")


@pytest.mark.parametrize("ua,method,expected", [
    ("Mozilla/5.0", "GET", ("apple-mpp", True)),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
     "GoogleImageProxy)", "GET", ("proxy-google", False)),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "GET",
     ("proxy-yahoo", False)),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "GET", ("scanner", True)),
    ("python-requests/2.31", "GET", ("bot", True)),
    ("", "GET", ("bot", True)),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko)", "HEAD", ("bot", True)),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko)", "GET", ("client", False)),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328)", "GET",
     ("client", False)),
])
def test_user_agent_classes(ua, method, expected):
    assert machine.classify(ua, method) == expected


@pytest.mark.parametrize("table,message", [
    ('tracking_host = "bad host"', "expected a host name"),
    ('tracked_domains = "example.com"', "expected a list of strings"),
    ('tracked_domains = ["bad..domain"]', "tracked_domains"),
    ('keys = ["1:short"]', "at least 32 octets"),
    ('keys = ["a b:' + "A" * 43 + '"]', "unique ID"),
    ('unsubscribe_scope = "list"', "expected domain or campaign"),
    ("tracking = true", "unknown key"),
])
def test_campaign_settings_errors_name_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        parse(CONFIG_TEXT + f"\n[campaigns]\n{table}\n")
