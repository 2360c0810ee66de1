"""The server certificate made without a configured one: a local CA and a leaf it issues.

Written from RFC 5280 (§4.2.1.1 AKI, §4.2.1.2 SKI, §4.2.1.3 keyUsage, §4.2.1.6 SAN,
§4.2.1.9 basicConstraints, §4.2.1.10 nameConstraints, §4.2.1.12 extKeyUsage), RFC 5480 §3
(key usages of an EC key) and RFC 6125 (what a client checks), and verified by OpenSSL
through Python's ssl module, with check_hostname, as a client trusting ca.pem would.
"""

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailwright.net.tls import (
    LocalCertificate,
    ServerNames,
    issue_leaf,
    local_certificate,
    server_context,
    server_names,
)

HOST = "mail.example.test"
LISTENERS = ["127.0.0.1", "192.0.2.25", "0.0.0.0", "2001:db8::25"]


def ip(text):
    return ipaddress.ip_address(text)


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(cert, kind):
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture
def made(tmp_path):
    local = local_certificate(tmp_path, HOST, LISTENERS)
    return local, load(local.cert), load(local.ca)


def test_leaf_is_an_end_entity_issued_by_the_local_ca(made):
    local, leaf, ca = made
    assert local.cert.name == "cert.pem" and local.ca.name == "ca.pem"
    leaf.verify_directly_issued_by(ca)
    assert leaf.issuer == ca.subject != leaf.subject
    constraints = ext(leaf, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False      # RFC 5280 §4.2.1.9
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    # RFC 5480 §3: keyEncipherment is RSA key transport, not for an EC key
    assert not (usage.value.key_encipherment or usage.value.key_cert_sign)
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(leaf, x509.SubjectKeyIdentifier).value == \
        x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())


def test_leaf_names_the_host_localhost_and_every_listener_address(made):
    _, leaf, _ = made
    sans = ext(leaf, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOST, "localhost"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ip("127.0.0.1"), ip("192.0.2.25"), ip("2001:db8::25"), ip("::1")}   # not 0.0.0.0
    # the first listener address, for clients that match only DNS names and the CN
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "127.0.0.1"
    validity = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert validity <= datetime.timedelta(days=825, minutes=5)


def test_ca_may_issue_leaves_for_these_names_only(made):
    local, _, ca = made
    constraints = ext(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    names = ext(ca, x509.NameConstraints)
    assert names.critical                                    # RFC 5280 §4.2.1.10: MUST
    permitted = names.value.permitted_subtrees
    assert {g.value for g in permitted if isinstance(g, x509.DNSName)} == {HOST, "localhost"}
    assert {g.value for g in permitted if isinstance(g, x509.IPAddress)} == {
        ipaddress.ip_network(a) for a in ("127.0.0.1", "192.0.2.25", "2001:db8::25", "::1")}
    ca.verify_directly_issued_by(ca)                          # self-signed root
    for key in (local.key, local.ca.with_name("ca-key.pem")):
        assert key.stat().st_mode & 0o077 == 0                # private keys: owner only


def handshake(local, server_hostname: str) -> None:
    """A TLS handshake in memory: OpenSSL verifies the chain, the name constraints and the
    name, as a client given only ca.pem does."""
    client = ssl.create_default_context(cafile=str(local.ca))
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    server = server_context(local.cert, local.key)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for conn, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                conn.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
        if done == 2:
            return
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("name", [HOST, "localhost", "127.0.0.1", "::1", "192.0.2.25",
                                  "2001:db8::25"])
def test_a_client_trusting_the_ca_verifies_every_name(made, name):
    handshake(made[0], name)


@pytest.mark.parametrize("name", ["other.example.test", "192.0.2.26", "example.test"])
def test_other_names_are_refused(made, name):
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(made[0], name)


def test_a_leaf_outside_the_name_constraints_is_refused(made, tmp_path):
    # What a stolen CA key could mint: OpenSSL refuses it although the signature is good.
    local, _, ca = made
    ca_key = serialization.load_pem_private_key(
        local.ca.with_name("ca-key.pem").read_bytes(), None)
    names = ServerNames(dns=("www.bank.example",), ips=(), common_name="www.bank.example")
    cert, key = issue_leaf((ca, ca_key), names, datetime.datetime.now(datetime.UTC))
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (forged / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    fake = LocalCertificate(forged / "cert.pem", forged / "key.pem", local.ca)
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)name constraint|permitted"):
        handshake(fake, "www.bank.example")


def test_made_once_then_kept(tmp_path):
    first = local_certificate(tmp_path, HOST, LISTENERS)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(files) == {"ca.pem", "ca-key.pem", "cert.pem", "key.pem"}
    assert local_certificate(tmp_path, HOST, LISTENERS) == first
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_fewer_listeners_reissue_the_leaf_under_the_same_ca(tmp_path):
    local = local_certificate(tmp_path, HOST, LISTENERS)
    ca, leaf = local.ca.read_bytes(), local.cert.read_bytes()
    local_certificate(tmp_path, HOST, ["127.0.0.1"])
    assert local.ca.read_bytes() == ca                   # clients keep trusting it
    assert local.cert.read_bytes() != leaf
    sans = ext(load(local.cert), x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.IPAddress)) == {ip("127.0.0.1"), ip("::1")}
    handshake(local, "127.0.0.1")


