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
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..auth import driver, sasl
from ..auth.driver import Authenticator
from ..auth.lockout import AuthLockout
from ..config import Config
from ..delivery import quota, recipients
from ..delivery.assemble import Parts, pipeline_for
from ..delivery.pipeline import Pipeline, Refusal, Rejection
from ..delivery.received import Client, Envelope, ReceivedMessage, Recipient
from ..delivery.recipients import Target
from ..events.log import EventLog
from ..events.types import Event
from ..net.connection import Action, LineSession, TLSInfo
from ..store.base import MailStore
from ..store.blobs import Content, Spool
from . import replies as R
from .framing import (
    Chunk,
    CommandLine,
    Framer,
    LineTooLong,
    MessageData,
    Mode,
    Problem,
    TextCheck,
)
from .params import ParamError, PathArgument, decode_xtext, parse_path_argument
from .replies import Reply

# RFC 4954 §4: an AUTH command line and a SASL response line may be 12288 octets.
SASL_LINE_LIMIT = 12288
# RFC 1870 §3, RFC 3461 §4, RFC 4954 §5 let MAIL/RCPT parameters lengthen the line
# beyond 512 octets; this covers SIZE, BODY, SMTPUTF8, RET, ENVID (100), AUTH and
# ORCPT (500) with their xtext expansion.
PARAM_LINE_ALLOWANCE = 1536
_NOTIFY_VALUES = {"SUCCESS", "FAILURE", "DELAY"}
# RFC 5321 §4.2.3 452 / RFC 3463 4.3.1: the spool could not be written (disk full).
_STORAGE_FULL = Reply(452, "4.3.1", "Insufficient system storage, try again later")
# RFC 4954 §4, §6: the replies to exchanges that end before any credentials are checked.
_AUTH_ENDED = {
    driver.Ended.LOCKED: Reply(454, "4.7.0", "Too many failed authentications; try again later"),
    driver.Ended.UNSUPPORTED: Reply(504, "5.5.4", "Unrecognized authentication mechanism"),
    driver.Ended.INVALID_INITIAL: Reply(501, "5.5.2", "Invalid base64 in initial response"),
    driver.Ended.INVALID_RESPONSE: Reply(501, "5.5.2",
                                         "Invalid base64 in authentication response"),
    driver.Ended.CANCELLED: Reply(501, "5.0.0", "Authentication canceled"),
}


Outcome = tuple[Reply | None, Action]     # what one command (or message, or chunk) gives


class Incoming:
    """One transaction's message text as it arrives (after DATA, or every BDAT
    chunk): checked on the fly and spooled (memory, then a file: store/blobs.py),
    so neither the framer nor the session ever holds a large message whole."""

    def __init__(self, check: TextCheck, spool: Spool):
        self.check = check
        self.spool = spool

    @property
    def size(self) -> int:
        return self.spool.size

    def write(self, text: bytes) -> None:
        self.check.feed(text)
        self.spool.write(text)

    async def content(self) -> Content:
        if self.spool.spilled:            # may read the file (see Spool.content)
            return await asyncio.to_thread(self.spool.content)
        return self.spool.content()


@dataclass
class Transaction(Envelope):
    """A mail transaction (RFC 5321 §3.3): the envelope as MAIL and RCPT build it, and
    the message text as it arrives."""
    incoming: Incoming | None = None     # set at DATA or at the first BDAT

    def envelope(self) -> Envelope:
        return Envelope(self.mail_from, self.body, self.smtputf8, self.ret, self.envid,
                        self.recipients, self.size)


@dataclass
class Connection:
    """Facts about the transport the session runs on."""
    role: str                  # mx | submission | submissions
    client_ip: str
    client_port: int = 0
    tls: TLSInfo | None = None
    tls_available: bool = True


