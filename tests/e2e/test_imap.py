"""IMAP against a live server with real clients: python imaplib across the command
set, raw sockets for what imaplib cannot say, curl and mbsync."""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import socket
import ssl
import subprocess
import time
import uuid
import zlib

import pytest

from ..conftest import PASSWORD, MailServer, require

INSECURE = ssl._create_unverified_context()


@pytest.fixture(scope="module")
def imap_server(tmp_path_factory):
    srv = MailServer(tmp_path_factory.mktemp("imap"))
    srv.cli("domain", "add", "example.test")
    srv.start()
    yield srv
    srv.stop()


def new_user(srv) -> str:
    user = f"u{uuid.uuid4().hex[:10]}@example.test"
    srv.add_user(user)
    return user


def deliver(srv, rcpt: str, subject: str = "", body: str = "hello", extra: str = "") -> None:
    subject = subject or uuid.uuid4().hex
    msg = (f"From: Sender <x@remote.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@remote.test>\r\n"
           f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n{extra}\r\n{body}\r\n").encode()
    with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30) as s:
        s.sendmail("x@remote.test", [rcpt], msg)


def login(srv, user: str) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=INSECURE, timeout=30)
    m.login(user, PASSWORD)
    return m


class Raw:
    """A line-level IMAP client for exact protocol checks."""

    def __init__(self, srv, user: str | None = None, tls: bool = True):
        sock = socket.create_connection((srv.host, srv.ports["imaps" if tls else "imap"]),
                                        timeout=10)
        self.sock = INSECURE.wrap_socket(sock) if tls else sock
        self.buf = b""
        self.n = 0
        self.greeting = self.line()
        if user:
            self.ok(f'LOGIN {user} "{PASSWORD}"')

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def command(self, text: str | bytes) -> tuple[list[bytes], bytes]:
        self.n += 1
        tag = f"t{self.n}".encode()
        self.send(tag + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> tuple[list[bytes], bytes]:
        lines = []
        while True:
            line = self.line()
            while m := re.search(rb"\{(\d+)\}$", line):    # a literal: read it whole
                need = int(m.group(1))
                while len(self.buf) < need:
                    self.buf += self.sock.recv(65536)
                line += b"\r\n" + self.buf[:need]
                self.buf = self.buf[need:]
                line += self.line()
            if line.startswith(tag + b" "):
                return lines, line
            lines.append(line)

    def ok(self, text: str | bytes) -> list[bytes]:
        lines, done = self.command(text)
        assert b" OK" in done, (text, lines, done)
        return lines

    def close(self) -> None:
        self.sock.close()


# --- connection, TLS and authentication ----------------------------------------------------------
def test_starttls_required_before_login(imap_server):
    r = Raw(imap_server, tls=False)
    assert b"LOGINDISABLED" in r.greeting and b"STARTTLS" in r.greeting
    _, done = r.command(f'LOGIN a@example.test "{PASSWORD}"')
    assert b"NO [PRIVACYREQUIRED]" in done
    r.close()
    m = imaplib.IMAP4("127.0.0.1", imap_server.ports["imap"], timeout=30)
    m.starttls(INSECURE)
    assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities
    user = new_user(imap_server)
    assert m.login(user, PASSWORD)[0] == "OK"
    m.logout()


def test_authenticate_plain_sasl_ir_and_scram(imap_server):
    user = new_user(imap_server)
    r = Raw(imap_server)
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
    _, done = r.command(f"AUTHENTICATE PLAIN {token}")
    assert b"OK [CAPABILITY" in done and b"QRESYNC" in done
    r.close()
    import scramp
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, PASSWORD)
    r = Raw(imap_server)
    first = base64.b64encode(client.get_client_first().encode()).decode()
    r.send(f"s1 AUTHENTICATE SCRAM-SHA-256 {first}\r\n".encode())
    challenge = r.line()
    client.set_server_first(base64.b64decode(challenge[2:]).decode())
    r.send(base64.b64encode(client.get_client_final().encode()) + b"\r\n")
    final = r.line()
    client.set_server_final(base64.b64decode(final[2:]).decode())
    r.send(b"\r\n")
    assert r.line().startswith(b"s1 OK")
    r.close()


def test_wrong_password_and_cancelled_authenticate(imap_server):
    r = Raw(imap_server)
    _, done = r.command("LOGIN nobody@example.test wrong")
    assert b"NO [AUTHENTICATIONFAILED]" in done
    r.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ "
    r.send(b"*\r\n")
    assert r.line().startswith(b"a1 BAD")
    r.close()


