"""A Mailwright server with its HTTP API listening (roles http and https), keys made
through the CLI as an administrator would, and httpx clients that carry them."""

from __future__ import annotations

import imaplib
import ssl
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import PASSWORD, MailServer, free_port

PREFIX = "/api/v1"


class ApiServer(MailServer):
    """MailServer plus an http and an https listener. `top` goes before every table of
    the config (top-level keys such as `workers`); `extra` after them, as MailServer's."""

    def __init__(self, directory: Path, *, extra: str = "", top: str = "",
                 hostname: str = "mail.example.test"):
        http_ports = {role: free_port() for role in ("http", "https")}
        # TOML lets the [[listeners]] array of tables go on after other tables.
        listeners = "".join(f'\n[[listeners]]\nrole = "{role}"\naddress = "127.0.0.1"\n'
                            f"port = {port}\n" for role, port in http_ports.items())
        super().__init__(directory, extra=listeners + extra, hostname=hostname)
        self.ports.update(http_ports)
        if top:
            self.config.write_text(f"{top}\n{self.config.read_text()}")

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}{PREFIX}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['https']}{PREFIX}"

    def create_key(self, name: str, scope: str, *domains: str) -> str:
        """`mailwright apikey create`: the token is the last line of its output."""
        args = [f"--domain={d}" for d in domains]
        out = self.cli("apikey", "create", name, "--scope", scope, *args).stdout
        return out.splitlines()[-1]

    def client(self, token: str | None = None, tls: bool = False) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: ssl.SSLContext | bool = False
        if tls:
            verify = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.tls_url if tls else self.url, headers=headers,
                            verify=verify, timeout=30)


def provision(srv: ApiServer, root: str, domains: tuple[str, ...],
              accounts: tuple[str, ...], key_domain: str) -> None:
    """Over the API itself, as an operator with the admin key `root` would: the domains,
    the accounts (password PASSWORD), and a send and a domain-admin key for key_domain
    (srv.tokens, beside root as "admin")."""
    srv.tokens = {"admin": root}
    with srv.client(root) as admin:
        for domain in domains:
            ok(admin.post("/domains", json={"name": domain}), 201)
        for address in accounts:
            ok(admin.post("/accounts", json={"address": address, "password": PASSWORD}),
               201)
        for scope in ("send", "domain-admin"):
            srv.tokens[scope] = ok(admin.post("/keys", json={
                "name": f"a {scope}", "scope": scope, "domains": [key_domain]}), 201)["token"]


def error_of(response: httpx.Response, status: int) -> dict:
    """The body of an error response, checked for the API's one error shape."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    return body["error"]


def ok(response: httpx.Response, status: int = 200):
    """The JSON body of a response that must have `status`."""
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def imap_messages(srv: ApiServer, user: str, password: str = PASSWORD) -> list[bytes]:
    """Every message of the account's INBOX as IMAP serves it (implicit TLS, the
    server's own CA verified): what a mail client would see."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    with imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=ctx,
                           timeout=30) as m:
        m.login(user, password)
        m.select("INBOX", readonly=True)
        status, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert status == "OK", data
        m.logout()
    # Each message is a (b"n (UID u BODY[] {size}", octets) pair; b")" lines between.
    return [part[1] for part in data if isinstance(part, tuple)]


def scrape(srv: ApiServer, token: str | None = None) -> dict[tuple[str, tuple], float]:
    """GET /metrics, parsed as Prometheus does it: {(sample name, labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"http://127.0.0.1:{srv.ports['http']}/metrics", headers=headers,
                  timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(v for (n, have), v in samples.items()
               if n == name and set(labels.items()) <= set(have))

