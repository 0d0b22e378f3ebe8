"""Topic routes: patterns with variables map many devices to meters (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collectors.mqtt.routing import TopicRouter
from core.config import MqttRoute, parse_site
from core.errors import ConfigError
from epcmon.collecting import Shard


def site(**mqtt: object):
    return parse_site(
        {
            "site": {"id": "s", "name": "S", "latitude": 31, "longitude": 116},
            "mqtt": {
                "routes": {
                    "plugs": {
                        "pattern": "b/{floor}/tele/{device}/SENSOR",
                        "meter": "PLUG-{floor}-{device}",
                        "format": "f",
                    }
                },
                **mqtt,
            },
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
            "payload_formats": {
                "f": {"fields": [{"pointer": "/p", "quantity": "power", "unit": "W"}]}
            },
            "meters": [
                {
                    "id": "PLUG-3F-c1",
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"route": "plugs"},
                },
                {
                    "id": "PLUG-2F-c2",
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"route": "plugs"},
                },
                {
                    "id": "E-1",
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"topic": "b/e1", "format": "f"},
                },
            ],
        }
    )


ROUTE = MqttRoute(
    pattern="b/{floor}/tele/{device}/SENSOR", meter="PLUG-{floor}-{device}", format="f"
)


@pytest.mark.parametrize(
    ("topic", "meter"),
    [
        ("b/3F/tele/c1/SENSOR", "PLUG-3F-c1"),
        ("b/3F/tele/c1/STATE", None),
        ("b/3F/tele/c1", None),
        ("b//tele/c1/SENSOR", None),  # an empty level is not a value
        ("x/3F/tele/c1/SENSOR", None),
    ],
)
def test_route_match(topic, meter):
    assert ROUTE.match(topic) == meter


def test_route_inverse_and_subscription():
    r = MqttRoute(pattern="tele/{device}/SENSOR", meter="PLUG-{device}", format="f")
    assert r.topic_for("PLUG-c1") == "tele/c1/SENSOR"
    assert r.topic_for("E-1") is None
    assert r.subscription == "tele/+/SENSOR"


@pytest.mark.parametrize(
    ("pattern", "meter", "message"),
    [
        ("tele/+/SENSOR", "X-{d}", "not MQTT wildcards"),
        ("tele/x{d}/SENSOR", "X-{d}", "whole topic level"),
        ("tele/{d}/{d}", "X-{d}", "distinct"),
        ("tele/{d}/SENSOR", "X-{other}", "variables of the pattern"),
        ("b/{f}/{d}", "X-{d}", "exactly the variables"),
    ],
)
def test_bad_routes_cannot_be_built(pattern, meter, message):
    with pytest.raises(ValidationError, match=message):
        MqttRoute(pattern=pattern, meter=meter, format="f")


def test_router_resolves_exact_topics_and_routes():
    router = TopicRouter(site())
    assert router.subscriptions() == ["b/+/tele/+/SENSOR", "b/e1"]
    hit = router.route("b/2F/tele/c2/SENSOR")
    assert hit is not None
    assert hit.meter_id == "PLUG-2F-c2"
    assert router.route("b/e1").meter_id == "E-1"  # type: ignore[union-attr]
    assert router.route("b/2F/tele/c9/SENSOR") is None  # no such meter: a dead letter
    s = site()
    assert s.topic_of(s.meters_by_id["PLUG-3F-c1"]) == "b/3F/tele/c1/SENSOR"
    assert s.topic_of(s.meters_by_id["E-1"]) == "b/e1"


def test_shared_subscription_prefix():
    router = TopicRouter(site(shared_group="collectors"))
    assert router.subscriptions() == [
        "$share/collectors/b/+/tele/+/SENSOR",
        "$share/collectors/b/e1",
    ]


def test_a_routed_meter_must_fit_its_route():
    with pytest.raises(ConfigError, match="does not fit"):
        parse_site(
            {
                "site": {"id": "s", "name": "S", "latitude": 31, "longitude": 116},
                "mqtt": {
                    "routes": {
                        "plugs": {"pattern": "tele/{d}/SENSOR", "meter": "PLUG-{d}", "format": "f"}
                    }
                },
                "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
                "payload_formats": {
                    "f": {"fields": [{"pointer": "/p", "quantity": "power", "unit": "W"}]}
                },
                "meters": [
                    {
                        "id": "E-1",
                        "kind": "electricity",
                        "building": "b",
                        "mqtt": {"route": "plugs"},
                    }
                ],
            }
        )


@pytest.mark.parametrize(("text", "shard"), [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3))])
def test_shard_parse(text, shard):
    assert Shard.parse(text) == shard


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b"])
def test_bad_shards(text):
    with pytest.raises(ValueError, match="--shard"):
        Shard.parse(text)


def test_shards_split_gateways_exactly_once():
    from core.config import Gateway

    gateways = [Gateway(id=f"gw-{i}", host="127.0.0.1") for i in range(40)]
    shards = [Shard(i, 3) for i in (1, 2, 3)]
    owners = [[s for s in shards if s.owns(g)] for g in gateways]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o[0] == s) for s in shards]
    assert min(sizes) >= 6  # roughly balanced
