"""api/jsonbody.py: unpaired surrogates found wherever they hide in a decoded body, and
every route of the API that takes a body decoding it that way."""

from __future__ import annotations

import json

from fastapi.routing import APIRoute

from mailwright.api.app import ROUTERS
from mailwright.api.jsonbody import JsonRoute, unpaired_surrogate
from mailwright.api.routes import metrics


def decoded(text: str):
    return json.loads(text)


def test_unpaired_surrogates_are_found_with_their_place():
    assert unpaired_surrogate(decoded('{"text": "a\\ud800b"}')) == "body.text"
    assert unpaired_surrogate(decoded('{"to": ["ok", "\\udc00"]}')) == "body.to[1]"
    assert unpaired_surrogate(decoded('{"h": {"X-A": "\\ud800"}}')) == "body.h.X-A"
    assert unpaired_surrogate(decoded('{"h": {"\\ud800": "v"}}')) == "a key of body.h"
    assert unpaired_surrogate(decoded('"\\udfff"')) == "body"
    # The first in document order.
    assert unpaired_surrogate(decoded('{"a": "\\ud800", "b": ["\\ud800"]}')) == "body.a"


def test_characters_and_pairs_pass():
    # A pair is one character (U+1F600); an escaped backslash before "ud800" is text.
    for text in ('{"t": "\\ud83d\\ude00 grüße"}', '{"t": "\\\\ud800"}', '[1, null, true]',
                 '{"t": "' + "A" * 100_000 + '"}'):
        assert unpaired_surrogate(decoded(text)) is None, text


def test_deep_nesting_does_not_exhaust_the_stack():
    depth = 900                              # about as deep as json.loads goes
    value = decoded("[" * depth + '"\\ud800"' + "]" * depth)
    assert unpaired_surrogate(value) == "body" + "[0]" * depth


def test_every_route_with_a_body_decodes_it_strictly():
    with_body = [r for module in (*ROUTERS, metrics) for r in module.router.routes
                 if isinstance(r, APIRoute) and r.body_field]
    assert len(with_body) >= 8                 # messages, domains, accounts, aliases, ...
    assert [r.path for r in with_body if not isinstance(r, JsonRoute)] == []
