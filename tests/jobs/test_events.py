"""The event feed: one NATS subscription per connection, fanned out by event type."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import nats
import pytest
from nats.aio.msg import Msg

from core.settings import Settings
from jobs import events
from jobs.events import (
    CHECK_CREATED,
    DEVICE_CREATED,
    DEVICE_EVENTS,
    INSTALLATION_HEADER,
    ORIGIN_HEADER,
    TYPE_HEADER,
    EventPublisher,
    Provenance,
    decode_message,
    encode_event,
    event_feed,
    own_event_text,
    provenance,
)
from tests.helpers import wait_for

OURS, THEIRS = "a1a1a1a1-0000-4000-8000-000000000001", "b2b2b2b2-0000-4000-8000-000000000002"


async def test_listeners_share_one_subscription_and_get_their_types(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    publisher_nc = await nats.connect(settings.nats_url)
    try:
        feed = event_feed(nc, settings.events_subject, OURS)
        assert event_feed(nc, settings.events_subject, OURS) is feed
        everything: list[Msg] = []
        devices: list[Msg] = []
        remove_all = await feed.listen(everything.append)
        remove_devices = await feed.listen(devices.append, DEVICE_EVENTS)
        assert len(nc._subs) == 1  # one subscription, however many listeners

        events = EventPublisher(publisher_nc, settings.events_subject, "test", OURS)
        await events.publish(CHECK_CREATED, {"run_key": "r"})
        await events.publish(DEVICE_CREATED, {"id": 1})
        await publisher_nc.publish(settings.events_subject, b"from outside")
        await publisher_nc.flush()

        async def all_arrived() -> bool:
            return len(everything) == 3

        await wait_for(all_arrived, what="three messages")
        # Ours of another type are skipped; one from outside (no type) reaches everyone.
        assert [m.data for m in devices] == [everything[1].data, b"from outside"]

        await remove_devices()
        assert feed.listeners == 1 and len(nc._subs) == 1
        await remove_all()
        assert feed.listeners == 0 and not nc._subs  # the last one out unsubscribes
    finally:
        await nc.close()
        await publisher_nc.close()


async def test_a_failing_listener_does_not_stop_the_others(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        feed = event_feed(nc, settings.events_subject, OURS)
        got: list[bytes] = []

        def broken(msg: Msg) -> None:
            raise RuntimeError("boom")

        remove_broken = await feed.listen(broken)
        remove_ok = await feed.listen(lambda m: got.append(m.data))
        await nc.publish(settings.events_subject, b"one")
        await nc.publish(settings.events_subject, b"two")

        async def both() -> bool:
            return len(got) == 2

        await wait_for(both, what="both messages")
        await remove_broken()
        await remove_ok()
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({ORIGIN_HEADER: "w", INSTALLATION_HEADER: OURS}, Provenance.OURS),
        ({ORIGIN_HEADER: "w", INSTALLATION_HEADER: THEIRS}, Provenance.FOREIGN),
        # A fleetprobe before installation ids (a rolling upgrade): taken as ours.
        ({ORIGIN_HEADER: "w"}, Provenance.LEGACY),
        ({ORIGIN_HEADER: "w", INSTALLATION_HEADER: ""}, Provenance.LEGACY),
        # Not fleetprobe's, whatever else it says: relayed as nats.inbound.
        ({INSTALLATION_HEADER: THEIRS, TYPE_HEADER: CHECK_CREATED}, Provenance.OUTSIDE),
        ({ORIGIN_HEADER: ""}, Provenance.OUTSIDE),
        ({}, Provenance.OUTSIDE),
        (None, Provenance.OUTSIDE),
    ],
)
def test_the_provenance_of_a_message_is_read_from_its_headers(
    headers: dict[str, str] | None, expected: Provenance
) -> None:
    assert provenance(headers, OURS) is expected


def test_an_event_publisher_needs_its_installation() -> None:
    with pytest.raises(ValueError, match="installation"):
        EventPublisher(None, "items.updates", "w", "")  # type: ignore[arg-type]


async def test_the_feed_drops_another_installations_events_and_keeps_the_rest(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Two installations on one subject: each event carries its installation, the feed of
    one drops the other's (counted, a DEBUG line each), keeps its own, an older
    fleetprobe's (no installation header) and outside messages (nats.inbound)."""
    nc = await nats.connect(settings.nats_url)
    other_nc = await nats.connect(settings.nats_url)
    try:
        feed = event_feed(nc, settings.events_subject, OURS)
        assert event_feed(nc, settings.events_subject, THEIRS) is not feed
        got: list[Msg] = []
        remove = await feed.listen(got.append)
        ours = EventPublisher(other_nc, settings.events_subject, "a-worker", OURS)
        theirs = EventPublisher(other_nc, settings.events_subject, "b-worker", THEIRS)
        caplog.set_level("DEBUG", logger="jobs.events")
        await theirs.publish(CHECK_CREATED, {"device_id": 1, "run_key": "b:1"})
        await ours.publish(CHECK_CREATED, {"device_id": 1, "run_key": "a:1"})
        await theirs.publish(DEVICE_CREATED, {"id": 1, "name": "b's"})
        old = encode_event(DEVICE_CREATED, {"id": 2, "name": "old worker's"})
        await other_nc.publish(
            settings.events_subject, old, headers={ORIGIN_HEADER: "w", TYPE_HEADER: DEVICE_CREATED}
        )
        await other_nc.publish(settings.events_subject, b'{"from": "outside"}')
        await other_nc.flush()

        async def three_arrived() -> bool:  # the outside one last: the rest came before
            return len(got) == 3

        await wait_for(three_arrived, what="three messages")
        seen = [decode_message(m.data, m.headers) for m in got]
        assert seen == [
            {"type": CHECK_CREATED, "payload": {"device_id": 1, "run_key": "a:1"}},
            {"type": DEVICE_CREATED, "payload": {"id": 2, "name": "old worker's"}},
            {"type": "nats.inbound", "payload": {"from": "outside"}},
        ]
        assert (feed.foreign, feed.legacy) == (2, 1)
        said = [r for r in caplog.records if "another installation" in r.getMessage()]
        assert len(said) == 2
        assert all(r.levelname == "DEBUG" and THEIRS in r.getMessage() for r in said)
        await remove()
    finally:
        await nc.close()
        await other_nc.close()


