"""TOML configuration → typed, validated settings.

Every error names the file, the key (as a dotted path) and, where the key is
present in the file, its line; unknown keys are errors, so a typo never
silently falls back to a default and the server never starts half-configured.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .address import AddressError, canonical_domain, parse_mailbox

ROLES = ("mx", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http",
         "https")
# RFC 8314 §3 (and HTTPS, RFC 9110 §4.2.2): these speak TLS from the first byte.
IMPLICIT_TLS_ROLES = ("submissions", "pop3s", "imaps", "https")
ENV_VAR = "MAILWRIGHT_CONFIG"


class ConfigError(Exception):
    """A configuration problem, already phrased for the admin."""


@dataclass(frozen=True)
class Listener:
    role: str
    address: str
    port: int

    @property
    def implicit_tls(self) -> bool:
        # RFC 8314 §3: ports 465 and 995 speak TLS from the first byte.
        return self.role in IMPLICIT_TLS_ROLES

    @property
    def protocol(self) -> str:
        for protocol in ("pop3", "imap", "http"):
            if self.role.startswith(protocol):
                return protocol
        return "smtp"


@dataclass(frozen=True)
class CertificatePair:
    cert: str        # PEM certificate chain (absolute path)
    key: str         # its private key (absolute path)


@dataclass(frozen=True)
class TLSSettings:
    cert: str = ""   # PEM certificate chain; empty: issued by our own CA in data_dir/tls
    key: str = ""
    # More certificates, chosen by the name a client asks for (SNI, RFC 6066 §3) among
    # their subjectAltName DNS names; cert/key above (or the first of these) is the
    # default for clients that name nothing or something no certificate covers.
    certificates: tuple[CertificatePair, ...] = ()

    def pairs(self) -> tuple[CertificatePair, ...]:
        """Every configured certificate, the default first; () for the local CA's."""
        first = (CertificatePair(self.cert, self.key),) if self.cert else ()
        return first + self.certificates


@dataclass(frozen=True)
class Limits:
    # RFC 5321 §4.5.3.1.4: 512 octets for a command line; MAIL/RCPT parameters
    # (SIZE, DSN ENVID/ORCPT, AUTH=) and SASL responses may lengthen it (RFC 1870,
    # RFC 3461 §4, RFC 4954 §4), which the session allows for per command.
    command_line: int = 512
    # Longest text line in a message, in octets with its CRLF; 0: no limit. RFC 5321
    # §4.5.3.1.6 sets 1000 but asks for no limit where possible, and long lines are
    # common in real mail (generated HTML): by default they are accepted and
    # delivered as they came. The SMTP framer streams message text, so a line of
    # any length costs no more memory than other text (max_message_size bounds it).
    # 1000 refuses what exceeds the RFC (554 5.6.0), the dot doubled for
    # transparency not counted. (Relayed copies are re-encoded: mx/downgrade.py.)
    text_line: int = 0
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_messages_per_connection: int = 100
    max_connections: int = 2000
    max_connections_per_ip: int = 50
    max_errors: int = 10
    # RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command.
    command_timeout: float = 300.0
    # RFC 5321 §4.5.3.2.5/6: 3 minutes per data block, 10 minutes for the terminator.
    data_timeout: float = 600.0
    tls_handshake_timeout: float = 30.0


@dataclass(frozen=True)
class AuthSettings:
    max_failures: int = 5            # failures from one IP before a lockout
    failure_window: float = 900.0    # seconds over which failures are counted
    lockout: float = 900.0           # seconds an IP is locked out
    failure_delay: float = 1.0       # first delay after a failure; doubles, capped at 8x
    # argon2id for new and changed passwords (RFC 9106; OWASP's Password Storage Cheat
    # Sheet minimum: 19 MiB, 2 passes, 1 lane). Hashes carry their parameters, so
    # raising these rehashes each account at its next password login.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # Verified logins are remembered (as a keyed hash of the password, bound to the
    # stored hash: a password change or removal invalidates at once), like Dovecot's
    # auth_cache; 0 entries turns the cache off.
    cache_size: int = 10000
    cache_ttl: float = 3600.0        # seconds a verified password is remembered
    cache_negative_ttl: float = 60.0 # seconds a wrong password is remembered as wrong


@dataclass(frozen=True)
class SubmissionSettings:
    # An authenticated user may use as MAIL FROM only addresses they own or that
    # are aliases pointing to them (553 5.7.1 otherwise).
    enforce_sender: bool = True


@dataclass(frozen=True)
class Pop3Settings:
    # RFC 2595 §2.1 / RFC 8314: USER/PASS and AUTH only under TLS unless allowed here.
    allow_plaintext_auth: bool = False
    # RFC 2449 §6.5 LOGIN-DELAY: minimum seconds between logins of one user (0: none).
    login_delay: int = 0
    # How often the EXPIRE policy (per domain, `mailwright domain set`) is enforced.
    expire_interval: float = 3600.0


