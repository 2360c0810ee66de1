"""DATA and BDAT (RFC 5321 §4.1.1.4, RFC 3030): the message text arrives, is checked
as it passes, and once whole is received and handed to the delivery pipeline
(delivery/assemble.py): the session ends there. A mixin of SmtpSession."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..delivery.ids import message_id
from ..delivery.pipeline import Refusal, Rejection
from ..delivery.received import Client, Envelope, ReceivedMessage
from ..events.types import Event
from ..net.connection import Action
from ..smtpreply import Reply
from ..store.blobs import Content, Spool
from . import replies as R
from .framing import Chunk, MessageData, Problem, TextCheck

# RFC 5321 §4.2.3 452 / RFC 3463 4.3.1: the spool could not be written (disk full).
_STORAGE_FULL = Reply(452, "4.3.1", "Insufficient system storage, try again later")

# What the session gives for one input (a command, a message, a BDAT chunk): the reply
# (None: not yet, a BDAT chunk is answered once read) and what the transport does next.
Answer = tuple[Reply | None, Action]


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


class DataCommands:
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

    async def _end_of_data(self, event: MessageData) -> Answer:
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

    def _end_of_chunk(self, chunk: Chunk) -> Answer | Coroutine[Any, Any, Answer]:
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

    async def _accept(self, txn: Transaction, incoming: Incoming, problems) -> Answer:
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
        return ReceivedMessage(message_id(now), now, txn.envelope(), client, content,
                               long_lines)

    def _refused(self, refusal: Refusal, txn: Transaction) -> Reply:
        reply = R.for_refusal(refusal)
        if isinstance(refusal, Rejection):
            self.events.emit(Event.REJECTED, self.id, ip=self.conn.client_ip,
                             code=reply.code, reason=refusal.reason,
                             mail_from=txn.reverse_path)
        return reply


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