def test_own_events_pass_through_as_the_text_they_were_published_as() -> None:
    data = encode_event(CHECK_CREATED, {"device_id": 3, "status_up": True})
    ours = {ORIGIN_HEADER: "w", TYPE_HEADER: CHECK_CREATED}
    assert own_event_text(data, ours) == (CHECK_CREATED, data.decode())
    assert own_event_text(data, {TYPE_HEADER: CHECK_CREATED}) is None  # not from fleetprobe
    assert own_event_text(data, None) is None
    assert own_event_text(b"not an event", ours) is None  # headers lie: decoded the slow way
    assert own_event_text(data, ours | {TYPE_HEADER: DEVICE_CREATED}) is None


def test_every_event_type_constant_is_in_the_registry() -> None:
    """A type declared as a plain string would be refused by the WebSocket filter and left
    out of the spec: declare it with ``event_type(...)``."""
    names = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", value)
    }
    assert names - {"tick", "nats.inbound"}  # the scan finds the constants at all
    assert names <= set(events.EVENT_TYPES)
    with pytest.raises(ValueError, match="registered twice"):
        events.event_type(CHECK_CREATED, "again")


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"at": datetime(2026, 1, 1, tzinfo=UTC)}, '{"at":"2026-01-01T00:00:00Z"}'),
        (
            {"at": datetime(2026, 1, 1, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=1)))},
            '{"at":"2026-01-01T00:30:00.000005Z"}',
        ),
        ({"n": Decimal("1.5")}, '{"n":"1.5"}'),
    ],
)
def test_event_times_are_encoded_utc_with_z(payload: dict[str, object], text: str) -> None:
    assert encode_event("x.y", payload) == b'{"type":"x.y","payload":' + text.encode() + b"}"