# --- mailboxes -----------------------------------------------------------------------------------
def test_mailbox_management_and_list_extensions(imap_server):
    user = new_user(imap_server)
    m = login(imap_server, user)
    assert m.create("Projects/2026")[0] == "OK"
    assert m.create("Projects")[1][0].startswith(b"[ALREADYEXISTS]")
    typ, data = m.list('""', "Projects*")
    assert data == [b'(\\HasChildren) "/" "Projects"', b'(\\HasNoChildren) "/" "Projects/2026"']
    assert m.list('""', "%")[1][-1] == b'(\\HasNoChildren \\Trash) "/" "Trash"'
    assert m.rename("Projects", "Work")[0] == "OK"
    assert [line.split(b'"/" ')[1] for line in m.list('""', "Work*")[1]] == \
        [b'"Work"', b'"Work/2026"']
    assert m.delete("Work")[0] == "NO"                  # has children
    assert m.delete("Work/2026")[0] == "OK"
    assert m.unsubscribe("Work")[0] == "OK"
    assert b'"Work"' not in b"".join(m.lsub('""', "*")[1])
    assert m.delete("INBOX")[0] == "NO"
    # LIST-EXTENDED with SPECIAL-USE selection, RETURN (SUBSCRIBED STATUS ...)
    typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', "*", "RETURN",
                                  "(SUBSCRIBED STATUS (MESSAGES UNSEEN SIZE))")
    assert typ == "OK"
    listed = m.untagged_responses.pop("LIST")
    statuses = m.untagged_responses.pop("STATUS")
    assert b'(\\HasNoChildren \\Sent \\Subscribed) "/" "Sent"' in listed
    assert all(b"INBOX" not in line for line in listed)
    assert b'"Junk" (MESSAGES 0 UNSEEN 0 SIZE 0)' in statuses
    # international names: modified UTF-7 for IMAP4rev1, UTF-8 after ENABLE UTF8=ACCEPT
    assert m.create("&AMk-t&AOk-")[0] == "OK"           # "Été"
    assert b'"&AMk-t&AOk-"' in b" ".join(m.list('""', "*")[1])
    m.logout()
    r = Raw(imap_server, user)
    r.ok("ENABLE UTF8=ACCEPT")
    lines = r.ok('LIST "" "Ét*"'.encode())
    assert lines == ['* LIST (\\HasNoChildren) "/" "Été"'.encode()]
    r.close()


def test_status_and_namespace(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user)
    deliver(imap_server, user)
    m = login(imap_server, user)
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
                                  "HIGHESTMODSEQ RECENT)")
    assert re.match(rb'"INBOX" \(MESSAGES 2 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 2 DELETED 0 '
                    rb"SIZE \d+ HIGHESTMODSEQ \d+ RECENT 2\)", data[0]), data
    assert m.namespace()[1] == [b'(("" "/")) NIL NIL']
    assert m.status("Nope", "(MESSAGES)")[0] == "NO"
    m.logout()


# --- APPEND, FETCH, STORE, SEARCH ----------------------------------------------------------------
MIME = (b"From: Ann <ann@remote.test>\r\nTo: b@example.test\r\nSubject: Quarterly report\r\n"
        b"Date: Mon, 2 Feb 2026 09:00:00 +0100\r\nMessage-ID: <q1@remote.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nR=C3=A9sultats du trimestre\r\n"
        b"--b1\r\nContent-Type: application/octet-stream; name=data.bin\r\n"
        b"Content-Disposition: attachment; filename=data.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b1--\r\n")


