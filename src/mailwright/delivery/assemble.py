"""Which stages run, in which order, for each listener role: the one place to add one.

Order matters: checks see the message as it came; trace fields are stamped before
anything that rewrites the text; relayed copies are re-encoded before they are signed
or sealed, so the signatures cover what is sent; storing comes last, and only after it
does the client hear 250.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..events.log import EventLog
from ..store.base import MailStore
from ..trust.inbound import InboundChecks
from ..trust.outbound import OutboundSigner
from .pipeline import Pipeline, Stage
from .stages.feedback import FeedbackStage
from .stages.inbound_checks import CheckStage
from .stages.relay_format import RelayFormatStage
from .stages.sign import SealStage, SignStage
from .stages.store import StoreStage
from .stages.suppress import SuppressStage
from .stages.trace import TraceStage
from .stages.tracking import TrackingStage
from .stages.unsubscribe_mail import UnsubscribeMailStage


@dataclass(frozen=True)
class Parts:
    """What the stages are built from: the process's shared services (smtp/server.py
    passes app.py's), one pipeline made of them per connection."""
    config: Config
    store: MailStore
    events: EventLog
    inbound: InboundChecks | None = None       # None: no authentication checks
    outbound: OutboundSigner | None = None     # None: no DKIM signing / ARC sealing
    on_queued: Callable[[], None] | None = None


def mx_pipeline(s: Parts) -> Pipeline:
    """Mail from other servers: checked, complaints (feedback reports) and mailto:
    unsubscribes recorded, stamped, forwards sealed, stored or queued."""
    stages: list[Stage] = []
    if s.inbound is not None:
        stages.append(CheckStage(s.inbound, s.events))
    if s.config.campaigns.feedback_address:
        stages.append(FeedbackStage(s.store, s.events, s.config.campaigns))
    if s.config.campaigns.unsubscribe_local_part:
        stages.append(UnsubscribeMailStage(s.config, s.store, s.events))
    stages.append(TraceStage(s.config.hostname))
    stages.append(RelayFormatStage())
    if s.outbound is not None:
        stages.append(SealStage(s.outbound))
    stages.append(StoreStage(s.store, s.events, s.on_queued))
    return Pipeline(stages)


def submission_pipeline(s: Parts) -> Pipeline:
    """Mail our users submit: stamped, mailto: unsubscribes recorded, campaign mail
    tracked, suppressed recipients dropped, DKIM-signed, stored or queued."""
    # Suppression first in the rest: the campaign (the tag) is final there, and neither
    # a suppressed copy nor a wholly suppressed message is formatted or signed for nothing.
    rest: list[Stage] = [SuppressStage(s.store, s.events), RelayFormatStage()]
    if s.outbound is not None:
        rest.append(SignStage(s.outbound))
    rest.append(StoreStage(s.store, s.events, s.on_queued))
    # Campaign mail (only authenticated senders', opted in) is rewritten per recipient
    # and each copy goes through the rest: before relay formatting and signing, so both
    # cover the rewrite and the List-Unsubscribe fields (RFC 8058 §4).
    first: list[Stage] = [TraceStage(s.config.hostname)]
    if s.config.campaigns.unsubscribe_local_part:
        # A user's client sending the mailto: unsubscribe of mail it got through us.
        first.append(UnsubscribeMailStage(s.config, s.store, s.events))
    return Pipeline([*first, TrackingStage(s.config, s.events, Pipeline(rest))])


def pipeline_for(role: str, parts: Parts) -> Pipeline:
    """A new pipeline for one connection (the checks keep per-connection results)."""
    if role == "mx":
        return mx_pipeline(parts)
    return submission_pipeline(parts)
