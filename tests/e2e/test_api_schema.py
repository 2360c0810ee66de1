"""The API against its own OpenAPI document: schemathesis generates requests from
/api/v1/openapi.json (valid and invalid ones) and checks each answer of a live server
against it: never a 5xx, only documented status codes and content types, bodies that
match their schemas, and 401 without credentials. A server of its own, since the
generated requests add and remove domains, accounts and keys at random.

The run is bounded and reproducible: a fixed seed, derandomized Hypothesis and a few
examples per operation (the whole file takes well under a minute on two cores)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from mailwright.api import app as api_app

from .apiserver import PREFIX, ApiServer

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    # No rate limit: the generated requests would otherwise soon be answered 429 only.
    srv = ApiServer(tmp_path_factory.mktemp("schema"), extra="[http]\nrate_limit = 0\n")
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    srv.token = AdminKey.token = srv.create_key("schemathesis", "admin")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def document(fuzzed) -> dict:
    with fuzzed.client() as c:                  # the document asks for no key
        r = c.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


# schemathesis.pytest.from_fixture (a schema loaded once the server runs) fails under
# pytest 9.2 (it sets Function._nodeid, which pytest no longer has). So the operations
# are collected from the document the application builds, and test_live_document checks
# that the running server serves that very document. (The document needs no admin
# service behind the routes.)
DOCUMENT = api_app.build(None, 0).openapi()
CONFIG = SchemathesisConfig.from_dict({
    "seed": 20260101,
    "generation": {"mode": "all", "database": "none"},
    # A request the schema allows may still be refused (422: a password too short;
    # 409: a domain that exists): the API does not promise to accept it.
    "checks": {"positive_data_acceptance": {"enabled": False}},
    "phases": {"stateful": {"enabled": False}},
})
# Revoking a key could revoke the test's own (ids start at 1); test_api.py covers it.
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(
    method="DELETE", path=f"{PREFIX}/keys/{{key_id}}")


@schema.auth(refresh_interval=None)
class AdminKey:
    """The fixture's admin key on every generated request, through schemathesis's auth
    (so it knows which header carries the credentials, and leaves it out on purpose when
    it checks that the API asks for them). Set by the fixture once the key exists."""
    token = ""

    def get(self, case, ctx) -> str:
        return AdminKey.token

    def set(self, case, token: str, ctx) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case, fuzzed):
    response = case.call_and_validate(base_url=fuzzed.url.removesuffix(PREFIX), timeout=30)
    # Requests with the key must get past it, or the run would prove little.
    if (case.headers or {}).get("Authorization") == f"Bearer {AdminKey.token}":
        assert response.status_code != 401, response.text


def test_live_document(document):
    assert document == json.loads(json.dumps(DOCUMENT))


def test_document(document):
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] and document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert [s for s in schemes.values() if s == {**s, "type": "http", "scheme": "bearer"}]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), f"{where} has no summary"
            if path.startswith(PREFIX + "/"):
                assert op.get("security") == [{name: []} for name in schemes], where
            for status in ("401", "422", "429"):
                assert status in op["responses"], f"{where} does not document {status}"
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == error, \
                        f"{where} {status}"
                elif status.startswith("2"):
                    # JSON, or a documented other type (metrics text, a message, an export)
                    assert response["content"] and all(
                        c.get("schema") for c in response["content"].values()), where
    assert set(document["components"]["schemas"]["ErrorBody"]["required"]) == {"error"}
