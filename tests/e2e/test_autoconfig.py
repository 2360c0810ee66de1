"""Mail client autoconfiguration against a real server's http listener: Thunderbird's
clientConfig, Outlook's POX autodiscover (a request as Outlook sends it) and an Apple
configuration profile, each parsed as its client parses it and read for the fields
the client uses: this server's hostname and the configured listeners' ports and TLS
modes. Unknown domains get 404, bad requests 400, and no answer tells whether an
account exists."""

from __future__ import annotations

import json
import plistlib
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from ..conftest import require
from ..dnsserver import DNSServer
from .apiserver import ApiServer

DOMAIN, HOST = "example.test", "mail.example.test"
ALICE = f"alice@{DOMAIN}"
AUTODISCOVER = "/Autodiscover/Autodiscover.xml"       # as Outlook spells it
HORDE = Path(__file__).with_name("horde_autoconfig.php")
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def pox(address: str) -> bytes:
    """An autodiscover request as Outlook (2007 to 2021) posts it."""
    return (f'<?xml version="1.0" encoding="utf-8"?>\r\n'
            f'<Autodiscover xmlns="{REQUEST_NS}">\r\n'
            f"  <Request>\r\n"
            f"    <EMailAddress>{address}</EMailAddress>\r\n"
            f"    <AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema>\r\n"
            f"  </Request>\r\n"
            f"</Autodiscover>\r\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("autoconfig"), hostname=HOST)
    srv.cli("domain", "add", DOMAIN)
    srv.add_user(ALICE)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def web(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.ports['http']}",
                      timeout=30) as c:
        yield c


def servers(provider: ET.Element, kind: str) -> list[tuple]:
    return [(s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
             s.findtext("socketType"), s.findtext("authentication"), s.findtext("username"))
            for s in provider.findall(kind)]


def test_thunderbird_autoconfig(server, web):
    p = server.ports
    r = web.get("/mail/config-v1.1.xml", params={"emailaddress": ALICE})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    [provider] = root.findall("emailProvider")
    assert provider.get("id") == DOMAIN and provider.findtext("domain") == DOMAIN
    login = ("password-cleartext", "%EMAILADDRESS%")
    # Most preferred first: IMAP before POP3, implicit TLS before STARTTLS.
    assert servers(provider, "incomingServer") == [
        ("imap", HOST, p["imaps"], "SSL", *login),
        ("imap", HOST, p["imap"], "STARTTLS", *login),
        ("pop3", HOST, p["pop3s"], "SSL", *login),
        ("pop3", HOST, p["pop3"], "STARTTLS", *login)]
    assert servers(provider, "outgoingServer") == [
        ("smtp", HOST, p["submissions"], "SSL", *login),
        ("smtp", HOST, p["submission"], "STARTTLS", *login)]
    # The same document for every address of the domain: none tells who has an account.
    other = web.get("/mail/config-v1.1.xml", params={"emailaddress": f"nobody@{DOMAIN}"})
    assert other.content == r.content
    # Fetched from the domain itself or from autoconfig.DOMAIN, without the address.
    for host in (DOMAIN, f"autoconfig.{DOMAIN}", f"AutoConfig.{DOMAIN.upper()}:8080"):
        got = web.get("/.well-known/autoconfig/mail/config-v1.1.xml", headers={"Host": host})
        assert got.content == r.content, host
    assert web.get("/mail/config-v1.1.xml", headers={"Host": f"autoconfig.{DOMAIN}"}
                   ).content == r.content


def test_thunderbird_refusals(web):
    assert web.get("/mail/config-v1.1.xml",
                   params={"emailaddress": "alice@elsewhere.test"}).status_code == 404
    assert web.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                   headers={"Host": "elsewhere.test"}).status_code == 404
    r = web.get("/mail/config-v1.1.xml", params={"emailaddress": "not an address"})
    assert r.status_code == 400 and "invalid address" in r.text


def test_outlook_autodiscover(server, web):
    p = server.ports
    for path in (AUTODISCOVER, "/autodiscover/autodiscover.xml",
                 "/AUTODISCOVER/autodiscover.XML"):
        r = web.post(path, content=pox(ALICE), headers={"Content-Type": "text/xml"})
        assert r.status_code == 200, (path, r.text)
    root = ET.fromstring(r.content)
    assert root.tag == f"{{{RESPONSE_NS}}}Autodiscover"
    account = root.find(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
    assert account is not None, r.text

    def field(element, name):
        return element.findtext(f"{{{OUTLOOK_NS}}}{name}")
    assert (field(account, "AccountType"), field(account, "Action")) == ("email", "settings")
    protocols = {field(x, "Type"): {name: field(x, name) for name in (
        "Server", "Port", "LoginName", "SSL", "Encryption", "SPA", "AuthRequired")}
        for x in account.findall(f"{{{OUTLOOK_NS}}}Protocol")}
    common = dict(Server=HOST, LoginName=ALICE, SSL="on", Encryption="SSL", SPA="off",
                  AuthRequired="on")
    assert protocols == {"IMAP": {**common, "Port": str(p["imaps"])},
                         "POP3": {**common, "Port": str(p["pop3s"])},
                         "SMTP": {**common, "Port": str(p["submissions"])}}


def test_outlook_refusals(web):
    def post(body: bytes, path: str = AUTODISCOVER) -> httpx.Response:
        return web.post(path, content=body, headers={"Content-Type": "text/xml"})
    assert post(pox("bob@elsewhere.test")).status_code == 404
    assert post(pox("not an address")).status_code == 400
    assert "not XML" in post(b"<Autodiscover").text
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<Autodiscover xmlns="' + REQUEST_NS.encode() + b'"><Request><EMailAddress>&b;'
            b"</EMailAddress></Request></Autodiscover>")
    assert post(bomb).status_code == 400                  # no DTDs, no entities
    mobile = pox(ALICE).replace(
        OUTLOOK_NS.encode(),
        b"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006")
    assert "response schema" in post(mobile).text          # ActiveSync: not served
    assert post(b"x" * 10_000).status_code == 413
    assert web.get(AUTODISCOVER).status_code == 405