@dataclass(frozen=True)
class ImapSettings:
    # RFC 9051 §11.1 / RFC 8314: LOGIN and AUTHENTICATE only under TLS unless allowed here.
    allow_plaintext_auth: bool = False


@dataclass(frozen=True)
class QueueSettings:
    port: int = 25                   # the remote SMTP port (tests point it elsewhere)
    source_address: str = ""         # bind outgoing connections to this IP ("": any)
    interval: float = 30.0           # seconds between queue scans when nothing wakes it
    concurrency: int = 20            # destination domains in delivery at once
    per_destination: int = 20        # connections to one destination at once
    first_retry: float = 300.0       # seconds after the first temporary failure; doubles
    max_retry: float = 14400.0       # cap on the retry interval
    max_age: float = 432000.0        # give up (bounce) after this long: 5 days
    delay_warning: float = 14400.0   # tell the sender mail is delayed after this (0: never)
    timeout: float = 300.0           # per SMTP command (RFC 5321 §4.5.3.2 allows more)
    lease: float = 3600.0            # a claim's hold on a recipient while it is sent
    dane: bool = True                # honour DNSSEC-validated TLSA records (RFC 7672)
    mta_sts: bool = True             # honour receivers' MTA-STS policies (RFC 8461)
    mta_sts_port: int = 443          # HTTPS port of policy hosts (tests point it elsewhere)
    ca_bundle: str = ""              # CA certificates for MTA-STS ("": the system's)


@dataclass(frozen=True)
class RelayhostSettings:
    # Send all outbound mail through this server instead of MX hosts (networks
    # whose port 25 is blocked): submission with STARTTLS on 587, or 465.
    host: str = ""                   # "": deliver by MX
    port: int = 587
    tls: str = "starttls"            # starttls (required) | implicit | none (trusted LAN)
    username: str = ""
    password_file: str = ""          # file holding the password (not the config)
    verify_certificate: bool = True


@dataclass(frozen=True)
class TransportSettings:
    # Mail for `domain` goes to host:port instead of its MX hosts (Postfix's
    # transport_maps): a partner's gateway, an internal server, a test sink.
    domain: str = ""
    host: str = ""
    port: int = 25
    tls: str = "opportunistic"       # opportunistic | starttls (required) | implicit | none


@dataclass(frozen=True)
class DNSSettings:
    # Empty: the system's resolvers (/etc/resolv.conf). Tests point this at a
    # loopback server; DANE needs a validating resolver here (RFC 7672 §2.1).
    nameservers: tuple[str, ...] = ()
    port: int = 53
    timeout: float = 5.0


CHECK_ACTIONS = ("off", "tag", "quarantine", "reject")


@dataclass(frozen=True)
class CheckActions:
    # What a failed check does to a message for a recipient domain: off (the check
    # is not run), tag (only the Authentication-Results header says it), quarantine
    # (delivered to Junk), reject (550 5.7.x naming the check).
    spf: str = "tag"                 # SPF fail (RFC 7208 §8.4): alone it only tags
    dkim: str = "tag"                # signatures present, none valid
    dmarc_reject: str = "reject"     # DMARC fail where the domain says p=reject
    dmarc_quarantine: str = "quarantine"   # ... and p=quarantine
    arc: str = "tag"                 # an ARC chain that fails validation
    iprev: str = "tag"               # no forward-confirmed reverse DNS
    helo: str = "tag"                # HELO not a FQDN, not resolving, ours, or not the client
    sender_verify: str = "off"       # the sender's own MX refuses the MAIL FROM address


@dataclass(frozen=True)
class ChecksSettings:
    authserv_id: str = ""            # Authentication-Results id ("": the hostname)
    sender_verify_positive_ttl: float = 86400.0   # cache a verified sender this long
    sender_verify_negative_ttl: float = 3600.0    # and a refused one this long
    sender_verify_rate: int = 10     # callouts per sender domain per minute
    actions: CheckActions = field(default_factory=CheckActions)
    domains: tuple[tuple[str, CheckActions], ...] = ()   # per recipient domain

    def for_domain(self, domain: str) -> CheckActions:
        for name, actions in self.domains:
            if name == domain:
                return actions
        return self.actions


@dataclass(frozen=True)
class DemoSettings:
    domain: str = ""
    user: str = ""


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    # text: lines on stderr; json: one JSON object per line on stdout (journald, log
    # shippers).
    format: str = "text"


@dataclass(frozen=True)
class ServerSettings:
    # Run as this user (and group; "": the user's primary group) once every listener is
    # bound: `mailwright serve` started as root binds ports below 1024, then drops root
    # for good (service/privileges.py). "": stay who we are (a warning when that is root).
    user: str = ""
    group: str = ""
    # SIGTERM: SMTP transactions in flight get this long to finish before their clients
    # are told 421 4.3.2; other sessions end after the command in hand.
    shutdown_grace: float = 10.0


