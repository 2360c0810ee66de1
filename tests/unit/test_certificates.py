"""certificates/ without a CA: the [acme] settings, when a certificate is due, the
HTTP-01 answers as files and the route that serves them. (Issuance itself runs against
pebble: tests/e2e/test_acme.py.)"""

from __future__ import annotations

import asyncio
import datetime

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette

from mailwright.certificates import challenges
from mailwright.certificates.files import AcmeFiles
from mailwright.certificates.renewal import reason_to_issue, renew_after
from mailwright.config import ConfigError, parse
from mailwright.public import acme

BASE = """hostname = "mail.example.test"
data_dir = "data"
[[listeners]]
role = "mx"
port = 2525
"""
HTTP = '[[listeners]]\nrole = "http"\nport = 8080\n'
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def test_acme_settings():
    cfg = parse(BASE + HTTP + '[acme]\nenabled = true\nemail = "pm@example.test"\n'
                'names = ["IMAP.example.test"]\n')
    assert cfg.acme.enabled and cfg.acme.email == "pm@example.test"
    assert cfg.acme.names == ("mail.example.test", "imap.example.test")
    assert cfg.acme.directory.startswith("https://acme-v02.api.letsencrypt.org/")
    assert parse(BASE).acme.enabled is False


@pytest.mark.parametrize("text, message", [
    ('[acme]\nenabled = true\n', "needs an http listener"),
    (HTTP + '[acme]\ndirectory = "http://ca.test/dir"\n', "expected an https:// URL"),
    (HTTP + '[acme]\nnames = ["not a name"]\n', "expected fully qualified host names"),
    (HTTP + '[acme]\nnames = "x.test"\n', "expected a list of host names"),
    (HTTP + '[acme]\nemail = "nobody"\n', "expected an email address"),
    (HTTP + '[acme]\nca_file = "missing.pem"\n', "acme.ca_file: file not found"),
    (HTTP + '[acme]\ncheck_interval = 0\n', "more than 0 seconds"),
    (HTTP + '[acme]\nrenew = true\n', "unknown key"),
])
def test_acme_settings_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(BASE + text)


def certificate(names: list[str], issued_days_ago: float, lifetime_days: float):
    key = ec.generate_private_key(ec.SECP256R1())
    start = NOW - datetime.timedelta(days=issued_days_ago)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=lifetime_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(key, hashes.SHA256()))


def test_renewal_at_two_thirds_of_the_lifetime():
    names = ("mail.example.test", "imap.example.test")
    young = certificate(list(names), issued_days_ago=59, lifetime_days=90)
    assert renew_after(young) == NOW + datetime.timedelta(days=1)
    assert reason_to_issue(young, names, NOW) is None
    assert reason_to_issue(certificate(list(names), 61, 90), names, NOW) == "renewal"
    assert reason_to_issue(certificate(list(names), 1, 7), names, NOW) is None
    assert reason_to_issue(certificate(list(names), 5, 7), names, NOW) == "renewal"
    assert reason_to_issue(None, names, NOW) == "missing"
    # A name added to the config: issued again at once, however young.
    assert reason_to_issue(certificate(["mail.example.test"], 1, 90), names, NOW) == "names"


def test_challenge_files_and_route(tmp_path):
    directory = AcmeFiles.of(tmp_path).challenges
    directory.mkdir(parents=True)
    challenges.publish(directory, "tok_EN-1", "tok_EN-1.thumbprint")
    with pytest.raises(ValueError, match="not an ACME token"):
        challenges.publish(directory, "../escape", "x")
    (tmp_path / "secret").write_text("not for the CA")
    app = Starlette(routes=[acme.route(tmp_path)])

    async def get(token: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://mail.example.test") as client:
            return await client.get(f"/.well-known/acme-challenge/{token}")

    answer = asyncio.run(get("tok_EN-1"))
    assert answer.status_code == 200 and answer.content == b"tok_EN-1.thumbprint"
    assert asyncio.run(get("unknown")).status_code == 404
    assert asyncio.run(get("..%2F..%2Fsecret")).status_code == 404
    challenges.withdraw(directory, "tok_EN-1")
    assert asyncio.run(get("tok_EN-1")).status_code == 404


def test_account_key_is_made_once_and_private(tmp_path):
    files = AcmeFiles.of(tmp_path)
    key = files.load_account_key()
    assert files.load_account_key().private_numbers() == key.private_numbers()
    assert files.account_key.stat().st_mode & 0o777 == 0o600
    assert files.directory.stat().st_mode & 0o777 == 0o700