def test_apple_profile(server, web):
    p = server.ports
    r = web.get("/mail/apple.mobileconfig", params={"email": ALICE})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-apple-aspen-config"
    assert f'filename="{DOMAIN}.mobileconfig"' in r.headers["content-disposition"]
    profile = plistlib.loads(r.content)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    [account] = profile["PayloadContent"]
    assert {k: v for k, v in account.items() if not k.startswith("Payload")} == {
        "EmailAccountDescription": ALICE, "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": ALICE,
        "IncomingMailServerHostName": HOST, "IncomingMailServerPortNumber": p["imaps"],
        "IncomingMailServerUseSSL": True, "IncomingMailServerUsername": ALICE,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": HOST, "OutgoingMailServerPortNumber": p["submissions"],
        "OutgoingMailServerUseSSL": True, "OutgoingMailServerUsername": ALICE,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True}
    assert account["PayloadType"] == "com.apple.mail.managed"
    # Never a password: the device asks for it (IncomingPassword, OutgoingPassword).
    assert [k for k in account if "Password" in k] == ["OutgoingPasswordSameAsIncomingPassword"]
    # The same identifiers each time: a newer profile replaces the installed one.
    again = plistlib.loads(web.get("/mail/apple.mobileconfig", params={"email": ALICE}).content)
    assert again["PayloadUUID"] == profile["PayloadUUID"]
    assert again["PayloadContent"][0]["PayloadUUID"] == account["PayloadUUID"]
    assert web.get("/mail/apple.mobileconfig",
                   params={"email": "a@elsewhere.test"}).status_code == 404
    assert web.get("/mail/apple.mobileconfig").status_code == 400


def test_api_still_answers_everything_else(web):
    r = web.get("/mail/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_real_client_library_sets_itself_up(server):
    """Horde_Mail_Autoconfig (Debian's php-horde-mail-autoconfig, Horde webmail's account
    setup) finds the settings by both of its ways: the Thunderbird autoconfig URL at
    autoconfig.DOMAIN, and the SRV records `dns records` prints, served by a DNS server."""
    require("php")
    p = server.ports
    zone = [line for line in server.cli("dns", "records", DOMAIN).stdout.splitlines()
            if "\tSRV\t" in line]
    dns = DNSServer()
    dns.add_zone(".", "\n".join(zone) + "\n")
    dns.start()
    try:
        res = subprocess.run(["php", str(HORDE), ALICE, str(p["http"]), str(dns.port)],
                             capture_output=True, text=True, timeout=120)
    finally:
        dns.stop()
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)

    def servers(how: str, kind: str) -> list[tuple]:
        return [(s["kind"], s["host"], s["port"], s["tls"], s["username"])
                for s in found[how][kind]]
    # Thunderbird's format: every server, in our order; "tls" for implicit TLS (Horde
    # then uses STARTTLS where the server offers it), the username filled in.
    assert servers("thunderbird", "mail") == [
        ("Imap", HOST, p["imaps"], "tls", ALICE), ("Imap", HOST, p["imap"], None, ALICE),
        ("Pop3", HOST, p["pop3s"], "tls", ALICE), ("Pop3", HOST, p["pop3"], None, ALICE)]
    assert servers("thunderbird", "msa") == [
        ("Msa", HOST, p["submissions"], "tls", ALICE),
        ("Msa", HOST, p["submission"], None, ALICE)]
    # SRV: Horde reads _imaps/_imap/_pop3s/_pop3 and _submission (it predates RFC 8314's
    # _submissions) and orders them by priority: implicit TLS first.
    assert servers("srv", "mail") == [
        ("Imap", HOST, p["imaps"], "tls", None), ("Imap", HOST, p["imap"], None, None),
        ("Pop3", HOST, p["pop3s"], "tls", None), ("Pop3", HOST, p["pop3"], None, None)]
    assert servers("srv", "msa") == [("Msa", HOST, p["submission"], None, None)]
