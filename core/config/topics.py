"""Topic matching: `[mqtt.routes.NAME]` maps many devices' topics to meter ids and back."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from core.config.base import FieldError, _Model

_ROUTE_VAR = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_PAYLOAD_VAR = re.compile(r"\{(/[^{}/]*(?:/[^{}/]*)*)\}")
_ANY_VAR = re.compile(r"\{([a-z_][a-z0-9_]*|/[^{}/]*(?:/[^{}/]*)*)\}")
NAME_CHARS = r"[A-Za-z0-9_.\-]+"
"""What a value taken from the payload may hold to become part of a meter id."""


class MqttRoute(_Model):
    """Devices whose topic or payload names the meter: `[mqtt.routes.NAME]`.

    `pattern = "tele/{device}/SENSOR"` with `meter = "PLUG-{device}"` maps the topic
    `tele/c1/SENSOR` to meter `PLUG-c1`. A variable stands for one whole topic level.

    A variable written as a JSON pointer takes its value from the payload (from each record,
    with the format's `records`): `pattern = "rs485/{gw}/up"` with `meter = "E-{gw}-{/addr}"`
    maps a gateway's message listing its bus, `{"devices": [{"addr": 3, ...}, ...]}`, to the
    meters `E-<gw>-3`, ... The value must be a string or a whole number of id characters.
    """

    pattern: str = Field(min_length=1, max_length=512)
    """Topic with `{name}` variables, each a whole level; no MQTT wildcards."""
    meter: str = Field(min_length=1)
    """Meter id template over the pattern's variables and `{/pointer}` values of the payload."""
    format: str = Field(min_length=1)
    """Name of the payload format these devices write."""

    @model_validator(mode="after")
    def _variables_agree(self) -> MqttRoute:
        if "+" in self.pattern or "#" in self.pattern or self.pattern.startswith("$"):
            raise FieldError("pattern", "use {name} variables, not MQTT wildcards")
        levels = self.pattern.split("/")
        names = []
        for level in levels:
            found = _ROUTE_VAR.findall(level)
            if found and not _ROUTE_VAR.fullmatch(level):
                raise FieldError(
                    "pattern", f"a variable must be a whole topic level, not {level!r}"
                )
            names += found
        if len(set(names)) != len(names):
            raise FieldError("pattern", "needs distinct {name} variables")
        if "{" in _ANY_VAR.sub("", self.meter) or "}" in _ANY_VAR.sub("", self.meter):
            raise FieldError(
                "meter", "a variable is {name} (of the pattern) or {/pointer} (into the payload)"
            )
        used = set(_ROUTE_VAR.findall(self.meter))
        if used != set(names):
            # every variable in the id keeps the mapping invertible: a meter knows its topic
            raise FieldError(
                "meter",
                f"meter: template must use exactly the variables of the pattern {sorted(names)}",
            )
        if not names and not self.payload_names:
            raise FieldError(
                "pattern", "needs a variable: {name} in the pattern or {/pointer} in the meter"
            )
        return self

    @property
    def payload_names(self) -> tuple[str, ...]:
        """The JSON pointers of the template's payload variables, in order, each once."""
        return tuple(dict.fromkeys(_PAYLOAD_VAR.findall(self.meter)))

    def match(self, topic: str) -> str | None:
        """The meter id for `topic` (its payload variables, if any, still in place), or None
        when it does not match."""
        pattern_levels = self.pattern.split("/")
        topic_levels = topic.split("/")
        if len(pattern_levels) != len(topic_levels):
            return None
        values: dict[str, str] = {}
        for p, t in zip(pattern_levels, topic_levels, strict=True):
            if m := _ROUTE_VAR.fullmatch(p):
                if not t:
                    return None
                values[m.group(1)] = t
            elif p != t:
                return None
        return _ROUTE_VAR.sub(lambda m: values[m.group(1)], self.meter)

    def topic_for(self, meter_id: str) -> str | None:
        """The topic a routed meter publishes on (inverse of `match`)."""
        parts = _ANY_VAR.split(self.meter)  # text, variable, text, variable, ..., text
        regex = "".join(
            re.escape(part)
            if i % 2 == 0
            else (f"(?P<{part}>[^/]+)" if not part.startswith("/") else NAME_CHARS)
            for i, part in enumerate(parts)
        )
        m = re.fullmatch(regex, meter_id)
        if m is None:
            return None
        return _ROUTE_VAR.sub(lambda v: m.group(v.group(1)), self.pattern)

    @property
    def subscription(self) -> str:
        return _ROUTE_VAR.sub("+", self.pattern)
