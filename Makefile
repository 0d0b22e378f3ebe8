# epcmon: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test check lint typecheck bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# the demo needs the package and its report extra (plots), not the test and lint tools
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[report]"
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/epcmon demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy core storage collectors processing alarms reports api dashboards simulators epcmon bench

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.compact
	$(BIN)/python -m bench.ingest_mqtt --messages 50000
	$(BIN)/python -m bench.parse_payload
	$(BIN)/python -m bench.scale_out
	$(BIN)/python -m bench.influx
	$(BIN)/python -m bench.spool_catchup
	$(BIN)/python -m bench.baselines
	$(BIN)/python -m bench.money
	$(BIN)/python -m bench.coverage
	$(BIN)/python -m bench.simulate
	$(BIN)/python -m bench.page
	$(BIN)/python -m bench.poll_modbus
	$(BIN)/python -m bench.modbus_drops
	$(BIN)/python -m bench.bills
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info

docs: $(STAMP)
	$(BIN)/python -m epcmon.docs > docs/configuration.md