class SmtpSession(LineSession):
    def __init__(self, conn: Connection, config: Config, store: MailStore,
                 lockout: AuthLockout, events: EventLog,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 pipeline: Pipeline | None = None):
        self.conn = conn
        self.config = config
        self.limits = config.limits
        self.store = store
        self.lockout = lockout
        self.events = events
        self.sleep = sleep
        # What happens to a message once received (delivery/assemble.py); by default
        # stamped and stored, with no checks or signatures.
        self.pipeline = pipeline or pipeline_for(conn.role, Parts(config, store, events))
        self.id = f"{_PROCESS_TAG}{next(_serial):X}"
        self.framer = Framer(SASL_LINE_LIMIT + 2, self.limits.max_message_size)
        self.helo: str | None = None
        self.esmtp = False
        self.account: str | None = None
        self.transaction: Transaction | None = None
        self.sasl = Authenticator(sasl.Offer("smtp"), store, lockout, events,
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

    def _emit(self, out: bytearray, outcome: Outcome) -> Action:
        reply, action = outcome
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

    def _dispatch(self, event) -> Outcome | Coroutine[Any, Any, Outcome]:
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

    def _command(self, raw: bytes) -> Outcome | Coroutine[Any, Any, Outcome]:
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

    async def _sasl_response(self, raw: bytes) -> Outcome:
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

    def cmd_mail(self, arg: str) -> tuple[Reply, Action]:
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
            txn = self._mail_params(path)
        except ParamError as e:
            return e.reply, Action.NONE
        if txn.mail_from and txn.mail_from.needs_smtputf8 and not txn.smtputf8:
            return Reply(553, "5.6.7", "Non-ASCII sender address needs the SMTPUTF8 parameter"), \
                Action.NONE
        if (self.account and self.config.submission.enforce_sender and txn.mail_from
                and not recipients.may_send_as(self.store, self.account, txn.mail_from)):
            self.events.emit(Event.SENDER_REJECTED, self.id, account=self.account,
                             mail_from=txn.reverse_path)
            return Reply(553, "5.7.1",
                         f"Sender address rejected: not owned by {self.account}"), Action.NONE
        self.transaction = txn
        return R.SENDER_OK, Action.NONE

    def _mail_params(self, path: PathArgument) -> Transaction:
        txn = Transaction(path.address)
        if path.params and not self.esmtp:
            raise ParamError(Reply(555, "5.5.4", "Parameters need EHLO"))
        for key, value in path.params.items():
            if key == "SIZE":                                        # RFC 1870
                if not value or not value.isdigit():
                    raise ParamError(Reply(501, "5.5.4", "Invalid SIZE value"))
                if int(value) > self.limits.max_message_size:
                    raise ParamError(Reply(552, "5.3.4",
                                           "Message size exceeds fixed maximum message size"))
                txn.size = int(value)
            elif key == "BODY":                                      # RFC 6152
                body = (value or "").upper()
                if body not in ("7BIT", "8BITMIME"):
                    raise ParamError(Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME"))
                txn.body = body
            elif key == "SMTPUTF8":                                  # RFC 6531 §3.4
                if value is not None:
                    raise ParamError(Reply(501, "5.5.4", "SMTPUTF8 takes no value"))
                txn.smtputf8 = True
            elif key == "RET":                                       # RFC 3461 §4.3
                ret = (value or "").upper()
                if ret not in ("FULL", "HDRS"):
                    raise ParamError(Reply(501, "5.5.4", "RET must be FULL or HDRS"))
                txn.ret = ret
            elif key == "ENVID":                                     # RFC 3461 §4.4
                try:
                    envid = decode_xtext(value or "")
                except ValueError:
                    envid = ""
                if not envid or len(value or "") > 100:
                    raise ParamError(Reply(501, "5.5.4", "Invalid ENVID value"))
                txn.envid = envid
            elif key == "AUTH":
                # RFC 4954 §5: the claimed original submitter. We are not relaying
                # on behalf of a trusted MTA, so it is accepted and not used.
                pass
            else:
                raise ParamError(Reply(555, "5.5.4", f"Unsupported parameter {key}"))
        return txn

    def cmd_rcpt(self, arg: str) -> tuple[Reply, Action]:
        txn = self.transaction
        if txn is None:
            return self._no_transaction, Action.NONE
        if txn.incoming is not None:
            return Reply(503, "5.5.1", "RCPT not allowed after BDAT"), Action.NONE
        try:
            path = parse_path_argument(arg, "TO:", allow_null=False)
            rcpt = self._rcpt_params(path)
        except ParamError as e:
            return e.reply, Action.NONE
        address = rcpt.address
        if address.needs_smtputf8 and not txn.smtputf8:
            return Reply(553, "5.6.7",
                         "Non-ASCII recipient address needs SMTPUTF8 on MAIL FROM"), Action.NONE
        if len(txn.recipients) >= self.limits.max_recipients:
            return R.TOO_MANY_RCPTS, Action.NONE
        targets = recipients.resolve(self.store, address)
        if targets is None:
            # Not one of our domains: relaying is only for authenticated users.
            if self.account is None:
                self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip, code=550,
                                 reason="relay-denied", rcpt=str(address))
                return R.RELAY_DENIED, Action.NONE
            targets = [Target(str(address))]
        elif not targets:
            self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip, code=550,
                             reason="unknown-user", rcpt=str(address))
            return R.NO_SUCH_USER, Action.NONE
        # RFC 9208 §4 / RFC 3463 4.2.2: a full mailbox is a temporary failure.
        if quota.any_over_quota(self.store, targets, txn.size):
            self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip, code=452,
                             reason="over-quota", rcpt=str(address))
            return R.MAILBOX_FULL, Action.NONE
        rcpt.targets = targets
        if all(r.address.key != address.key for r in txn.recipients):
            txn.recipients.append(rcpt)
        return R.RECIPIENT_OK, Action.NONE

    def _rcpt_params(self, path: PathArgument) -> Recipient:
        assert path.address is not None
        rcpt = Recipient(path.address, [])
        if path.params and not self.esmtp:
            raise ParamError(Reply(555, "5.5.4", "Parameters need EHLO"))
        for key, value in path.params.items():
            if key == "NOTIFY":                                      # RFC 3461 §4.1
                words = (value or "").upper().split(",")
                if words != ["NEVER"] and not (set(words) <= _NOTIFY_VALUES
                                               and len(set(words)) == len(words)):
                    raise ParamError(Reply(501, "5.5.4",
                                           "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY"))
                rcpt.notify = ",".join(words)
            elif key == "ORCPT":                                     # RFC 3461 §4.2
                addr_type, sep, xtext = (value or "").partition(";")
                try:
                    original = decode_xtext(xtext)
                except ValueError:
                    original = ""
                if not sep or not addr_type or not original:
                    raise ParamError(Reply(501, "5.5.4", "Invalid ORCPT value"))
                rcpt.orcpt = f"{addr_type};{original}"
            else:
                raise ParamError(Reply(555, "5.5.4", f"Unsupported parameter {key}"))
        return rcpt

    def cmd_data(self, arg: str) -> tuple[Reply, Action]:
        if arg:
            return Reply(501, "5.5.4", "Syntax: DATA"), Action.NONE
        txn = self.transaction
        if txn is None:
            return self._no_transaction, Action.NONE
        if txn.incoming is not None:
            return Reply(503, "5.5.1", "DATA not allowed after BDAT"), Action.NONE
        if not txn.recipients:
            return R.NO_VALID_RCPTS, Action.NONE
        txn.incoming = self._incoming()
        self.framer.start_data(txn.incoming.write)
        return R.START_DATA, Action.NONE

    def _incoming(self) -> Incoming:
        return Incoming(TextCheck(self.limits.text_line), self.store.spool())

    async def _end_of_data(self, event: MessageData) -> Outcome:
        txn = self.transaction
        self.transaction = None
        assert txn is not None and txn.incoming is not None
        problems = txn.incoming.check.finish()
        if event.too_big:
            problems.add(Problem.TOO_BIG)
        return await self._accept(txn, txn.incoming, problems)

    def cmd_bdat(self, arg: str) -> tuple[Reply | None, Action]:
        # RFC 3030 §2: BDAT size [LAST]. The chunk follows whatever we answer,
        # so it is always read (and discarded on error) before the reply.
        parts = arg.split()
        if not parts or len(parts) > 2 or not parts[0].isdigit() or \
                (len(parts) == 2 and parts[1].upper() != "LAST"):
            # Without a valid size the stream cannot be resynchronised.
            return Reply(501, "5.5.4", "Syntax: BDAT size [LAST]; closing"), Action.CLOSE
        size, last = int(parts[0]), len(parts) == 2
        txn = self.transaction
        error = None
        if txn is None:
            error = self._no_transaction
        elif not txn.recipients:
            error = R.NO_VALID_RCPTS
        sink = None
        if txn is not None and error is None:
            if txn.incoming is None:
                txn.incoming = self._incoming()
            if txn.incoming.size + size <= self.limits.max_message_size:
                sink = txn.incoming.write
        self.bdat_pending = (last, error)
        self.framer.start_bdat(size, sink)   # None: read the chunk and drop it
        return None, Action.NONE          # answered once the chunk is read

    def _end_of_chunk(self, chunk: Chunk) -> Outcome | Coroutine[Any, Any, Outcome]:
        assert self.bdat_pending is not None
        last, error = self.bdat_pending
        self.bdat_pending = None
        if error:
            return error, Action.NONE
        txn = self.transaction
        assert txn is not None and txn.incoming is not None
        if not chunk.kept:
            # RFC 3030 §2: the chunk was read all the same; the transaction is over.
            self.transaction = None
            self.events.emit(Event.REJECTED, self.id, code=552, reason="too-big")
            return Reply(552, "5.3.4", "Message size exceeds fixed maximum message size"), \
                Action.NONE
        if not last:
            return Reply(250, "2.0.0", f"{chunk.size} octets received"), Action.NONE
        self.transaction = None
        return self._accept(txn, txn.incoming, txn.incoming.check.finish())

    async def _accept(self, txn: Transaction, incoming: Incoming, problems) -> Outcome:
        """The reply after DATA / BDAT LAST: the message as transmitted is checked here,
        then it is received and the delivery pipeline takes it (delivery/assemble.py).

        A large message is a Spooled one (header in memory, the rest in its spool file):
        the pipeline prepends fields without copying it and reads it whole only where
        every octet is needed at once, in a thread."""
        reject = _content_rejection(problems)
        if reject:
            self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip, code=reject.code,
                             reason=sorted(p.value for p in problems)[0],
                             mail_from=txn.reverse_path)
            return reject, Action.NONE
        if incoming.spool.error is not None:
            self.events.emit(Event.STORE_ERROR, self.id, error=repr(incoming.spool.error))
            return _STORAGE_FULL, Action.NONE
        msg = self._received(txn, await incoming.content(), incoming.check.long_lines)
        try:
            await self.pipeline.run(msg)
        except Refusal as refusal:
            return self._refused(refusal, txn), Action.NONE
        self.accepted += 1
        return Reply(250, "2.0.0", f"OK: queued as {msg.id}"), Action.NONE

    def _received(self, txn: Transaction, content: Content, long_lines: bool
                  ) -> ReceivedMessage:
        now = time.time()
        client = Client(self.id, self.conn.client_ip, self.helo or "", self.esmtp,
                        self.conn.tls, self.account, self.conn.role)
        return ReceivedMessage(_message_id(now), now, txn.envelope(), client, content,
                               long_lines)

    def _refused(self, refusal: Refusal, txn: Transaction) -> Reply:
        reply = R.for_refusal(refusal)
        if isinstance(refusal, Rejection):
            self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip,
                             code=reply.code, reason=refusal.reason,
                             mail_from=txn.reverse_path)
        return reply

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


_PROCESS_TAG = secrets.token_hex(2).upper()
_serial = itertools.count()


def _message_id(now: float) -> str:
    # Time-ordered and unique: microseconds, a per-process random tag (two nodes,
    # or a restart within the same microsecond) and a per-process counter.
    return f"{int(now * 1_000_000):X}{_PROCESS_TAG}{next(_serial) & 0xFFFF:04X}"


def _content_rejection(problems) -> Reply | None:
    if Problem.TOO_BIG in problems:
        return Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
    if Problem.NUL in problems:
        return Reply(554, "5.6.0", "Message contains NUL characters")
    if Problem.BARE_NEWLINE in problems:
        return Reply(554, "5.6.0", "Message contains a bare CR or LF; lines must end with "
                                   "CRLF (RFC 5321 §2.3.8)")
    if Problem.LONG_LINE in problems:
        # Only with limits.text_line set: by default long lines are accepted.
        return Reply(554, "5.6.0", "Message contains a line longer than the limit of "
                                   "1000 octets (RFC 5321 §4.5.3.1.6)")
    return None
