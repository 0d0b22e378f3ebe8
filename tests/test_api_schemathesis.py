"""Property test of the API against its own OpenAPI document: no input makes it fail (5xx),
whichever role asks, and every answer has the shape the document declares for it (the
contract routes' output schemas: terms, baseline, savings, the statements listing and the
full statement record). Driven by schemathesis' strategies under hypothesis."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.checks import response_schema_conformance

from api.schemas import StatementOut
from tests.api_fixtures import STATEMENT_MONTH, app_for, make_world


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
        case.validate_response(response, checks=[response_schema_conformance])

    try:
        check()
    finally:
        world.store.close()
        world.keys.close()
    assert len(seen) >= len(operations) - 2  # nearly every operation was exercised


def test_contract_answers_are_validated_against_their_schemas(tmp_path):
    """The schemas the run validates against are the real ones: a statement record answered
    by the API conforms, and the same record without its inputs does not."""
    world = make_world(tmp_path)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app_for(world))
        op = schema["/api/v1/contracts/{contract_id}/statements/{month}"]["GET"]
        case = op.Case(
            path_parameters={"contract_id": world.site.contracts[0].id, "month": STATEMENT_MONTH}
        )
        response = case.call(headers={"Authorization": f"Bearer {world.tokens['vendor']}"})
        assert response.status_code == 200
        record = response.json()
        assert record["inputs"]["daily"]["day"]  # the full record, inputs included
        case.validate_response(response, checks=[response_schema_conformance])
        declared = op.definition.raw["responses"]["200"]["content"]["application/json"]
        assert declared["schema"]["$ref"].endswith("/StatementOut")
        StatementOut.model_validate(record)
        stripped = {k: v for k, v in record.items() if k != "inputs"}
        with pytest.raises(ValidationError, match="inputs"):
            StatementOut.model_validate(stripped)
    finally:
        world.store.close()
        world.keys.close()