def test_a_name_outside_the_constraints_makes_a_new_ca(tmp_path):
    local = local_certificate(tmp_path, HOST, ["127.0.0.1"])
    old_ca = load(local.ca)
    local_certificate(tmp_path, "mx.example.test", ["127.0.0.1", "198.51.100.7"])
    assert load(local.ca) != old_ca
    load(local.cert).verify_directly_issued_by(load(local.ca))
    handshake(local, "mx.example.test")
    handshake(local, "198.51.100.7")


def test_a_leaf_about_to_expire_is_reissued(tmp_path):
    local = local_certificate(tmp_path, HOST, ["127.0.0.1"])
    ca = (load(local.ca), serialization.load_pem_private_key(
        local.ca.with_name("ca-key.pem").read_bytes(), None))
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=820)
    cert, key = issue_leaf(ca, server_names(HOST, ["127.0.0.1"]), long_ago)
    write(local.cert, local.key, cert, key)
    local_certificate(tmp_path, HOST, ["127.0.0.1"])
    renewed = load(local.cert)
    assert renewed.serial_number != cert.serial_number
    assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > \
        datetime.timedelta(days=800)


def test_a_key_that_does_not_match_is_replaced(tmp_path):
    # a crash between writing key.pem and cert.pem
    local = local_certificate(tmp_path, HOST, ["127.0.0.1"])
    other = ec.generate_private_key(ec.SECP256R1())
    local.key.write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    local_certificate(tmp_path, HOST, ["127.0.0.1"])
    handshake(local, "127.0.0.1")                        # load_cert_chain would refuse a mismatch


def old_self_signed(directory, hostname):
    """What earlier versions made on first start: a self-signed CA:TRUE certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.DNSName(hostname), x509.DNSName("localhost"),
            x509.IPAddress(ip("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(exist_ok=True)
    write(directory / "cert.pem", directory / "key.pem", cert, key)
    return cert


def write(cert_path, key_path, cert, key):
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def test_the_old_self_signed_certificate_is_replaced(tmp_path):
    old = old_self_signed(tmp_path, HOST)
    local = local_certificate(tmp_path, HOST, ["127.0.0.1"])
    leaf = load(local.cert)
    assert leaf != old and local.ca is not None
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    leaf.verify_directly_issued_by(load(local.ca))
    handshake(local, "127.0.0.1")


def foreign_certificates():
    """A self-signed certificate, and a leaf from someone else's CA."""
    ca, ca_key = self_issued(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Their CA")]))
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return [(ca, ca_key), (leaf, key)]


@pytest.mark.parametrize("kind", [0, 1], ids=["self-signed", "their-ca"])
def test_a_certificate_put_there_by_hand_is_left_alone(tmp_path, kind):
    # Only a certificate this code made is replaced; another one is served unchanged,
    # with no CA to point clients at.
    cert, key = foreign_certificates()[kind]
    write(tmp_path / "cert.pem", tmp_path / "key.pem", cert, key)
    before = (tmp_path / "cert.pem").read_bytes()
    local = local_certificate(tmp_path, HOST, ["127.0.0.1"])
    assert local.ca is None and local.cert == tmp_path / "cert.pem"
    assert (tmp_path / "cert.pem").read_bytes() == before
    assert not (tmp_path / "ca.pem").exists()


def self_issued(subject):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def test_server_names():
    names = server_names("Mail.Example.Test", ["0.0.0.0", "::"])
    assert names.dns == ("mail.example.test", "localhost")
    assert names.ips == (ip("127.0.0.1"), ip("::1"))     # wildcards are no name
    assert names.common_name == "127.0.0.1"
    assert server_names(HOST, ["::1", "127.0.0.1"]).common_name == "::1"


def test_server_context_requires_tls_1_2(made):
    ctx = server_context(made[0].cert, made[0].key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
