"""Which stages run for which listener, in which order."""

from __future__ import annotations

import dataclasses

from mailwright.delivery.assemble import Parts, pipeline_for
from mailwright.delivery.stages.feedback import FeedbackStage
from mailwright.delivery.stages.inbound_checks import CheckStage
from mailwright.delivery.stages.relay_format import RelayFormatStage
from mailwright.delivery.stages.sign import SealStage, SignStage
from mailwright.delivery.stages.store import StoreStage
from mailwright.delivery.stages.suppress import SuppressStage
from mailwright.delivery.stages.trace import TraceStage
from mailwright.delivery.stages.tracking import TrackingStage
from mailwright.delivery.stages.unsubscribe_mail import UnsubscribeMailStage

from ..session_harness import make_config
from .helpers import Events


class Stub:
    authserv_id = "mx.example.test"


def kinds(role: str, **parts) -> list[type]:
    p = Parts(make_config(), object(), Events().log, **parts)
    return _flat(pipeline_for(role, p).stages)


def _flat(stages) -> list[type]:
    """The stages in the order they run: the tracking stage runs the rest itself (once,
    or once per recipient's copy of campaign mail)."""
    out: list[type] = []
    for stage in stages:
        out.append(type(stage))
        if isinstance(stage, TrackingStage):
            out += _flat(stage.rest.stages)
    return out


def test_mx_checks_stamps_formats_seals_stores():
    assert kinds("mx", inbound=Stub(), outbound=Stub()) == [
        CheckStage, UnsubscribeMailStage, TraceStage, RelayFormatStage, SealStage,
        StoreStage]


def test_submission_stamps_tracks_suppresses_formats_signs_stores():
    # Never a suppression check for mail from other servers (the mx pipeline above).
    for role in ("submission", "submissions"):
        assert kinds(role, inbound=Stub(), outbound=Stub()) == [
            TraceStage, UnsubscribeMailStage, TrackingStage, SuppressStage,
            RelayFormatStage, SignStage, StoreStage]


def test_without_checks_or_keys_those_stages_are_left_out():
    assert kinds("mx") == [UnsubscribeMailStage, TraceStage, RelayFormatStage, StoreStage]
    assert kinds("submission") == [TraceStage, UnsubscribeMailStage, TrackingStage,
                                   SuppressStage, RelayFormatStage, StoreStage]


def test_a_feedback_address_adds_the_complaint_stage_to_mx_only():
    cfg = make_config()
    cfg = dataclasses.replace(cfg, campaigns=dataclasses.replace(
        cfg.campaigns, feedback_address="fbl@example.test"))

    def flat(role):
        return _flat(pipeline_for(role, Parts(cfg, object(), Events().log,
                                              inbound=Stub())).stages)
    assert flat("mx") == [CheckStage, FeedbackStage, UnsubscribeMailStage, TraceStage,
                          RelayFormatStage, StoreStage]
    assert FeedbackStage not in flat("submission")


def test_no_unsubscribe_local_part_no_mailto_stage():
    cfg = make_config()
    cfg = dataclasses.replace(cfg, campaigns=dataclasses.replace(
        cfg.campaigns, unsubscribe_local_part=""))
    for role in ("mx", "submission"):
        assert UnsubscribeMailStage not in _flat(
            pipeline_for(role, Parts(cfg, object(), Events().log)).stages)


def test_each_connection_gets_its_own_checks_state():
    p = Parts(make_config(), object(), Events().log, inbound=Stub())
    first, second = pipeline_for("mx", p).stages[0], pipeline_for("mx", p).stages[0]
    assert first.connection is not second.connection
