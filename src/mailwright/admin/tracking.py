"""What a campaign recipient's click reaches (public/tracking.py maps HTTP onto it):
a pixel load, a followed link, an unsubscribe. Each checks its token
(delivery/campaigns/tokens.py: signed, so a token changed or not ours is None and
nothing is recorded), records the event and answers what the endpoint needs.

`first`: the first `opened` (`clicked`, `unsubscribed`) of a recipient of a message
still in the event log. HTTP is served by one process (workers.py), so a bounded
in-memory set of what was seen covers the events not yet written (they ride along
with the store's next batch); what it forgot, or a restart, is looked up in the event
log (one indexed query on message_id).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..delivery.campaigns import keys, machine, tokens, unsubscribe
from ..delivery.campaigns.tokens import Token
from ..delivery.suppression import UNSUBSCRIBE
from ..events.types import Event
from .context import Context
from .errors import AdminError, Invalid

log = logging.getLogger("mailwright.campaigns")

SEEN_LIMIT = 100_000           # (kind, message, recipient) remembered in memory
METHODS = ("one-click", "page")

# The suppression list's add (admin/suppressions.py Suppressions.add).
Suppress = Callable[..., Awaitable[object]]


@dataclass(frozen=True)
class Unsubscribed:
    token: Token
    first: bool                 # False: this recipient had already unsubscribed here


class Tracking:
    def __init__(self, ctx: Context, suppress: Suppress):
        self.ctx = ctx
        self.suppress = suppress
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._looking: dict[tuple[str, str, str], asyncio.Future] = {}

    @property
    def ring(self) -> keys.KeyRing:
        return keys.ring_for(self.ctx.config)

    async def rotate_key(self) -> str:
        """A new signing key first in data_dir/campaigns/keys (older ones still verify);
        its id. A running server signs with it once restarted."""
        try:
            return await asyncio.to_thread(keys.rotate, self.ctx.config)
        except keys.KeyRingError as e:
            raise Invalid(str(e)) from None

    def token(self, text: str, kind: str) -> Token | None:
        """The valid token of this kind that text is, else None (the endpoint's 404)."""
        return tokens.decode(self.ring, text, kind)

    async def opened(self, token: Token, user_agent: str, method: str = "GET") -> None:
        ua, is_machine = machine.classify(user_agent, method)
        first = await self._first(Event.OPENED, token)
        self.ctx.events.emit(Event.OPENED, None, token.message_id, rcpt=token.rcpt,
                             domain=token.domain, first=first, machine=is_machine, ua=ua,
                             tag=token.tag or None)

    async def clicked(self, token: Token, user_agent: str, method: str = "GET") -> None:
        ua, is_machine = machine.classify(user_agent, method)
        first = await self._first(Event.CLICKED, token)
        self.ctx.events.emit(Event.CLICKED, None, token.message_id, rcpt=token.rcpt,
                             domain=token.domain, url=token.url, first=first,
                             machine=is_machine, ua=ua, tag=token.tag or None)

    async def unsubscribe(self, token: Token, method: str) -> Unsubscribed:
        """The recipient on the sending domain's suppression list (of the campaign only
        with `[campaigns] unsubscribe_scope = "campaign"`), then the event (once per
        recipient of a message)."""
        if method not in METHODS:
            raise ValueError(f"unknown unsubscribe method {method!r}")
        try:
            await self.suppress(token.domain, token.rcpt,
                                campaign=unsubscribe.scope(self.ctx.config.campaigns, token),
                                reason=UNSUBSCRIBE, source=method)
        except AdminError as e:
            # The domain was removed since: it sends nothing more, nothing to stop.
            log.warning("unsubscribe of %s from %s not recorded: %s", token.rcpt,
                        token.domain, e)
        first = await self._first(Event.UNSUBSCRIBED, token)
        if first:
            unsubscribe.unsubscribed(self.ctx.events, None, token, method)
        return Unsubscribed(token, first)

    async def _first(self, event: Event, token: Token) -> bool:
        key = (event.value, token.message_id, token.rcpt.lower())
        if key in self._seen:
            self._seen.move_to_end(key)
            if (looking := self._looking.get(key)) is not None:
                # The first is still being looked up: its event goes first.
                await asyncio.shield(looking)
            return False
        self._remember(key)
        looking = self._looking[key] = asyncio.get_running_loop().create_future()
        try:
            return not await unsubscribe.recorded(self.ctx.store, event, token)
        finally:
            del self._looking[key]
            looking.set_result(None)

    def _remember(self, key: tuple[str, str, str]) -> None:
        self._seen[key] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
