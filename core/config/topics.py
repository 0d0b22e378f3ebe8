"""Topic matching: `[mqtt.routes.NAME]` maps many devices' topics to meter ids and back."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from core.config.base import FieldError, _Model

_ROUTE_VAR = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class MqttRoute(_Model):
    """Devices whose topic names the meter: `[mqtt.routes.NAME]`.

    `pattern = "tele/{device}/SENSOR"` with `meter = "PLUG-{device}"` maps the topic
    `tele/c1/SENSOR` to meter `PLUG-c1`. A variable stands for one whole topic level.
    """

    pattern: str = Field(min_length=1, max_length=512)
    """Topic with `{name}` variables, each a whole level; no MQTT wildcards."""
    meter: str = Field(min_length=1)
    """Meter id template over the pattern's variables."""
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
        if not names or len(set(names)) != len(names):
            raise FieldError("pattern", "needs distinct {name} variables")
        used = set(_ROUTE_VAR.findall(self.meter))
        if used != set(names):
            # every variable in the id keeps the mapping invertible: a meter knows its topic
            raise FieldError(
                "meter",
                f"meter: template must use exactly the variables of the pattern {sorted(names)}",
            )
        return self

    def match(self, topic: str) -> str | None:
        """The meter id for `topic`, or None when it does not match."""
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
        regex = "".join(
            f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part)
            for i, part in enumerate(_ROUTE_VAR.split(self.meter))
        )
        m = re.fullmatch(regex, meter_id)
        if m is None:
            return None
        return _ROUTE_VAR.sub(lambda v: m.group(v.group(1)), self.pattern)

    @property
    def subscription(self) -> str:
        return _ROUTE_VAR.sub("+", self.pattern)
