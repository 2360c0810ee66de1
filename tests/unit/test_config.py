import pytest

from mailwright.config import ConfigError, load, parse

GOOD = """hostname = "mail.example.test"
data_dir = "var"

[[listeners]]
role = "mx"
address = "127.0.0.1"
port = 2525

[[listeners]]
role = "submissions"
port = 2465

[limits]
max_recipients = 50
command_timeout = 60
"""


def test_good_config(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(GOOD)
    cfg = load(str(path))
    assert cfg.hostname == "mail.example.test"
    assert cfg.data_dir == tmp_path / "var"
    assert [listener.role for listener in cfg.listeners] == ["mx", "submissions"]
    assert cfg.listeners[1].address == "127.0.0.1" and cfg.listeners[1].implicit_tls
    assert cfg.limits.max_recipients == 50 and cfg.limits.command_timeout == 60.0
    assert cfg.limits.text_line == 0          # long lines accepted by default


@pytest.mark.parametrize("value, limit", [(0, 0), (1000, 1000), (4096, 4096)])
def test_text_line_limit_is_an_option(tmp_path, value, limit):
    # RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF, or no limit (0).
    path = tmp_path / "m.toml"
    path.write_text(GOOD.replace("[limits]\n", f"[limits]\ntext_line = {value}\n"))
    assert load(str(path)).limits.text_line == limit


def test_text_line_below_the_rfc_is_refused(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(GOOD.replace("[limits]\n", "[limits]\ntext_line = 998\n"))
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert "m.toml:14: limits.text_line: must be 0 (no limit) or at least 1000" in str(e.value)


@pytest.mark.parametrize("change, message", [
    (('max_recipients = 50', 'max_recipient = 50'),
     "m.toml:14: limits.max_recipient: unknown key"),
    (('port = 2465', 'port = "2465"'), "m.toml:11: listeners[1].port: expected a port number"),
    (('role = "mx"', 'role = "smtp"'), "m.toml:5: listeners[0].role: expected one of mx"),
    (('max_recipients = 50', 'max_recipients = "many"'),
     "m.toml:14: limits.max_recipients: expected int, got str"),
    (('hostname = "mail.example.test"', 'hostname = "mail"'),
     "m.toml:1: hostname: expected a fully qualified host name"),
    (('address = "127.0.0.1"', 'address = "localhost"'),
     "m.toml:6: listeners[0].address: expected an IP address"),
    (('port = 2465', 'port = 2525\naddress = "127.0.0.1"'), "is already used"),
    (('[limits]', 'colour = "blue"\n[limits]'), "m.toml:13: listeners[1].colour: unknown key"),
    (('command_timeout = 60', 'command_timeout = -1'), "must not be negative"),
    (('hostname = "mail.example.test"', 'colour = "blue"\nhostname = "mail.example.test"'),
     "m.toml:1: colour: unknown key"),
    (('[limits]', '[limits\n'), "m.toml: invalid TOML"),
    (('[limits]', '[auth]\nargon2_time_cost = 0\n[limits]'),
     "m.toml:14: auth.argon2_time_cost: must be at least 1, got 0"),
    (('[limits]', '[auth]\nargon2_parallelism = 4\nargon2_memory_kib = 16\n[limits]'),
     "auth.argon2_memory_kib: must be at least 8 KiB per lane (32), got 16"),
])
def test_errors_name_file_key_and_line(tmp_path, change, message):
    path = tmp_path / "m.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert message in str(e.value)


def test_store_backend(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(GOOD)
    assert load(str(path)).store.backend == "sqlite"               # the default
    path.write_text(GOOD + '\n[store]\nbackend = "sqlite"\n')
    assert load(str(path)).store.backend == "sqlite"
    path.write_text(GOOD + '\n[store]\nbackend = "mysql"\n')
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert "m.toml:18: store.backend: expected one of sqlite, postgresql, got 'mysql'" \
        in str(e.value)
    path.write_text(GOOD + '\n[store]\nbackend = "postgresql"\n')
    with pytest.raises(ConfigError, match="store.dsn: set the PostgreSQL connection string"):
        load(str(path))
    pg = GOOD + ('\n[store]\nbackend = "postgresql"\ndsn = "postgresql://mw@127.0.0.1/mail"\n'
                 'password_file = "db.secret"\n')
    path.write_text(pg)
    with pytest.raises(ConfigError, match="store.password_file: cannot read .*db.secret"):
        load(str(path))
    (tmp_path / "db.secret").write_text("p4ss w'ord\n")
    store = load(str(path)).store
    assert "p4ss" not in repr(store)
    assert store.conninfo() == "user=mw dbname=mail host=127.0.0.1 password='p4ss w\\'ord'"


def test_store_cache_reaches_each_sqlite_connection(tmp_path):
    from mailwright.app import open_store
    assert parse(GOOD).store.cache_mib == 64                         # the default
    with pytest.raises(ConfigError, match="store.cache_mib: expected at least 1"):
        parse(GOOD + '\n[store]\ncache_mib = 0\n')
    cfg = parse(GOOD.replace('data_dir = ', f'data_dir = "{tmp_path}"\n# ', 1)
                + '\n[store]\ncache_mib = 8\n')
    store = open_store(cfg)
    try:
        for conn in (store.conn, store._writer.conn):
            assert conn.execute("PRAGMA cache_size").fetchone() == (-8 * 1024,)
    finally:
        store.close()


def test_missing_file_and_tls_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="tls.cert: file not found"):
        parse(GOOD + '\n[tls]\ncert = "/nonexistent.pem"\nkey = "/nonexistent.key"\n')
    with pytest.raises(ConfigError, match="set both cert and key"):
        parse(GOOD + '\n[tls]\ncert = "/x.pem"\n')


def test_dns_section():
    cfg = parse(GOOD + '\n[dns]\nnameservers = ["127.0.0.1", "::1"]\nport = 5353\n')
    assert cfg.dns.nameservers == ("127.0.0.1", "::1") and cfg.dns.port == 5353
    assert parse(GOOD).dns.nameservers == ()
    with pytest.raises(ConfigError, match="dns.nameservers: expected IP addresses"):
        parse(GOOD + '\n[dns]\nnameservers = ["dns.google"]\n')
    with pytest.raises(ConfigError, match="dns.retries: unknown key"):
        parse(GOOD + '\n[dns]\nretries = 3\n')


def test_imap_listeners_and_section():
    cfg = parse(GOOD + '\n[[listeners]]\nrole = "imap"\nport = 2143\n'
                '[[listeners]]\nrole = "imaps"\nport = 2993\n'
                "[imap]\nallow_plaintext_auth = true\n")
    imap, imaps = cfg.listeners[2:]
    assert (imap.protocol, imap.implicit_tls) == ("imap", False)
    assert (imaps.protocol, imaps.implicit_tls) == ("imap", True)
    assert cfg.imap.allow_plaintext_auth
    with pytest.raises(ConfigError, match=r"imap.allow_plaintext: unknown key"):
        parse(GOOD + "[imap]\nallow_plaintext = true\n")


def test_campaigns_suppression_keys():
    cfg = parse(GOOD)
    assert (cfg.campaigns.suppress_on_bounce, cfg.campaigns.suppress_on_complaint,
            cfg.campaigns.feedback_address) == (False, True, "")
    cfg = parse(GOOD + '[campaigns]\nsuppress_on_bounce = true\n'
                       'suppress_on_complaint = false\nfeedback_address = "FBL@Example.TEST"\n')
    assert (cfg.campaigns.suppress_on_bounce, cfg.campaigns.suppress_on_complaint,
            cfg.campaigns.feedback_address) == (True, False, "FBL@example.test")
    with pytest.raises(ConfigError, match=r"campaigns.suppress_on_bounce.*expected bool"):
        parse(GOOD + "[campaigns]\nsuppress_on_bounce = 1\n")
    with pytest.raises(ConfigError, match=r"campaigns.feedback_address.*mailbox"):
        parse(GOOD + '[campaigns]\nfeedback_address = "not an address"\n')


def test_campaigns_unsubscribe_local_part():
    assert parse(GOOD).campaigns.unsubscribe_local_part == "unsubscribe"
    for value, parsed in (("Leave.Me-Alone", "leave.me-alone"), ("", "")):
        cfg = parse(GOOD + f'[campaigns]\nunsubscribe_local_part = "{value}"\n')
        assert cfg.campaigns.unsubscribe_local_part == parsed
    # it goes into a mailto: URI as it is (RFC 6068 §2) and must fit a local part
    for bad in ("a?b", "x@y", ".dot", "a..b", "has space", "ü", "x" * 65):
        with pytest.raises(ConfigError, match=r"campaigns.unsubscribe_local_part"):
            parse(GOOD + f'[campaigns]\nunsubscribe_local_part = "{bad}"\n')


def test_a_queue_lease_must_be_positive(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(GOOD + "\n[queue]\nlease = 0\n")
    with pytest.raises(ConfigError, match="queue.lease: must be more than 0 seconds"):
        load(str(path))
    path.write_text(GOOD + "\n[queue]\nlease = 30\n")
    assert load(str(path)).queue.lease == 30.0
