"""Tracking tokens: what was signed comes back exactly; anything else is None."""

from __future__ import annotations

import base64
import dataclasses
import hmac
import os
import stat

import pytest

from mailwright.delivery.campaigns import keys, tokens
from mailwright.delivery.campaigns.tokens import Token

from ..session_harness import make_config

RING = keys.KeyRing((("2", b"k" * 32), ("1", b"o" * 32)))
CLICK = Token(tokens.CLICK, "18C0A-1", "Bob@Example.org", "example.test", "spring sale",
              "https://shop.example/ü?a=1&b=\n2#x")


def test_round_trip_every_field_exactly():
    text = tokens.encode(RING, CLICK)
    assert text.isascii() and "=" not in text
    assert tokens.decode(RING, text, tokens.CLICK) == CLICK
    opened = dataclasses.replace(CLICK, kind=tokens.OPEN, url="")
    assert tokens.decode(RING, tokens.encode(RING, opened), tokens.OPEN) == opened


def test_a_copys_click_encoder_writes_the_same_tokens():
    click = tokens.click_encoder(RING, CLICK.message_id, CLICK.rcpt, CLICK.domain, CLICK.tag)
    for url in (CLICK.url, "https://x/", ""):
        text = click(url)
        assert text == tokens.encode(RING, dataclasses.replace(CLICK, url=url))
        assert tokens.decode(RING, text, tokens.CLICK) == dataclasses.replace(CLICK, url=url)
    # base64url (RFC 4648 §5) as the standard library writes it
    assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))[16:].startswith(b"c\n2\n")


def test_tampered_other_kind_or_unknown_key_is_none():
    text = tokens.encode(RING, CLICK)
    assert tokens.decode(RING, text, tokens.OPEN) is None
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    for i in (0, 20, len(raw) - 1):
        changed = bytearray(raw)
        changed[i] ^= 1
        forged = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        assert tokens.decode(RING, forged, tokens.CLICK) is None
    assert tokens.decode(RING, text[:-1], tokens.CLICK) is None
    assert tokens.decode(RING, text + "!", tokens.CLICK) is None
    other = keys.KeyRing((("2", b"x" * 32),))
    assert tokens.decode(other, text, tokens.CLICK) is None


def test_rotation_old_keys_still_verify():
    old = keys.KeyRing((("1", b"o" * 32),))
    text = tokens.encode(old, CLICK)
    assert tokens.decode(RING, text, tokens.CLICK) == CLICK     # "1" is still in the ring


def test_key_file_made_once_mode_0600_and_rotated(tmp_path):
    config = dataclasses.replace(make_config(), data_dir=tmp_path)
    ring = keys.load(config)
    path = tmp_path / keys.KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.load(config) == ring
    assert keys.rotate(config) == "2"
    rotated = keys.load(config)
    assert rotated.current == "2" and rotated.keys[1] == ring.keys[0]
    path.write_text("1 short\n")
    with pytest.raises(keys.KeyRingError, match=r"keys:1: expected"):
        keys.load(config)


@pytest.mark.parametrize("secret", [b"k" * 32, bytes(range(64)), b"x" * 100, b"\xff" * 33])
def test_the_mac_is_hmac_sha256(secret):
    """keys.py keeps the hash states after the padded key (RFC 2104 §4): the same MAC
    as the standard library's HMAC, for keys shorter, as long as and longer than a
    block."""
    ring = keys.KeyRing((("1", secret),))
    for payload in (b"", b"o\n1\nM1", bytes(range(256)) * 3):
        assert ring.mac(payload) == hmac.digest(secret, payload, "sha256")[:keys.MAC_SIZE]
        assert ring.mac(payload) == ring.mac(payload, "1")       # states not consumed
    assert ring.mac(b"x", "2") is None
