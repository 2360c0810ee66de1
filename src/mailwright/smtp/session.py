"""The SMTP server session (RFC 5321), a state machine with I/O at the edges.

The connection code feeds received bytes to `receive()` and calls `process()`,
which handles every complete command (or DATA message, or BDAT chunk) in
order and returns the reply bytes to send plus what the transport must do
next (nothing, start TLS, close). Replies therefore come out in command order
however deeply a client pipelines (RFC 2920 §3.1).

Asynchronous work (store lookups are synchronous and fast; password hashing
and durable delivery are not) is awaited inside `process()`, so one session
never has two commands in flight.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..address import Address
from ..auth import driver, sasl
from ..auth.driver import Authenticator
from ..auth.logins import Logins
from ..config import Config
from ..delivery import submission
from ..delivery.assemble import Parts, pipeline_for
from ..delivery.ids import session_id
from ..delivery.pipeline import Pipeline
from ..delivery.received import Recipient
from ..events.log import EventLog
from ..events.types import Event
from ..net.connection import Action, LineSession, TLSInfo
from ..smtpreply import Reply
from ..store.base import MailStore
from . import replies as R
from .data import Answer, DataCommands, Transaction
from .framing import (
    Chunk,
    CommandLine,
    Framer,
    LineTooLong,
    MessageData,
    Mode,
)
from .params import (
    ParamError,
    parse_path_argument,
    read_mail_parameters,
    read_rcpt_parameters,
)

# RFC 4954 §4: an AUTH command line and a SASL response line may be 12288 octets.
SASL_LINE_LIMIT = 12288
# RFC 1870 §3, RFC 3461 §4, RFC 4954 §5 let MAIL/RCPT parameters lengthen the line
# beyond 512 octets; this covers SIZE, BODY, SMTPUTF8, RET, ENVID (100), AUTH and
# ORCPT (500) with their xtext expansion.
PARAM_LINE_ALLOWANCE = 1536
# RFC 4954 §4, §6: the replies to exchanges that end before any credentials are checked.
_AUTH_ENDED = {
    driver.Ended.LOCKED: Reply(454, "4.7.0", "Too many failed authentications; try again later"),
    driver.Ended.UNSUPPORTED: Reply(504, "5.5.4", "Unrecognized authentication mechanism"),
    driver.Ended.INVALID_INITIAL: Reply(501, "5.5.2", "Invalid base64 in initial response"),
    driver.Ended.INVALID_RESPONSE: Reply(501, "5.5.2",
                                         "Invalid base64 in authentication response"),
    driver.Ended.CANCELLED: Reply(501, "5.0.0", "Authentication canceled"),
}


@dataclass
class Connection:
    """Facts about the transport the session runs on."""
    role: str                  # mx | submission | submissions
    client_ip: str
    client_port: int = 0
    tls: TLSInfo | None = None
    tls_available: bool = True


class SmtpSession(DataCommands, LineSession):
    def __init__(self, conn: Connection, config: Config, store: MailStore,
                 logins: Logins, events: EventLog,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 pipeline: Pipeline | None = None):
        self.conn = conn
        self.config = config
        self.limits = config.limits
        self.store = store
        self.events = events
        self.sleep = sleep
        # What happens to a message once received (delivery/assemble.py); by default
        # stamped and stored, with no checks or signatures.
        self.pipeline = pipeline or pipeline_for(conn.role, Parts(config, store, events))
        self.id = session_id()
        self.framer = Framer(SASL_LINE_LIMIT + 2, self.limits.max_message_size)
        self.helo: str | None = None
        self.esmtp = False
        self.account: str | None = None
        self.transaction: Transaction | None = None
        self.sasl = Authenticator(sasl.Offer("smtp"), store, logins, events,
                                  conn.client_ip, self.id, sleep)
        self.bdat_pending: tuple[bool, Reply | None] | None = None   # (last, error reply)
        self.accepted = 0
        self.errors = 0
        self.closed = False
        self._handlers = {
            "EHLO": self.cmd_ehlo, "HELO": self.cmd_helo, "MAIL": self.cmd_mail,
            "RCPT": self.cmd_rcpt, "DATA": self.cmd_data, "BDAT": self.cmd_bdat,
            "RSET": self.cmd_rset, "NOOP": self.cmd_noop, "QUIT": self.cmd_quit,
            "VRFY": self.cmd_vrfy, "EXPN": self.cmd_expn, "HELP": self.cmd_help,
            "STARTTLS": self.cmd_starttls, "AUTH": self.cmd_auth,
        }

    # --- the edges -----------------------------------------------------------
    @property
    def submission(self) -> bool:
        return self.conn.role in ("submission", "submissions")

    @property
    def buffered(self) -> int:
        return self.framer.buffered

    @property
    def in_data(self) -> bool:
        return self.framer.mode is not Mode.COMMAND

    @property
    def timeout(self) -> float:
        return self.limits.data_timeout if self.in_data else self.limits.command_timeout

    @property
    def in_transaction(self) -> bool:
        """A mail transaction is open (MAIL given, message text coming or being stored):
        a shutdown lets it finish (RFC 5321 §3.3) rather than lose what the client sent."""
        return self.transaction is not None or self.in_data or self.bdat_pending is not None

    def greeting(self) -> bytes:
        self.events.emit(Event.SMTP_CONNECT, self.id, ip=self.conn.client_ip, role=self.conn.role,
                         tls=self.conn.tls.version if self.conn.tls else "")
        return Reply(220, "", f"{self.config.hostname} ESMTP Mailwright").render(False)

    def receive(self, data: bytes) -> None:
        self.framer.feed(data)

    def tls_started(self, info: TLSInfo) -> None:
        # RFC 3207 §4.2: after the handshake the server discards all knowledge
        # obtained from the client; the client must send EHLO again.
        self.conn.tls = info
        self.helo = None
        self.esmtp = False
        self.transaction = None
        self.events.emit(Event.STARTTLS, self.id, version=info.version, cipher=info.cipher)

    def _next_input(self):
        return self.framer.next_event()

    def _emit(self, out: bytearray, answer: Answer) -> Action:
        reply, action = answer
        if reply is not None:
            out += reply.render()
            if reply.code >= 500:
                self.errors += 1
                if self.errors >= self.limits.max_errors:
                    out += R.TOO_MANY_ERRORS.render()
                    action = Action.CLOSE
                    self.events.emit(Event.TOO_MANY_ERRORS, self.id, ip=self.conn.client_ip)
        if action is Action.START_TLS:
            self.framer.discard_input()
        elif action is Action.CLOSE:
            self.closed = True
        return action

    def timed_out(self) -> bytes:
        self.closed = True
        self.events.emit(Event.TIMEOUT, self.id, ip=self.conn.client_ip)
        return R.TIMEOUT.render()

    def disconnected(self) -> None:
        self.transaction = None           # a message half received: its spool goes
        self.events.emit(Event.SMTP_DISCONNECT, self.id, ip=self.conn.client_ip,
                         accepted=self.accepted, errors=self.errors)

    def _dispatch(self, event) -> Answer | Coroutine[Any, Any, Answer]:
        if isinstance(event, MessageData):
            return self._end_of_data(event)
        if isinstance(event, Chunk):
            return self._end_of_chunk(event)
        if isinstance(event, LineTooLong):
            if self.sasl.active:
                self.sasl.abort()
                return Reply(500, "5.5.6", "Authentication exchange line is too long"), \
                    Action.NONE
            return R.LINE_TOO_LONG, Action.NONE
        assert isinstance(event, CommandLine)
        if self.sasl.active:
            return self._sasl_response(event.line)
        return self._command(event.line)

    def _command(self, raw: bytes) -> Answer | Coroutine[Any, Any, Answer]:
        if b"\x00" in raw:
            return R.NUL_REJECTED, Action.NONE
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Reply(500, "5.5.2", "Invalid UTF-8 in command"), Action.NONE
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        limit = self.limits.command_line
        if verb in ("MAIL", "RCPT"):
            limit += PARAM_LINE_ALLOWANCE
        elif verb == "AUTH":
            limit = SASL_LINE_LIMIT
        if len(raw) + 2 > limit:
            return R.LINE_TOO_LONG, Action.NONE
        handler = self._handlers.get(verb)
        if handler is None:
            if verb in ("GET", "POST", "HEAD", "CONNECT", "PUT"):
                # A web client or proxy abuse talking to the SMTP port: end it now.
                return Reply(421, "4.7.0", "This is an SMTP server, closing"), Action.CLOSE
            return Reply(500, "5.5.2", "Command unrecognized"), Action.NONE
        return handler(arg.strip(" "))

    # --- greeting commands ----------------------------------------------------
    def _hello(self, arg: str, esmtp: bool) -> Reply | None:
        if not arg or " " in arg:
            return Reply(501, "5.5.4", f"Syntax: {'EHLO' if esmtp else 'HELO'} hostname")
        self.helo = arg
        self.esmtp = esmtp
        self.transaction = None
        return None

    def cmd_ehlo(self, arg: str) -> tuple[Reply, Action]:
        if err := self._hello(arg, True):
            return err, Action.NONE
        lines = [f"{self.config.hostname} Hello {arg} [{self.conn.client_ip}]",
                 "PIPELINING", f"SIZE {self.limits.max_message_size}", "8BITMIME",
                 "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"]
        if self.conn.tls is None and self.conn.tls_available:
            lines.append("STARTTLS")
        mechanisms = self.sasl.offer.mechanisms(self.conn.tls is not None)
        if self.submission and mechanisms and self.account is None:
            lines.append("AUTH " + " ".join(mechanisms))
        lines.append("HELP")
        # RFC 2034 §3: no enhanced status codes on the EHLO response.
        return Reply(250, "", *lines), Action.NONE

    def cmd_helo(self, arg: str) -> tuple[Reply, Action]:
        if err := self._hello(arg, False):
            return err, Action.NONE
        return Reply(250, "", f"{self.config.hostname} Hello {arg} [{self.conn.client_ip}]"), \
            Action.NONE

    def cmd_starttls(self, arg: str) -> tuple[Reply, Action]:
        if arg:
            return Reply(501, "5.5.4", "Syntax: STARTTLS"), Action.NONE
        if self.conn.tls is not None:
            return Reply(503, "5.5.1", "TLS already active"), Action.NONE
        if not self.conn.tls_available:
            return Reply(502, "5.5.1", "STARTTLS not available"), Action.NONE
        if self.transaction or self.sasl.active:
            return Reply(503, "5.5.1", "STARTTLS not allowed during a transaction"), Action.NONE
        return Reply(220, "2.0.0", "Ready to start TLS"), Action.START_TLS

    # --- authentication (RFC 4954) --------------------------------------------
    async def cmd_auth(self, arg: str) -> tuple[Reply, Action]:
        if not self.submission:
            return Reply(503, "5.5.1", "Authentication not enabled on this port"), Action.NONE
        if not self.sasl.offer.allowed(self.conn.tls is not None):
            return R.TLS_REQUIRED, Action.NONE
        if not self.esmtp:
            return R.BAD_SEQUENCE_HELO if self.helo is None else \
                Reply(503, "5.5.1", "Send EHLO first"), Action.NONE
        if self.account:
            return Reply(503, "5.5.1", "Already authenticated"), Action.NONE
        if self.transaction:
            return Reply(503, "5.5.1", "AUTH not allowed during a mail transaction"), Action.NONE
        parts = arg.split()
        if not parts or len(parts) > 2:
            return Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"), Action.NONE
        initial = parts[1] if len(parts) == 2 else None
        return self._auth_reply(await self.sasl.begin(parts[0], initial)), Action.NONE

    async def _sasl_response(self, raw: bytes) -> Answer:
        return self._auth_reply(await self.sasl.respond(raw)), Action.NONE

    def _auth_reply(self, result: driver.Result) -> Reply:
        """The authentication driver's result in SMTP's words (RFC 4954 §4, §6)."""
        if isinstance(result, driver.Continue):
            return Reply(334, "", base64.b64encode(result.data).decode())
        if isinstance(result, driver.Authenticated):
            self.account = result.account
            self.events.emit(Event.AUTH_OK, self.id, ip=self.conn.client_ip, protocol="smtp",
                             mechanism=result.mechanism, account=self.account)
            return R.AUTH_OK
        if isinstance(result, driver.Rejected):
            return Reply(501, "5.5.2", "Malformed authentication exchange") \
                if result.malformed else R.AUTH_FAILED
        return _AUTH_ENDED[result]

    # --- the mail transaction ---------------------------------------------------
    @property
    def _no_transaction(self) -> Reply:
        """The 503 for RCPT/DATA/BDAT outside a transaction (RFC 5321 §4.1.4)."""
        return R.BAD_SEQUENCE_HELO if self.helo is None else R.BAD_SEQUENCE_MAIL

    def cmd_mail(self, arg: str) -> Answer | Coroutine[Any, Any, Answer]:
        if self.helo is None:
            return R.BAD_SEQUENCE_HELO, Action.NONE
        if self.submission and self.account is None:
            return R.AUTH_REQUIRED, Action.NONE
        if self.transaction is not None:
            return R.NESTED_MAIL, Action.NONE
        if self.accepted >= self.limits.max_messages_per_connection:
            return Reply(421, "4.7.0", "Too many messages in one connection, closing"), \
                Action.CLOSE
        try:
            path = parse_path_argument(arg, "FROM:", allow_null=True)
            txn = Transaction(path.address)
            read_mail_parameters(txn, path.params, self.esmtp, self.limits.max_message_size)
        except ParamError as e:
            return e.reply, Action.NONE
        if refused := submission.sender_syntax(txn.mail_from, txn.smtputf8):
            return R.for_sender(refused), Action.NONE
        if self.account and self.config.submission.enforce_sender and txn.mail_from:
            return self._mail_as(txn, self.account, txn.mail_from)
        self.transaction = txn
        return R.SENDER_OK, Action.NONE

    async def _mail_as(self, txn: Transaction, account: str, sender: Address) -> Answer:
        """MAIL of an authenticated user under enforce_sender: only as an address
        of theirs (a directory lookup, so awaited)."""
        if refused := await submission.account_sender(self.store, account, sender):
            self.events.emit(Event.SENDER_REJECTED, self.id, account=account,
                             mail_from=txn.reverse_path)
            return R.for_sender(refused), Action.NONE
        self.transaction = txn
        return R.SENDER_OK, Action.NONE

    async def cmd_rcpt(self, arg: str) -> Answer:
        txn = self.transaction
        if txn is None:
            return self._no_transaction, Action.NONE
        if txn.incoming is not None:
            return Reply(503, "5.5.1", "RCPT not allowed after BDAT"), Action.NONE
        try:
            path = parse_path_argument(arg, "TO:", allow_null=False)
            assert path.address is not None
            rcpt = Recipient(path.address, [])
            read_rcpt_parameters(rcpt, path.params, self.esmtp)
        except ParamError as e:
            return e.reply, Action.NONE
        address = rcpt.address
        targets = await submission.recipient(
            self.store, address, smtputf8=txn.smtputf8, authenticated=self.account is not None,
            size=txn.size, count=len(txn.recipients), limit=self.limits.max_recipients,
            campaigns=self.config.campaigns)
        if isinstance(targets, submission.Refused):
            reply = R.for_recipient(targets)
            self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip, code=reply.code,
                             reason=targets.reason, rcpt=str(address))
            return reply, Action.NONE
        rcpt.targets = targets
        if all(r.address.key != address.key for r in txn.recipients):
            txn.recipients.append(rcpt)
        return R.RECIPIENT_OK, Action.NONE

    # --- the rest ----------------------------------------------------------------
    def cmd_rset(self, arg: str) -> tuple[Reply, Action]:
        if arg:
            return Reply(501, "5.5.4", "Syntax: RSET"), Action.NONE
        self.transaction = None
        return R.OK, Action.NONE

    def cmd_noop(self, arg: str) -> tuple[Reply, Action]:
        return R.OK, Action.NONE

    def cmd_quit(self, arg: str) -> tuple[Reply, Action]:
        return R.BYE, Action.CLOSE

    def cmd_vrfy(self, arg: str) -> tuple[Reply, Action]:
        if not arg:
            return Reply(501, "5.5.4", "Syntax: VRFY address"), Action.NONE
        # RFC 5321 §3.5.3: 252 without saying whether the user exists.
        return Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt "
                                   "delivery"), Action.NONE

    def cmd_expn(self, arg: str) -> tuple[Reply, Action]:
        return Reply(502, "5.5.1", "EXPN not available"), Action.NONE

    def cmd_help(self, arg: str) -> tuple[Reply, Action]:
        return Reply(214, "2.0.0", "Commands: " + " ".join(sorted(self._handlers)),
                     "See RFC 5321"), Action.NONE


