"""Property tests: whatever a client sends, the session answers with valid SMTP replies
and never raises."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .session_harness import Harness, make_config

VERBS = ["EHLO", "HELO", "MAIL FROM:", "RCPT TO:", "DATA", "BDAT", "RSET", "NOOP", "QUIT",
         "VRFY", "HELP", "STARTTLS", "AUTH", "AUTH PLAIN", "AUTH LOGIN", "AUTH SCRAM-SHA-256",
         "*", "", "MAIL FROM:<>", "RCPT TO:<alice@example.test>", "BDAT 3 LAST"]
ARGS = st.one_of(
    st.just(""), st.text(max_size=40),
    st.sampled_from(["<alice@example.test>", "<a@x.test> SIZE=1", "<@a:b@c>", "<x",
                     "<\"q@r\"@example.test>", "<a@b.test> NOTIFY=NEVER", "=", "AAAA",
                     "<bob@example.test> ORCPT=rfc822;a+40b", "10", "0 LAST", "LAST"]))
LINE = st.builds(lambda v, a, end: (v + " " + a).encode("utf-8", "surrogatepass") + end,
                 st.sampled_from(VERBS), ARGS,
                 st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\r\n\r\n"]))
RAW = st.binary(max_size=300)
CHUNK = st.one_of(LINE, LINE, LINE, RAW,
                  st.sampled_from([b".\r\n", b"\r\n.\r\n", b"\n.\n", b"..\r\n", b"\x00"]))

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.lists(CHUNK, max_size=25), st.sampled_from(["mx", "submission", "submissions"]))
def test_random_streams_give_valid_replies(store, chunks, role):
    h = Harness(store, role=role, tls=role == "submissions",
                config=make_config(max_errors=1000, max_message_size=2000))
    for chunk in chunks:
        if h.session.closed:
            break
        h.send(chunk)           # parse_replies asserts every line is a valid reply


@SETTINGS
@given(st.lists(st.one_of(RAW, st.sampled_from([b"\r\n", b".", b"\n", b"\r", b".\r\n"])),
                max_size=30))
def test_random_data_streams(store, pieces):
    h = Harness(store, config=make_config(max_errors=1000, max_message_size=2000))
    h.ehlo()
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    for piece in pieces:
        h.send(piece)
    h.send(b"\r\n.\r\n")        # whatever came before, this ends DATA (or a line)
    if not h.session.closed and not h.session.in_data:
        assert h.cmd("NOOP").startswith("250")
