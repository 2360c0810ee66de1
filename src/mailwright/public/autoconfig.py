"""Mail client autoconfiguration: the settings of admin.clients (this server's
hostname, the client listeners configured) in the formats clients fetch by
themselves, for the domains we serve (any other: 404) and without a credential.

- Thunderbird (and K-9/Thunderbird for Android, Evolution, KMail): the clientConfig
  v1.1 format, GET /mail/config-v1.1.xml?emailaddress=A (as fetched from
  autoconfig.DOMAIN) and /.well-known/autoconfig/mail/config-v1.1.xml (as fetched from
  DOMAIN itself); without emailaddress the Host header names the domain.
- Outlook: the POX autodiscover protocol, POST /autodiscover/autodiscover.xml (any
  case: clients spell it Autodiscover/Autodiscover.xml too) with the address in the
  request body.
- Apple Mail (macOS, iOS): a configuration profile, GET /mail/apple.mobileconfig?email=A,
  for a user to open; unsigned, and with no password in it (the device asks).

None of them says whether an account exists: the answer is the same for every address
of the domain.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_untrusted
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from ..address import display_domain
from ..admin import Admin, Invalid, NotFound
from ..admin.clients import ClientSettings
from ..trust.records import ClientService

XML = "application/xml; charset=utf-8"
MOBILECONFIG = "application/x-apple-aspen-config"
# An autodiscover request is a few hundred octets; nothing longer is read.
MAX_REQUEST = 8192
AUTODISCOVER_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/" \
                       "requestschema/2006"
AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/" \
                 "responseschema/2006a"
# The account's UUIDs in a profile derive from the address, so that opening a newer
# profile for it replaces the installed one instead of adding a second account.
PROFILE_NAMESPACE = uuid.UUID("2c1a6f0e-5d8b-4c3e-9f7a-6d0b1e4a9c21")


class AnyCaseRoute(Route):
    """A route whose path matches in any letter case (Outlook's autodiscover URL)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            scope = {**scope, "path": scope["path"].lower()}
        return super().matches(scope)


def routes(admin: Admin) -> list[BaseRoute]:
    async def settings_for(address: str | None, domain: str | None) -> ClientSettings:
        return await admin.clients.settings(address=address, domain=domain)

    async def thunderbird(request: Request) -> Response:
        address = request.query_params.get("emailaddress")
        host = (request.url.hostname or "").removeprefix("autoconfig.")
        return await _answer(lambda: settings_for(address, None if address else host),
                             lambda s: Response(_client_config(s), media_type=XML))

    async def outlook(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST:
                return PlainTextResponse("autodiscover request too large", 413)
        try:
            address = _requested_address(body)
        except ValueError as e:
            return PlainTextResponse(f"invalid autodiscover request: {e}", 400)
        return await _answer(lambda: settings_for(address, None),
                             lambda s: Response(_autodiscover(s), media_type=XML))

    async def apple(request: Request) -> Response:
        address = request.query_params.get("email")
        if not address:
            return PlainTextResponse("give the address: ?email=user@example.com", 400)

        def profile(s: ClientSettings) -> Response:
            if not (s.of("imap") or s.of("pop3")) or not s.of("smtp"):
                return PlainTextResponse("this server has no IMAP or POP3, or no "
                                         "submission listener", 404)
            return Response(_mobileconfig(s), media_type=MOBILECONFIG, headers={
                "Content-Disposition": f'attachment; filename="{s.domain}.mobileconfig"'})
        return await _answer(lambda: settings_for(address, None), profile)

    return [
        Route("/mail/config-v1.1.xml", thunderbird, methods=["GET"]),
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", thunderbird, methods=["GET"]),
        AnyCaseRoute("/autodiscover/autodiscover.xml", outlook, methods=["POST"]),
        Route("/mail/apple.mobileconfig", apple, methods=["GET"]),
    ]


async def _answer(lookup: Callable, render: Callable[[ClientSettings], Response]) -> Response:
    try:
        found = await lookup()
    except NotFound:
        return PlainTextResponse("no such domain here", 404)
    except Invalid as e:
        return PlainTextResponse(str(e), 400)
    return render(found)


# --- Thunderbird: clientConfig v1.1 ---------------------------------------------------

def _client_config(s: ClientSettings) -> bytes:
    """The clientConfig v1.1 document: incoming servers (IMAP before POP3) and outgoing
    ones, each most preferred first, as the client tries them."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=s.domain)
    _text(provider, "domain", s.domain)
    _text(provider, "displayName", f"{display_domain(s.domain)} mail")
    _text(provider, "displayShortName", display_domain(s.domain))
    for service in s.services:
        kind = "outgoingServer" if service.protocol == "smtp" else "incomingServer"
        server = ET.SubElement(provider, kind, type=service.protocol)
        _text(server, "hostname", s.hostname)
        _text(server, "port", str(service.port))
        _text(server, "socketType", "SSL" if service.implicit_tls else "STARTTLS")
        # The password goes inside TLS (PLAIN/LOGIN); every listener demands TLS first.
        _text(server, "authentication", "password-cleartext")
        _text(server, "username", "%EMAILADDRESS%")
    return _xml(root)


# --- Outlook: POX autodiscover ---------------------------------------------------------

def _requested_address(body: bytes) -> str:
    """The EMailAddress of an Outlook autodiscover request; ValueError if it is not one
    (no DTDs, no entities: defusedxml refuses them)."""
    try:
        root = parse_untrusted(body)
    except (ET.ParseError, DefusedXmlException) as e:
        raise ValueError(f"not XML ({e})") from None
    ns = {"a": AUTODISCOVER_REQUEST}
    if root.tag != f"{{{AUTODISCOVER_REQUEST}}}Autodiscover":
        raise ValueError(f"expected an Autodiscover element of {AUTODISCOVER_REQUEST}")
    schema = root.findtext("a:Request/a:AcceptableResponseSchema", None, ns)
    if schema is not None and schema.strip() != OUTLOOK_SCHEMA:
        raise ValueError(f"only the {OUTLOOK_SCHEMA} response schema is served")
    address = (root.findtext("a:Request/a:EMailAddress", "", ns) or "").strip()
    if not address:
        raise ValueError("no Request/EMailAddress")
    return address


def _autodiscover(s: ClientSettings) -> bytes:
    """The POX response: one Protocol per type (IMAP, POP3, SMTP), the preferred one."""
    # Default namespaces written as plain xmlns attributes: the response carries no
    # prefixes, as clients of this schema expect.
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_SCHEMA)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for kind, protocol in (("IMAP", "imap"), ("POP3", "pop3"), ("SMTP", "smtp")):
        preferred = s.of(protocol)
        if not preferred:
            continue
        service = preferred[0]
        p = ET.SubElement(account, "Protocol")
        for name, value in (
                ("Type", kind), ("Server", s.hostname), ("Port", str(service.port)),
                ("LoginName", s.address or ""), ("DomainRequired", "off"),
                ("SPA", "off"), ("SSL", "on"),
                # SSL: TLS from the first byte; TLS: STARTTLS.
                ("Encryption", "SSL" if service.implicit_tls else "TLS"),
                ("AuthRequired", "on")):
            _text(p, name, value)
    return _xml(root)


# --- Apple: a configuration profile ----------------------------------------------------

def _mobileconfig(s: ClientSettings) -> bytes:
    """A com.apple.mail.managed payload in a Configuration profile (Apple's
    Configuration Profile Reference), unsigned; the device asks for the password."""
    address = s.address or ""
    incoming = (s.of("imap") or s.of("pop3"))[0]
    outgoing = s.of("smtp")[0]
    account_uuid = uuid.uuid5(PROFILE_NAMESPACE, f"account:{address.lower()}")
    profile_uuid = uuid.uuid5(PROFILE_NAMESPACE, f"profile:{address.lower()}")
    reverse_host = ".".join(reversed(s.hostname.split(".")))
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse_host}.mail.{account_uuid}",
        "PayloadUUID": str(account_uuid).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "imap"
        else "EmailTypePOP",
        "EmailAddress": address,
        **_apple_server("Incoming", s.hostname, incoming, address),
        **_apple_server("Outgoing", s.hostname, outgoing, address),
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    return plistlib.dumps({
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse_host}.mailprofile.{profile_uuid}",
        "PayloadUUID": str(profile_uuid).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadDescription": f"The mail account {address} on {s.hostname}",
        "PayloadOrganization": display_domain(s.domain),
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }, fmt=plistlib.FMT_XML)


def _apple_server(direction: str, hostname: str, service: ClientService,
                  address: str) -> dict:
    # UseSSL on a STARTTLS port has Mail upgrade the connection (STARTTLS / STLS).
    return {f"{direction}MailServerHostName": hostname,
            f"{direction}MailServerPortNumber": service.port,
            f"{direction}MailServerUseSSL": True,
            f"{direction}MailServerAuthentication": "EmailAuthPassword",
            f"{direction}MailServerUsername": address}


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)                 # for people reading it; clients ignore the spaces
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
