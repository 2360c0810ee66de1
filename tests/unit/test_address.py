import pytest

from mailwright.address import AddressError, canonical_domain, parse_mailbox
from mailwright.smtp.params import ParamError, decode_xtext, parse_path_argument


def test_domains_are_canonical():
    assert canonical_domain("Example.TEST") == "example.test"
    assert canonical_domain("bücher.test") == "xn--bcher-kva.test"
    assert canonical_domain("XN--BCHER-KVA.test") == "xn--bcher-kva.test"
    for bad in ("-a.test", "a..test", "", "a_b.test", "x" * 64 + ".test"):
        with pytest.raises(AddressError):
            canonical_domain(bad)


def test_mailboxes():
    a = parse_mailbox("Alice.Smith@Example.test")
    assert a.local_part == "Alice.Smith" and a.key == "alice.smith@example.test"
    q = parse_mailbox('"john doe"@example.test')
    assert q.local_part == "john doe" and str(q) == '"john doe"@example.test'
    assert parse_mailbox("user@[IPv6:::1]").domain == "[IPv6:::1]"
    assert parse_mailbox("jörg@bücher.test").needs_smtputf8
    for bad in ("noat", "a@", "@b.test", "a b@c.test", ".a@b.test", "a..b@c.test",
                "x" * 65 + "@b.test", "a@[300.1.1.1]"):
        with pytest.raises(AddressError):
            parse_mailbox(bad)


def test_path_argument():
    p = parse_path_argument("FROM: <a@b.test> SIZE=10 body=8bitmime", "FROM:", True)
    assert str(p.address) == "a@b.test"
    assert p.params == {"SIZE": "10", "BODY": "8bitmime"}
    assert parse_path_argument("FROM:<>", "FROM:", True).address is None
    with pytest.raises(ParamError):
        parse_path_argument("TO:<>", "TO:", False)
    p = parse_path_argument('TO:<"a>b"@c.test>', "TO:", False)
    assert p.address.local_part == "a>b"
    with pytest.raises(ParamError):
        parse_path_argument("FROM:<a@b.test> SIZE=1 SIZE=2", "FROM:", True)


def test_xtext():
    assert decode_xtext("a+2Bb+3D") == "a+b="
    with pytest.raises(ValueError):
        decode_xtext("a+zz")
