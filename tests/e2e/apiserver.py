"""A Mailwright server with its HTTP API listening (roles http and https), keys made
through the CLI as an administrator would, and httpx clients that carry them."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from ..conftest import MailServer, free_port

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


def error_of(response: httpx.Response, status: int) -> dict:
    """The body of an error response, checked for the API's one error shape."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    return body["error"]