def test_append_multiappend_and_fetch_items(imap_server):
    user = new_user(imap_server)
    r = Raw(imap_server, user)
    # MULTIAPPEND with LITERAL+ (no continuation needed) and a date-time
    second = b"Subject: second\r\n\r\nbody two\r\n"
    lines, done = r.command(
        b'APPEND INBOX (\\Seen $Work) "02-Feb-2026 09:00:00 +0100" {%d+}\r\n' % len(MIME)
        + MIME + b" () {%d+}\r\n" % len(second) + second)
    assert re.search(rb"OK \[APPENDUID \d+ 1:2\]", done), done
    r.ok("SELECT INBOX")
    lines = r.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    assert b"FLAGS (\\Seen $Work \\Recent)" in lines[0]
    assert b'INTERNALDATE "02-Feb-2026' in lines[0] or b"INTERNALDATE" in lines[0]
    assert b"RFC822.SIZE %d" % len(MIME) in lines[0]
    assert b'"Quarterly report"' in lines[0]
    assert b'("APPLICATION" "OCTET-STREAM" ("NAME" "data.bin") NIL NIL "BASE64" 8 NIL ' \
           b'("attachment" ("FILENAME" "data.bin")) NIL NIL)' in lines[0]
    lines = r.ok("FETCH 1 (BODY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[1.MIME] "
                 "BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT]<0.6>)")
    blob = lines[0]
    assert b"BODY[1] {29}\r\nR=C3=A9sultats du trimestre\r\n" not in blob  # CRLF is the delimiter's
    assert b"BODY[1] {27}\r\nR=C3=A9sultats du trimestre" in blob
    assert b"BINARY[2] ~{5}\r\n\x00\x01\x02\x03\x04" in blob
    assert b"BINARY.SIZE[2] 5" in blob
    assert b"BODY[HEADER.FIELDS (SUBJECT)] {29}\r\nSubject: Quarterly report\r\n\r\n" in blob
    assert b"BODY[TEXT]<0> {6}\r\n--b1\r\n" in blob
    # a non-PEEK body fetch sets \Seen and reports it
    lines = r.ok("FETCH 2 (BODY[])")
    assert b"FLAGS (\\Seen" in lines[0] and b"body two" in lines[0]
    lines = r.ok("UID FETCH 1:* (UID RFC822.HEADER)")
    assert lines[0].startswith(b"* 1 FETCH (UID 1 RFC822.HEADER {")
    _, done = r.command("APPEND Nowhere {3+}\r\nabc")
    assert b"NO [TRYCREATE]" in done
    r.close()


def test_store_flags_and_keywords(imap_server):
    user = new_user(imap_server)
    for _ in range(3):
        deliver(imap_server, user)
    r = Raw(imap_server, user)
    r.ok("SELECT INBOX")
    # RFC 9051 §7.3.5: the new keyword is announced in FLAGS before a FETCH shows it
    assert r.ok("STORE 1:2 +FLAGS (\\Flagged $Important)") == [
        b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Important)",
        b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Important \\*)] "
        b"Flags permitted",
        b"* 1 FETCH (FLAGS (\\Flagged $Important \\Recent))",
        b"* 2 FETCH (FLAGS (\\Flagged $Important \\Recent))"]
    assert r.ok("STORE 1 -FLAGS.SILENT (\\Flagged)") == []
    assert r.ok("UID STORE 3 FLAGS (\\Answered)") == [
        b"* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent))"]
    lines = r.ok("FETCH 1:3 FLAGS")
    assert lines[0] == b"* 1 FETCH (FLAGS ($Important \\Recent))"
    _, done = r.command("STORE 1 +FLAGS (\\Recent)")
    assert b"BAD" in done
    r.close()