@dataclass(frozen=True)
class HttpSettings:
    # The HTTP API (roles http / https): requests per minute one API key may make
    # (a token bucket of this size, refilled continuously); 0: no limit.
    rate_limit: int = 600
    # /metrics (Prometheus): "loopback" serves scrapers on 127.0.0.0/8 and ::1 without a
    # key and asks others for an admin key; "key" always asks for one.
    metrics_auth: str = "loopback"
    # The web admin (/admin): a browser session ends after this many seconds unused,
    # and this many seconds after login whatever happens.
    admin_idle_timeout: float = 1800.0
    admin_session_lifetime: float = 43200.0


# events.retention_days / a domain's override: this many days, or forever.
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class EventSettings:
    # Event rows older than this many days are deleted by the background pruner;
    # 0 or "unlimited": kept forever. [events.domains."example.com"] overrides it
    # for the events of one domain.
    retention_days: int | None = 30             # None: unlimited
    # Delivered outbound messages (their text) are kept this long after the last
    # recipient's delivery, for the API to show; 0: removed at delivery.
    message_retention_days: int = 7
    prune_interval: float = 600.0               # seconds between pruner runs
    prune_batch: int = 1000                     # rows per delete (short write locks)
    domains: tuple[tuple[str, int | None], ...] = ()   # (domain, retention_days)

    def retention_for(self, domain: str) -> int | None:
        for name, days in self.domains:
            if name == domain:
                return days
        return self.retention_days


@dataclass(frozen=True)
class WebhookSettings:
    timeout: float = 10.0            # seconds per delivery attempt (connect + response)
    first_retry: float = 10.0        # seconds after the first failure; doubles
    max_retry: float = 3600.0        # cap on the retry interval
    max_age: float = 86400.0         # an event not delivered after this long is dropped
    disable_after: int = 50          # consecutive failures before an endpoint is disabled
    concurrency: int = 8             # deliveries in flight at once


@dataclass(frozen=True)
class CampaignSettings:
    # --- the suppression list (delivery/suppression.py) ---
    # A hard bounce (the recipient's server refused the address for good: RFC 3463
    # X.1.x of the recipient, X.2.1) adds it to the sending domain's list.
    suppress_on_bounce: bool = False
    # A complaint (an ARF report, RFC 5965, arriving at feedback_address) adds the
    # complaining recipient to the sending domain's list.
    suppress_on_complaint: bool = True
    feedback_address: str = ""       # where feedback loops send reports; "": none

    # --- open and click tracking, one-click unsubscribe (delivery/campaigns/) ---
    # Where recipients' clicks and pixel loads go: https://<tracking_host>/t/..., served
    # by the https (or http behind a TLS proxy) listener; "" is the server's hostname.
    tracking_host: str = ""
    # Domains whose authenticated senders' mail is always tracked (canonical names).
    tracked_domains: tuple[str, ...] = ()
    # Token keys ("id:base64url secret", the first signs, all verify); () for the key
    # ring in data_dir/campaigns/keys, made on first use (mode 0600).
    keys: tuple[str, ...] = ()
    # What an unsubscribe stops: "domain" (all mail of the sending domain to that
    # address) or "campaign" (only that campaign's; unnamed campaign mail: the domain's).
    unsubscribe_scope: str = "domain"
    # The local part of the mailto: unsubscribe address in List-Unsubscribe (RFC 2369
    # §3.2), <mailto:LOCAL@SENDING-DOMAIN?subject=TOKEN>: reserved in every local domain
    # (delivery/campaigns/mailto.py consumes mail to it); "": https one-click only.
    unsubscribe_local_part: str = "unsubscribe"

    def host(self, hostname: str) -> str:
        return self.tracking_host or hostname


# The store backends store/__init__.py can open.
STORE_BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class StoreSettings:
    backend: str = "sqlite"       # sqlite: data_dir/mail.db + data_dir/blobs, one node
    # postgresql: several nodes on one database (store/postgresql/)
    dsn: str = ""                 # libpq connection URI or key=value string
    password_file: str = ""       # the database password, kept out of the config
    pool_size: int = 10           # connections per worker process
    cache_mib: int = 64           # sqlite: page cache per connection (store/sqlite/db.py)
    password: str = field(default="", repr=False)   # read from password_file

    def conninfo(self) -> str:
        """The DSN with the password file's password (libpq's own syntax)."""
        from psycopg.conninfo import make_conninfo
        return make_conninfo(self.dsn, password=self.password) if self.password else self.dsn


