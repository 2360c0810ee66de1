"""One issuance from an ACME CA (RFC 8555 §7.4), blocking: run it in a thread.

The protocol is the `acme` library's (certbot's client): account (§7.3), order (§7.4),
HTTP-01 challenges (§8.3) answered through challenges.py, finalization with a CSR for
a new key, the certificate chain downloaded. Only HTTP-01 is done: TLS-ALPN-01
(RFC 8737) would need the TLS listeners to answer a special handshake on port 443.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives.asymmetric import ec

from ..config import AcmeSettings
from . import challenges as published
from .files import AcmeFiles, private_pem

USER_AGENT = "mailwright"
# How long the CA gets to validate and sign before the attempt counts as failed.
ORDER_TIMEOUT = datetime.timedelta(seconds=90)


class IssueError(Exception):
    """The CA refused or could not be reached; the text says which step failed."""


@dataclass(frozen=True)
class Issued:
    fullchain_pem: bytes
    key_pem: bytes


def issue(settings: AcmeSettings, files: AcmeFiles) -> Issued:
    """A new key and a certificate for settings.names from settings.directory."""
    step = "reading the account key"
    try:
        account_key = jose.JWKRSA(key=files.load_account_key())
        net = client.ClientNetwork(account_key, user_agent=USER_AGENT,
                                   verify_ssl=settings.ca_file or True)
        step = f"reading the directory {settings.directory}"
        ca = client.ClientV2(client.ClientV2.get_directory(settings.directory, net), net)
        step = "registering the account"
        _account(ca, settings.email)
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = private_pem(key)
        step = "ordering"
        order = ca.new_order(crypto_util.make_csr(key_pem, list(settings.names)))
        tokens = []
        try:
            step = "answering the HTTP-01 challenges"
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue            # RFC 8555 §7.1.4: a valid authorization is reused
                tokens.append(_answer(ca, account_key, files, authz))
            step = "waiting for validation and the certificate"
            deadline = datetime.datetime.now() + ORDER_TIMEOUT
            order = ca.poll_and_finalize(order, deadline)
        finally:
            for token in tokens:
                published.withdraw(files.challenges, token)
    except IssueError as e:
        raise IssueError(f"{step}: {e}") from None
    except (errors.Error, messages.Error, OSError, ValueError) as e:
        raise IssueError(f"{step}: {_describe(e)}") from e
    except Exception as e:      # requests' and josepy's errors: still the CA's answer
        raise IssueError(f"{step}: {type(e).__name__}: {e}") from e
    return Issued(order.fullchain_pem.encode("ascii"), key_pem)


def _account(ca: client.ClientV2, email: str) -> None:
    registration = messages.NewRegistration.from_data(
        email=email or None, terms_of_service_agreed=True)
    try:
        ca.new_account(registration)
    except errors.ConflictError as e:
        # RFC 8555 §7.3.1: the key already has an account; its URL is the Location.
        ca.net.account = messages.RegistrationResource(uri=e.location,
                                                       body=messages.Registration())


def _answer(ca: client.ClientV2, account_key: jose.JWK, files: AcmeFiles,
            authz: messages.AuthorizationResource) -> str:
    for challb in authz.body.challenges:
        if isinstance(challb.chall, challenges.HTTP01):
            response, validation = challb.response_and_validation(account_key)
            published.publish(files.challenges, challb.chall.encode("token"), validation)
            ca.answer_challenge(challb, response)
            return challb.chall.encode("token")
    raise IssueError(f"the CA offers no HTTP-01 challenge for "
                     f"{authz.body.identifier.value}")


def _describe(e: Exception) -> str:
    if isinstance(e, errors.ValidationError):
        # The failed authorizations carry the CA's reason (RFC 8555 §7.1.4 error).
        reasons = [f"{a.body.identifier.value}: {c.error}" for a in e.failed_authzrs
                   for c in a.body.challenges if c.error]
        return "validation failed: " + ("; ".join(reasons) or "no reason given")
    return str(e) or type(e).__name__