def test_search_criteria_esearch_and_searchres(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user, "Lunch on Friday", "Let us meet at the café")
    deliver(imap_server, user, "Re: Lunch on Friday", "Sounds good, see you",
            extra="Cc: Boss <boss@example.test>\r\nX-Priority: 1\r\n")
    deliver(imap_server, user, "Invoice 42", "Payment due\r\n" + ("x" * 70 + "\r\n") * 40)
    m = login(imap_server, user)
    m.select("INBOX")
    m.store("2", "+FLAGS", "(\\Seen)")
    assert m.search(None, "SUBJECT", "lunch")[1] == [b"1 2"]
    assert m.search(None, "TEXT", "cafe")[1] == [b"1"]           # diacritics folded
    assert m.search(None, "BODY", "meet")[1] == [b"1"]
    assert m.search(None, "BODY", "Lunch")[1] == [b""]           # subject is not body
    assert m.search(None, "CC", "boss")[1] == [b"2"]
    assert m.search(None, "HEADER", "X-Priority", "1")[1] == [b"2"]
    assert m.search(None, "HEADER", "X-Priority", '""')[1] == [b"2"]
    assert m.search(None, "LARGER", "2000")[1] == [b"3"]
    assert m.search(None, "UNSEEN", "NOT", "LARGER", "2000")[1] == [b"1"]
    assert m.search(None, "OR", "SEEN", "SUBJECT", "invoice")[1] == [b"2 3"]
    assert m.search(None, "FROM", "sender")[1] == [b"1 2 3"]
    assert m.search(None, "SENTON", "29-Nov-2026")[1] == [b"1 2 3"]
    assert m.search(None, "SENTBEFORE", "1-Jan-2026")[1] == [b""]
    today = time.strftime("%d-%b-%Y")
    assert m.search(None, "SINCE", today)[1] == [b"1 2 3"]
    assert m.search(None, "2:*", "NOT", "SEEN")[1] == [b"3"]
    assert m.uid("SEARCH", "UID", "2:3")[1] == [b"2 3"]
    assert m.search("UTF-8", "SUBJECT", "Friday")[1] == [b"1 2"]
    assert m.search("KOI8-R", "ALL")[0] == "NO"
    r = Raw(imap_server, user)
    r.ok("SELECT INBOX")
    assert r.ok("SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT lunch") == [
        b'* ESEARCH (TAG "t3") MIN 1 MAX 2 ALL 1:2 COUNT 2']
    assert r.ok("SEARCH RETURN (SAVE) SUBJECT invoice") == []
    assert r.ok("FETCH $ (UID)") == [b"* 3 FETCH (UID 3)"]
    _, done = r.command("SEARCH FROB")
    assert b"BAD" in done
    r.close()
    m.logout()


def test_sort_and_thread(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user, "b topic", extra="")
    deliver(imap_server, user, "a topic")
    deliver(imap_server, user, "Re: b topic")
    m = login(imap_server, user)
    m.select("INBOX")
    typ, data = m.sort("(SUBJECT)", "UTF-8", "ALL")
    assert data == [b"2 1 3"]
    typ, data = m.sort("(REVERSE ARRIVAL)", "UTF-8", "ALL")
    assert data == [b"3 2 1"]
    typ, data = m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
    assert data == [b"(1 3)(2)"]
    typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data[0].count(b"(") >= 2
    m.logout()


# --- COPY, MOVE, EXPUNGE -------------------------------------------------------------------------
def test_copy_move_expunge_uidplus(imap_server):
    user = new_user(imap_server)
    for _ in range(4):
        deliver(imap_server, user)
    r = Raw(imap_server, user)
    r.ok("SELECT INBOX")
    lines, done = r.command("COPY 1:2 Archive")
    assert re.search(rb"OK \[COPYUID \d+ 1:2 1:2\]", done)
    lines = r.ok("UID MOVE 3 Trash")
    assert re.match(rb"\* OK \[COPYUID \d+ 3 1\]", lines[0])
    assert lines[1] == b"* 3 EXPUNGE"
    r.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    r.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert r.ok("UID EXPUNGE 1") == [b"* 1 EXPUNGE"]          # only UID 1
    assert r.ok("EXPUNGE") == [b"* 2 EXPUNGE"]                # UID 4 was seq 3, now 2
    assert r.ok("UID SEARCH ALL") == [b"* SEARCH 2"]
    _, done = r.command("COPY 1 Nowhere")
    assert b"NO [TRYCREATE]" in done
    r.ok("EXAMINE Archive")
    _, done = r.command("STORE 1 +FLAGS (\\Seen)")
    assert b"NO [READ-ONLY]" in done
    r.close()


def test_deleted_mailbox_frees_blobs(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user, body="unique " + uuid.uuid4().hex)
    m = login(imap_server, user)
    m.select("INBOX")
    m.create("Tmp")
    m.copy("1", "Tmp")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    store = imap_server.store()
    try:
        blobs = {r[0] for r in store.conn.execute("SELECT blob FROM messages m JOIN mailboxes "
                                                   "b ON m.mailbox_id=b.id WHERE b.name='Tmp'")}
        assert len(blobs) == 1
        digest = blobs.pop()
    finally:
        store.close()
    m.select("INBOX")
    assert m.delete("Tmp")[0] == "OK"
    store = imap_server.store()
    try:
        assert not store.conn.execute("SELECT 1 FROM blob_inline WHERE digest=?",
                                      (digest,)).fetchone()
        assert not store.conn.execute("SELECT 1 FROM message_meta WHERE blob=?",
                                      (digest,)).fetchone()
    finally:
        store.close()
    m.logout()


