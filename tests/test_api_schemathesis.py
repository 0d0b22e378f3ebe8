"""Property test of the API against its own OpenAPI document: no input makes it fail (5xx),
whichever role asks. Driven by schemathesis' strategies under hypothesis."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_fixtures import app_for, make_world


def test_no_input_makes_the_api_fail(tmp_path):
    world = make_world(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_for(world))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    seen: set[str] = set()

    @given(st.data())
    @settings(
        max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        role = data.draw(st.sampled_from(["viewer", "vendor", "admin"]))
        response = case.call(headers={"Authorization": f"Bearer {world.tokens[role]}"})
        seen.add(operation.label)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} {case.query}: {response.status_code} {response.text[:300]}"
        )
        assert world.tokens[role] not in response.text

    try:
        check()
    finally:
        world.store.close()
        world.keys.close()
    assert len(seen) >= len(operations) - 2  # nearly every operation was exercised