# Let's Encrypt's production directory (RFC 8555 §7.1.1).
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class AcmeSettings:
    # Certificates from an ACME CA (RFC 8555) for hostname and `names`, HTTP-01 answered
    # on the `http` listener (which the CA reaches on port 80); certificates/ does it.
    enabled: bool = False
    directory: str = LETSENCRYPT
    email: str = ""                    # the account's contact (expiry notices); optional
    names: tuple[str, ...] = ()        # config: more names; parsed: hostname, then those
    ca_file: str = ""                  # trust for the directory's TLS (a test CA); "": system
    check_interval: float = 3600.0     # seconds between renewal checks


@dataclass(frozen=True)
class Config:
    path: str
    hostname: str
    data_dir: Path
    listeners: tuple[Listener, ...]
    workers: int = 1
    server: ServerSettings = field(default_factory=ServerSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    limits: Limits = field(default_factory=Limits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    submission: SubmissionSettings = field(default_factory=SubmissionSettings)
    pop3: Pop3Settings = field(default_factory=Pop3Settings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    dns: DNSSettings = field(default_factory=DNSSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    relayhost: RelayhostSettings = field(default_factory=RelayhostSettings)
    transports: tuple[TransportSettings, ...] = ()
    relayhost_password: str = ""
    checks: ChecksSettings = field(default_factory=ChecksSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    log: LogSettings = field(default_factory=LogSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    events: EventSettings = field(default_factory=EventSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    campaigns: CampaignSettings = field(default_factory=CampaignSettings)
    acme: AcmeSettings = field(default_factory=AcmeSettings)


_HOST_PORT = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class _Locator:
    """Finds the line of a dotted key in the TOML text, for error messages.

    tomllib gives values but no positions; this scan understands the table
    headers and `key =` lines of an ordinary config file, which is all an
    error message needs."""

    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        table = ""
        counts: dict[str, int] = {}
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if m := re.match(r"^\[\[\s*([\w.-]+)\s*\]\]", line):
                name = m.group(1)
                idx = counts.get(name, 0)
                counts[name] = idx + 1
                table = f"{name}[{idx}]"
                self.lines.setdefault(table, n)
            elif m := re.match(r'^\[\s*([\w."-]+)\s*\]', line):
                table = m.group(1).replace('"', "")       # [checks.domains."example.com"]
                self.lines.setdefault(table, n)
            elif m := re.match(r"^([\w-]+)\s*=", line):
                key = f"{table}.{m.group(1)}" if table else m.group(1)
                self.lines.setdefault(key, n)

    def line(self, key: str) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None


class _Reader:
    def __init__(self, path: str, text: str):
        self.path = path
        self.locator = _Locator(text)

    def error(self, key: str, message: str) -> ConfigError:
        line = self.locator.line(key)
        where = f"{self.path}:{line}" if line else self.path
        return ConfigError(f"{where}: {key}: {message}")

    def section(self, data: dict, key: str, cls: type) -> Any:
        """Build a flat dataclass from a TOML table, checking names and types."""
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, "expected a table")
        known = {f.name: f for f in fields(cls)}
        for name in value:
            if name not in known:
                raise self.error(f"{key}.{name}",
                                 f"unknown key (known: {', '.join(sorted(known))})")
        kwargs = {}
        defaults = cls()
        for name in known:
            if name not in value:
                continue
            v = value[name]
            expected = type(getattr(defaults, name))
            if expected is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if type(v) is not expected:
                raise self.error(f"{key}.{name}",
                                 f"expected {expected.__name__}, got {type(v).__name__} {v!r}")
            if expected in (int, float) and v < 0:
                raise self.error(f"{key}.{name}", f"must not be negative, got {v}")
            kwargs[name] = v
        return cls(**kwargs)


def _auth_settings(r: _Reader, data: dict) -> AuthSettings:
    auth = r.section(data, "auth", AuthSettings)
    # RFC 9106 §3.1: at least one pass, one lane, and 8 KiB of memory per lane.
    for name in ("argon2_time_cost", "argon2_parallelism"):
        if getattr(auth, name) < 1:
            raise r.error(f"auth.{name}", f"must be at least 1, got {getattr(auth, name)}")
    if auth.argon2_memory_kib < 8 * auth.argon2_parallelism:
        raise r.error("auth.argon2_memory_kib",
                      f"must be at least 8 KiB per lane ({8 * auth.argon2_parallelism}), "
                      f"got {auth.argon2_memory_kib}")
    return auth


def _dns_settings(r: _Reader, data: dict) -> DNSSettings:
    raw = dict(data.get("dns", {})) if isinstance(data.get("dns"), dict) else data.get("dns")
    servers = raw.pop("nameservers", []) if isinstance(raw, dict) else []
    if not isinstance(servers, list):
        raise r.error("dns.nameservers", "expected a list of IP addresses")
    for ip in servers:
        try:
            ipaddress.ip_address(ip)
        except (ValueError, TypeError):
            raise r.error("dns.nameservers", f"expected IP addresses, got {ip!r}") from None
    rest = r.section({"dns": raw} if raw is not None else {}, "dns", DNSSettings)
    return DNSSettings(tuple(servers), rest.port, rest.timeout)


def _transports(r: _Reader, data: dict) -> tuple[TransportSettings, ...]:
    from .address import AddressError, canonical_domain
    raw = data.get("transports", [])
    if not isinstance(raw, list):
        raise r.error("transports", "expected [[transports]] tables")
    out = []
    for i, item in enumerate(raw):
        key = f"transports[{i}]"
        t = r.section({key: item}, key, TransportSettings)
        try:
            domain = canonical_domain(t.domain)
        except AddressError as e:
            raise r.error(f"{key}.domain", f"expected a domain name: {e}") from None
        if not t.host:
            raise r.error(f"{key}.host", "expected a host name or IP address")
        if t.tls not in ("opportunistic", "starttls", "implicit", "none"):
            raise r.error(f"{key}.tls", "expected opportunistic, starttls, implicit or none")
        out.append(TransportSettings(domain, t.host, t.port, t.tls))
    return tuple(out)


def _checks(r: _Reader, data: dict) -> ChecksSettings:
    """[checks] holds the settings and the default actions; [checks.domains."D"]
    overrides actions for mail to one local domain."""
    from .address import AddressError, canonical_domain
    raw = data.get("checks", {})
    if not isinstance(raw, dict):
        raise r.error("checks", "expected a table")
    action_names = {f.name for f in fields(CheckActions)}
    flat = {k: v for k, v in raw.items() if k != "domains" and k not in action_names}
    settings = r.section({"checks": flat}, "checks", ChecksSettings)

    def actions(key: str, table: dict, base: CheckActions) -> CheckActions:
        for name, value in table.items():
            if name not in action_names:
                raise r.error(f"{key}.{name}", "unknown key (known: "
                              f"{', '.join(sorted(action_names))})")
            if value not in CHECK_ACTIONS:
                raise r.error(f"{key}.{name}",
                              f"expected one of {', '.join(CHECK_ACTIONS)}, got {value!r}")
        return CheckActions(**{n: table.get(n, getattr(base, n)) for n in action_names})

    defaults = actions("checks", {k: v for k, v in raw.items() if k in action_names},
                       CheckActions())
    domains = raw.get("domains", {})
    if not isinstance(domains, dict):
        raise r.error("checks.domains", 'expected tables like [checks.domains."example.com"]')
    per_domain = []
    for name, table in domains.items():
        key = f"checks.domains.{name}"
        if not isinstance(table, dict):
            raise r.error(key, "expected a table of actions")
        try:
            domain = canonical_domain(name)
        except AddressError as e:
            raise r.error(key, f"expected a domain name: {e}") from None
        per_domain.append((domain, actions(key, table, defaults)))
    return ChecksSettings(settings.authserv_id, settings.sender_verify_positive_ttl,
                          settings.sender_verify_negative_ttl, settings.sender_verify_rate,
                          defaults, tuple(per_domain))


def _tls_settings(r: _Reader, data: dict, base: Path) -> TLSSettings:
    """[tls] cert/key and [[tls.certificates]] pairs, as absolute paths of files that
    exist (whether they hold a matching certificate and key net/tls.py checks)."""
    raw = data.get("tls", {})
    if not isinstance(raw, dict):
        raise r.error("tls", "expected a table")
    listed = raw.get("certificates", [])
    if not isinstance(listed, list):
        raise r.error("tls.certificates", "expected [[tls.certificates]] tables")
    tls = r.section({"tls": {k: v for k, v in raw.items() if k != "certificates"}}, "tls",
                    TLSSettings)
    pairs = [(tls.cert, tls.key, "tls")]
    for i, item in enumerate(listed):
        key = f"tls.certificates[{i}]"
        if not isinstance(item, dict) or set(item) != {"cert", "key"} \
                or not all(isinstance(v, str) and v for v in item.values()):
            raise r.error(key, "expected a table with cert and key (file paths)")
        pairs.append((item["cert"], item["key"], key))
    resolved = []
    for cert, key_file, where in pairs:
        if bool(cert) != bool(key_file):
            raise r.error(where, "set both cert and key, or neither "
                          "(a certificate from the server's own CA)")
        if not cert:
            continue
        paths = tuple(str((base / p).resolve()) for p in (cert, key_file))
        for name, p in zip(("cert", "key"), paths, strict=True):
            if not Path(p).is_file():
                raise r.error(f"{where}.{name}", f"file not found: {p}")
        resolved.append(CertificatePair(*paths))
    if not resolved:
        return TLSSettings()
    # The default (cert/key, else the first listed) is cert/key from here on.
    return TLSSettings(resolved[0].cert, resolved[0].key, tuple(resolved[1:]))


def _retention(r: _Reader, key: str, value: Any) -> int | None:
    """A retention in days: a whole number, with 0 or "unlimited" for forever."""
    if value == UNLIMITED or value == 0:
        return None
    if type(value) is not int or value < 0:
        raise r.error(key, f'expected a number of days or "{UNLIMITED}", got {value!r}')
    return value


def _events(r: _Reader, data: dict) -> EventSettings:
    """[events] holds the defaults; [events.domains."D"] retention_days overrides the
    retention of one domain's events."""
    from .address import AddressError, canonical_domain
    raw = data.get("events", {})
    if not isinstance(raw, dict):
        raise r.error("events", "expected a table")
    flat = {k: v for k, v in raw.items() if k not in ("domains", "retention_days")}
    settings = r.section({"events": flat}, "events", EventSettings)
    if settings.prune_batch < 1:
        raise r.error("events.prune_batch", "must be at least 1")
    if settings.prune_interval <= 0:
        raise r.error("events.prune_interval", "must be more than 0 seconds")
    default = _retention(r, "events.retention_days", raw.get("retention_days", 30))
    domains = raw.get("domains", {})
    if not isinstance(domains, dict):
        raise r.error("events.domains", 'expected tables like [events.domains."example.com"]')
    per_domain = []
    for name, table in domains.items():
        key = f"events.domains.{name}"
        if not isinstance(table, dict) or set(table) - {"retention_days"}:
            raise r.error(key, "expected a table with retention_days")
        try:
            domain = canonical_domain(name)
        except AddressError as e:
            raise r.error(key, f"expected a domain name: {e}") from None
        per_domain.append((domain, _retention(r, f"{key}.retention_days",
                                              table.get("retention_days", 30))))
    return EventSettings(default, settings.message_retention_days, settings.prune_interval,
                         settings.prune_batch, tuple(per_domain))


_KEY_ID = re.compile(r"[A-Za-z0-9]{1,8}")
# A dot-atom (RFC 5322 §3.2.3) of the atext that needs no percent-encoding in a mailto:
# URI (RFC 6068 §2), at most 64 octets (RFC 5321 §4.5.3.1.1).
_LOCAL_PART = re.compile(r"(?=.{1,64}$)[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")


def _campaigns(r: _Reader, data: dict) -> CampaignSettings:
    value = data.get("campaigns", {})
    if not isinstance(value, dict):
        raise r.error("campaigns", "expected a table")
    listed = ("tracked_domains", "keys")
    settings = r.section({"campaigns": {k: v for k, v in value.items() if k not in listed}},
                         "campaigns", CampaignSettings)
    if settings.unsubscribe_scope not in ("domain", "campaign"):
        raise r.error("campaigns.unsubscribe_scope", f"expected domain or campaign, got "
                      f"{settings.unsubscribe_scope!r}")
    local_part = settings.unsubscribe_local_part.lower()
    if local_part and not _LOCAL_PART.fullmatch(local_part):
        raise r.error("campaigns.unsubscribe_local_part", f"expected a local part of "
                      f"letters, digits, _ + - and inner dots, at most 64 octets, or \"\", got "
                      f"{settings.unsubscribe_local_part!r}")
    host = settings.tracking_host
    if host and not _HOST_PORT.fullmatch(host):
        raise r.error("campaigns.tracking_host",
                      f"expected a host name, optionally with :port, got {host!r}")
    lists = {}
    for name in listed:
        items = value.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise r.error(f"campaigns.{name}", "expected a list of strings")
        lists[name] = items
    domains = []
    for d in lists["tracked_domains"]:
        try:
            domains.append(canonical_domain(d))
        except AddressError as e:
            raise r.error("campaigns.tracked_domains", f"{d!r}: {e}") from None
    seen = set()
    for key in lists["keys"]:
        kid, _, secret = key.partition(":")
        if not _KEY_ID.fullmatch(kid) or kid in seen:
            raise r.error("campaigns.keys", f"each key is \"ID:SECRET\" with a unique ID of "
                          f"1-8 letters or digits, got {kid!r}")
        seen.add(kid)
        try:
            raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < 32:
            raise r.error("campaigns.keys", f"key {kid}: the secret must be at least 32 "
                          f"octets in base64url (RFC 2104 §3: not shorter than the hash)")
    return replace(settings, tracking_host=host.lower(), tracked_domains=tuple(domains),
                   keys=tuple(lists["keys"]), unsubscribe_local_part=local_part)
def _acme(r: _Reader, data: dict, base: Path, hostname: str,
          listeners: list[Listener]) -> AcmeSettings:
    raw = data.get("acme", {})
    raw = dict(raw) if isinstance(raw, dict) else raw
    names = raw.pop("names", []) if isinstance(raw, dict) else []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise r.error("acme.names", "expected a list of host names")
    for name in names:
        if not _HOSTNAME.match(name) or "." not in name:
            raise r.error("acme.names", f"expected fully qualified host names, got {name!r}")
    acme = r.section({"acme": raw}, "acme", AcmeSettings)
    if not acme.directory.startswith("https://"):
        # RFC 8555 §6.1: ACME runs over HTTPS only.
        raise r.error("acme.directory", f"expected an https:// URL, got {acme.directory!r}")
    if acme.email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", acme.email):
        raise r.error("acme.email", f"expected an email address, got {acme.email!r}")
    if acme.check_interval <= 0:
        raise r.error("acme.check_interval", "must be more than 0 seconds")
    ca_file = str((base / acme.ca_file).resolve()) if acme.ca_file else ""
    if ca_file and not Path(ca_file).is_file():
        raise r.error("acme.ca_file", f"file not found: {ca_file}")
    if acme.enabled and not any(listener.role == "http" for listener in listeners):
        # HTTP-01 (RFC 8555 §8.3) is answered there; the CA connects to port 80.
        raise r.error("acme.enabled", "ACME needs an http listener (port 80) to answer "
                      "the CA's HTTP-01 challenges")
    all_names = tuple(dict.fromkeys([hostname, *(n.lower() for n in names)]))
    return AcmeSettings(acme.enabled, acme.directory, acme.email, all_names, ca_file,
                        acme.check_interval)


def config_path(explicit: str | None) -> str:
    path = explicit or os.environ.get(ENV_VAR)
    if not path:
        raise ConfigError(f"no config file: pass --config FILE or set {ENV_VAR}")
    return path


def load(path: str) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8") from None
    return parse(text, path)


def parse(text: str, path: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    r = _Reader(path, text)
    top_level = {"hostname", "data_dir", "listeners", "workers", "server", "tls", "limits", "auth",
                 "submission", "pop3", "imap", "dns", "queue", "relayhost", "transports", "checks",
                 "demo", "log", "store", "http", "events", "webhooks", "campaigns", "acme"}
    for key in data:
        if key not in top_level:
            raise r.error(key, f"unknown key (known: {', '.join(sorted(top_level))})")

    hostname = data.get("hostname")
    if not isinstance(hostname, str) or not _HOSTNAME.match(hostname) or "." not in hostname:
        raise r.error("hostname", f"expected a fully qualified host name, got {hostname!r}")
    data_dir = data.get("data_dir")
    if not isinstance(data_dir, str) or not data_dir:
        raise r.error("data_dir", "expected a directory path (string)")
    base = Path(path).resolve().parent if path != "<config>" else Path.cwd()
    data_path = (base / data_dir).resolve()

    raw_listeners = data.get("listeners")
    if not isinstance(raw_listeners, list) or not raw_listeners:
        raise r.error("listeners", "expected at least one [[listeners]] table")
    listeners = []
    seen = set()
    for i, item in enumerate(raw_listeners):
        key = f"listeners[{i}]"
        if not isinstance(item, dict):
            raise r.error(key, "expected a table")
        for name in item:
            if name not in ("role", "address", "port"):
                raise r.error(f"{key}.{name}", "unknown key (known: address, port, role)")
        role = item.get("role")
        if role not in ROLES:
            raise r.error(f"{key}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        address = item.get("address", "127.0.0.1")
        try:
            ipaddress.ip_address(address)
        except (ValueError, TypeError):
            raise r.error(f"{key}.address", f"expected an IP address, got {address!r}") from None
        port = item.get("port")
        if type(port) is not int or not 0 < port < 65536:
            raise r.error(f"{key}.port", f"expected a port number 1-65535, got {port!r}")
        if (address, port) in seen:
            raise r.error(f"{key}.port", f"{address}:{port} is already used by another listener")
        seen.add((address, port))
        listeners.append(Listener(role, address, port))

    workers = data.get("workers", 1)
    if type(workers) is not int or not 1 <= workers <= 256:
        raise r.error("workers", f"expected a number of processes 1-256, got {workers!r}")
    tls = _tls_settings(r, data, base)
    server = r.section(data, "server", ServerSettings)

    limits = r.section(data, "limits", Limits)
    if limits.command_line < 512:
        raise r.error("limits.command_line", "must be at least 512 (RFC 5321 §4.5.3.1.4)")
    if limits.text_line and limits.text_line < 1000:
        raise r.error("limits.text_line",
                      "must be 0 (no limit) or at least 1000 (RFC 5321 §4.5.3.1.6)")
    for name in ("max_message_size", "max_recipients", "max_messages_per_connection",
                 "max_connections", "max_connections_per_ip", "max_errors"):
        if getattr(limits, name) < 1:
            raise r.error(f"limits.{name}", "must be at least 1")
    relayhost = r.section(data, "relayhost", RelayhostSettings)
    if relayhost.tls not in ("starttls", "implicit", "none"):
        raise r.error("relayhost.tls",
                      f"expected starttls, implicit or none, got {relayhost.tls!r}")
    if relayhost.tls == "none" and relayhost.username:
        raise r.error("relayhost.username", "credentials are only ever sent over TLS; "
                      "use tls = \"starttls\" or \"implicit\"")
    relay_password = ""
    if relayhost.password_file:
        secret = base / relayhost.password_file
        try:
            relay_password = secret.read_text().strip()
        except OSError as e:
            raise r.error("relayhost.password_file", f"cannot read {secret}: {e.strerror}") \
                from None
    if relayhost.username and not relay_password:
        raise r.error("relayhost.username", "set password_file too")
    transports = _transports(r, data)
    log = r.section(data, "log", LogSettings)
    store = r.section(data, "store", StoreSettings)
    if store.backend not in STORE_BACKENDS:
        raise r.error("store.backend",
                      f"expected one of {', '.join(STORE_BACKENDS)}, got {store.backend!r}")
    if store.cache_mib < 1:
        raise r.error("store.cache_mib", f"expected at least 1 (MiB), got {store.cache_mib}")
    if store.backend == "postgresql":
        if not store.dsn:
            raise r.error("store.dsn", "set the PostgreSQL connection string "
                          "(e.g. \"postgresql://mailwright@db.example.net/mailwright\")")
        if store.pool_size < 1:
            raise r.error("store.pool_size", f"expected at least 1, got {store.pool_size}")
        if store.password_file:
            secret = base / store.password_file
            try:
                store = replace(store, password=secret.read_text().strip())
            except OSError as e:
                raise r.error("store.password_file",
                              f"cannot read {secret}: {e.strerror}") from None
    http = r.section(data, "http", HttpSettings)
    if http.metrics_auth not in ("loopback", "key"):
        raise r.error("http.metrics_auth",
                      f"expected loopback or key, got {http.metrics_auth!r}")
    webhooks = r.section(data, "webhooks", WebhookSettings)
    if webhooks.concurrency < 1 or webhooks.disable_after < 1:
        raise r.error("webhooks", "concurrency and disable_after must be at least 1")
    if min(webhooks.timeout, webhooks.first_retry, webhooks.max_retry, webhooks.max_age) <= 0:
        raise r.error("webhooks", "timeout, first_retry, max_retry and max_age must be "
                                  "more than 0 seconds")
    campaigns = _campaigns(r, data)
    if campaigns.feedback_address:
        try:
            feedback = parse_mailbox(campaigns.feedback_address)
        except AddressError as e:
            raise r.error("campaigns.feedback_address", f"expected a mailbox address: {e}") \
                from None
        campaigns = replace(campaigns, feedback_address=str(feedback))
    events = _events(r, data)
    # A delivery leaves the outbox with its event (store/sqlite/schema.sql).
    shortest = min((d for d in (events.retention_days, *(d for _, d in events.domains))
                    if d is not None), default=None)
    if shortest is not None and webhooks.max_age > shortest * 86400:
        raise r.error("webhooks.max_age", f"{webhooks.max_age:g} s is longer than the "
                      f"shortest events retention ({shortest} days): an event's pending "
                      "webhook deliveries are removed with it")
    acme = _acme(r, data, base, hostname.lower(), listeners)
    if acme.enabled and tls.cert:
        raise r.error("acme.enabled", "ACME manages the certificate itself: remove [tls] "
                      "cert and key, or set enabled = false")
    if log.level not in ("debug", "info", "warning", "error"):
        raise r.error("log.level", f"expected debug, info, warning or error, got {log.level!r}")
    if log.format not in ("text", "json"):
        raise r.error("log.format", f"expected text or json, got {log.format!r}")
    queue = r.section(data, "queue", QueueSettings)
    if queue.lease <= 0:
        # A claim that lapses at once lets another worker (or node) send it too.
        raise r.error("queue.lease", "must be more than 0 seconds")
    return Config(
        path=path, hostname=hostname.lower(), data_dir=data_path, listeners=tuple(listeners),
        workers=workers, server=server,
        tls=tls, limits=limits, auth=_auth_settings(r, data),
        submission=r.section(data, "submission", SubmissionSettings),
        pop3=r.section(data, "pop3", Pop3Settings),
        imap=r.section(data, "imap", ImapSettings),
        dns=_dns_settings(r, data),
        queue=queue,
        relayhost=relayhost, relayhost_password=relay_password, transports=transports,
        checks=_checks(r, data), demo=r.section(data, "demo", DemoSettings), log=log,
        store=store, http=http, events=events, webhooks=webhooks, campaigns=campaigns,
        acme=acme,
    )