# --- several sessions, IDLE ----------------------------------------------------------------------
def test_two_sessions_see_expunge_at_the_right_moment(imap_server):
    user = new_user(imap_server)
    for _ in range(3):
        deliver(imap_server, user)
    a, b = Raw(imap_server, user), Raw(imap_server, user)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert a.ok("EXPUNGE") == [b"* 2 EXPUNGE"]
    # B's FETCH must not shift sequence numbers: no EXPUNGE yet, message 3 is still 3
    lines = b.ok("FETCH 3 (UID)")
    assert lines == [b"* 3 FETCH (UID 3)"]
    lines = b.ok("NOOP")
    assert b"* 2 EXPUNGE" in lines
    assert b.ok("FETCH 2 (UID)") == [b"* 2 FETCH (UID 3)"]
    # flag changes by A reach B as untagged FETCH on its next command
    a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert b.ok("NOOP") == [b"* 1 FETCH (FLAGS (\\Flagged))"]    # A holds \\Recent
    a.close()
    b.close()


def idle_until(r: Raw, pattern: bytes, timeout: float = 3.0) -> tuple[bytes, float]:
    start = time.monotonic()
    r.sock.settimeout(timeout)
    seen = b""
    while pattern not in seen:
        seen += r.line() + b"\n"
    return seen, time.monotonic() - start


def test_idle_reports_delivery_and_other_sessions_within_a_second(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user)
    watcher, other = Raw(imap_server, user), Raw(imap_server, user)
    watcher.ok("SELECT INBOX")
    other.ok("SELECT INBOX")
    watcher.send(b"i1 IDLE\r\n")
    assert watcher.line().startswith(b"+ ")
    start = time.monotonic()
    deliver(imap_server, user)
    _, _ = idle_until(watcher, b"* 2 EXISTS")
    assert time.monotonic() - start < 1.5          # SMTP transaction included
    start = time.monotonic()
    other.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    seen, _ = idle_until(watcher, b"FETCH")
    assert b"* 1 FETCH (FLAGS (\\Seen" in seen
    assert time.monotonic() - start < 1.0
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    idle_until(watcher, b"* 2 EXPUNGE")
    watcher.send(b"DONE\r\n")
    assert watcher.line().startswith(b"i1 OK")
    watcher.close()
    other.close()


def test_condstore_and_qresync(imap_server):
    user = new_user(imap_server)
    for _ in range(3):
        deliver(imap_server, user)
    r = Raw(imap_server, user)
    r.ok("ENABLE QRESYNC")
    lines = r.ok("SELECT INBOX")
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(lines)).group(1))
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(lines)).group(1))
    lines = r.ok(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)")
    assert re.match(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\)\)",
                    lines[0]), lines
    _, done = r.command(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert b"OK [MODIFIED 1]" in done
    lines = r.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")
    assert len(lines) == 1 and b"MODSEQ" in lines[0]
    r.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    r.ok("EXPUNGE")
    lines = r.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 3"
    assert r.ok(f"SEARCH MODSEQ {modseq + 1}")[0].startswith(b"* SEARCH 1 (MODSEQ")
    r.ok("UNSELECT")
    lines = r.ok(f"SELECT INBOX (QRESYNC ({validity} {modseq}))")
    assert b"* VANISHED (EARLIER) 3" in lines
    assert any(line.startswith(b"* 1 FETCH (UID 1 FLAGS") for line in lines)
    r.close()


# --- quota ---------------------------------------------------------------------------------------
def test_quota_enforced_on_append_and_smtp(imap_server):
    user = new_user(imap_server)
    imap_server.cli("user", "quota", user, "4K")
    deliver(imap_server, user, body=("x" * 70 + "\r\n") * 21)
    m = login(imap_server, user)
    typ, data = m.getquotaroot("INBOX")
    assert data[0] == [b'"INBOX" ""'] and re.match(rb'"" \(STORAGE \d+ 4\)', data[1][0])
    big = b"Subject: big\r\n\r\n" + b"y" * 3000 + b"\r\n"
    typ, data = m.append("INBOX", None, None, big)
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]")
    m.append("INBOX", None, None, b"Subject: small\r\n\r\n" + b"z" * 2000 + b"\r\n")
    with smtplib.SMTP("127.0.0.1", imap_server.ports["mx"], timeout=30) as s:
        s.ehlo("remote.test")
        s.mail("x@remote.test", ["SIZE=2000"])
        code, text = s.rcpt(user)
    assert code == 452 and text.startswith(b"4.2.2")
    m.logout()


# --- compression ---------------------------------------------------------------------------------
def test_compress_deflate(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user, body="compressible\r\n" * 200)
    r = Raw(imap_server, user)
    r.ok("COMPRESS DEFLATE")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    r.sock.sendall(deflate.compress(b"c1 SELECT INBOX\r\nc2 FETCH 1 (BODY.PEEK[TEXT])\r\n"
                                    b"c3 LOGOUT\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
    data = b""
    while b"c3 OK" not in data:
        chunk = r.sock.recv(65536)
        if not chunk:
            break
        data += inflate.decompress(chunk)
    assert b"c1 OK [READ-WRITE]" in data
    assert (b"compressible\r\n" * 200) in data
    r.close()


def test_compress_deflate_with_a_streamed_fetch(imap_server):
    """Bodies beyond one streamed chunk (256 KiB) go out as several buffers at once
    (writelines): each compressed, in order, and the client inflates them whole."""
    user = new_user(imap_server)
    bodies = [(f"message {i} " + "line of text %d\r\n" * 12000) % tuple(range(12000))
              for i in range(3)]
    for body in bodies:
        deliver(imap_server, user, body=body)
    r = Raw(imap_server, user)
    r.ok("COMPRESS DEFLATE")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    r.sock.sendall(deflate.compress(b"c1 SELECT INBOX\r\nc2 UID FETCH 1:* (BODY.PEEK[])\r\n")
                   + deflate.flush(zlib.Z_SYNC_FLUSH))
    data = b""
    deadline = time.monotonic() + 30
    while b"c2 OK" not in data and time.monotonic() < deadline:
        chunk = r.sock.recv(65536)
        if not chunk:
            break
        data += inflate.decompress(chunk)
    assert b"c2 OK" in data
    for body in bodies:
        assert body.encode() + b"\r\n)" in data
    r.close()


# --- bad input -----------------------------------------------------------------------------------
def test_bad_input_in_every_state(imap_server):
    user = new_user(imap_server)
    deliver(imap_server, user)
    r = Raw(imap_server)
    assert b"BAD" in r.command("FROBNICATE")[1]
    assert b"BAD" in r.command("SELECT INBOX")[1]          # not authenticated yet
    r.send(b"\r\n")
    assert r.line().startswith(b"* BAD")
    r.ok(f'LOGIN {user} "{PASSWORD}"')
    assert b"BAD" in r.command("FETCH 1 FLAGS")[1]          # nothing selected
    assert b"BAD" in r.command("LOGIN a b")[1]
    r.ok("SELECT INBOX")
    for bad in ("FETCH 0 FLAGS", "FETCH 1: FLAGS", "FETCH a FLAGS", "FETCH 1 (FLAGS",
                "FETCH 1 BODY[9.Z]", "STORE 1 +FLAGZ (\\Seen)", "SEARCH BEFORE 32-Jan-2026",
                'SELECT "unterminated', "UID FROB 1", "COPY 1"):
        if r.n % 6 == 5:                  # [limits] max_errors: fresh sessions go on
            r.close()
            r = Raw(imap_server, user)
            r.ok("SELECT INBOX")
        _, done = r.command(bad)
        assert b" BAD " in done, (bad, done)
    r.close()
    r = Raw(imap_server, user)
    r.ok("SELECT INBOX")
    # an overlong line, then a huge synchronizing literal: refused, the session goes on
    r.send(b"x1 NOOP " + b"a" * 70000 + b"\r\n")
    assert r.line().startswith(b"x1 BAD [TOOBIG]")
    r.send(b"x2 APPEND INBOX {999999999}\r\n")
    assert r.line().startswith(b"x2 NO [TOOBIG]")
    assert r.ok("FETCH 1 (UID)") == [b"* 1 FETCH (UID 1)"]
    # a non-existent message is no error, just no data
    assert r.ok("FETCH 5 (UID)") == []
    _, done = r.command("LOGOUT")
    assert done.endswith(b"OK LOGOUT completed")
    r.close()
    # a huge non-synchronizing literal: BAD, BYE and the connection is closed
    r = Raw(imap_server, user)
    r.send(b"y1 APPEND INBOX {999999999+}\r\n")
    assert r.line().startswith(b"y1 BAD [TOOBIG]")
    assert r.line().startswith(b"* BYE")
    r.close()
    m = login(imap_server, user)                             # the store is sound
    assert m.select("INBOX")[1] == [b"1"]
    m.logout()


# --- third-party clients -------------------------------------------------------------------------
def test_curl_imap_and_imaps(imap_server):
    require("curl")
    user = new_user(imap_server)
    deliver(imap_server, user, "curl subject", "fetched by curl")
    port, sport = imap_server.ports["imap"], imap_server.ports["imaps"]
    out = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k", "--user", f"{user}:{PASSWORD}",
         f"imap://127.0.0.1:{port}/INBOX;UID=1"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert b"Subject: curl subject" in out.stdout and b"fetched by curl" in out.stdout
    out = subprocess.run(
        ["curl", "-sS", "-k", "--user", f"{user}:{PASSWORD}", f"imaps://127.0.0.1:{sport}/"],
        capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert b'"INBOX"' in out.stdout and b"\\Sent" in out.stdout
    out = subprocess.run(
        ["curl", "-sS", "-k", "--user", f"{user}:{PASSWORD}", "-X", "SEARCH SUBJECT curl",
         f"imaps://127.0.0.1:{sport}/INBOX"], capture_output=True, timeout=30)
    assert b"* SEARCH 1" in out.stdout


def test_mbsync_full_and_incremental_sync(imap_server, tmp_path):
    require("mbsync")
    user = new_user(imap_server)
    for i in range(5):
        deliver(imap_server, user, f"sync {i}", f"message {i}")
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        # the server's own CA, certificate checks on (tests/e2e/test_tls_clients.py)
        f"IMAPAccount test\nHost 127.0.0.1\nPort {imap_server.ports['imaps']}\n"
        f'User {user}\nPass "{PASSWORD}"\nSSLType IMAPS\nCertificateFile '
        f"{imap_server.data_dir / 'tls/ca.pem'}\n\n"
        "IMAPStore remote\nAccount test\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n"
        "SyncState *\nSync All\n")

    def mbsync():
        out = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode() + out.stdout.decode()

    def local_files(box="INBOX"):
        return sorted((maildir / box / "cur").iterdir()) + \
            sorted((maildir / box / "new").iterdir())

    mbsync()
    files = local_files()
    assert len(files) == 5
    assert {f.read_bytes().split(b"Subject: ")[1].split(b"\r\n")[0].split(b"\n")[0]
            for f in files} == {f"sync {i}".encode() for i in range(5)}
    assert (maildir / "Sent").is_dir() and (maildir / "Trash").is_dir()
    # incremental: two new deliveries arrive; a local flag change goes up
    deliver(imap_server, user, "sync 5")
    deliver(imap_server, user, "sync 6")
    first = next(f for f in local_files() if b"Subject: sync 0" in f.read_bytes())
    flagged = first.with_name(first.name.split(":2,")[0] + ":2,FS") \
        if ":2," in first.name else first.with_name(first.name + ":2,FS")
    target = maildir / "INBOX" / "cur" / flagged.name
    first.rename(target)
    mbsync()
    assert len(local_files()) == 7
    m = login(imap_server, user)
    m.select("INBOX")
    assert m.search(None, "FLAGGED", "SUBJECT", '"sync 0"')[1] == [b"1"]
    # a flag change on the server comes down
    m.store("2", "+FLAGS", "(\\Answered)")
    m.logout()
    mbsync()
    second = next(f for f in local_files() if b"Subject: sync 1" in f.read_bytes())
    assert "R" in second.name.split(":2,")[1]


def test_pipelined_appends_beyond_the_read_buffer(imap_server):
    # 40 x 150 KB with LITERAL+, all sent before any reply is read: reading pauses
    # at the high-water mark and must resume even with a literal half received.
    user = new_user(imap_server)
    r = Raw(imap_server, user)
    body = b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 1500
    payload = b"".join(b"p%d APPEND INBOX {%d+}\r\n" % (i, len(body)) + body + b"\r\n"
                       for i in range(40))
    # One thread: an SSL socket must not be read and written from two threads at once.
    # The 40 short replies fit the socket buffers, so sending all first cannot deadlock.
    r.sock.sendall(payload)
    done = [r.until(b"p%d" % i)[1] for i in range(40)]
    assert all(b"OK [APPENDUID" in line for line in done)
    assert r.ok("STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 40)']
    r.close()
