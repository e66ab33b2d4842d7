# The two commands a person needs (see README):
#   make run    install what is needed, then start the bot on its embedded defaults
#   make test   install what is needed, then run the whole test suite
# Everything installs into ./.venv from the pinned requirements.lock.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install lint bench lock clean

run: install
	$(VENV)/bin/switchboard run

test: install
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: that is a failure, not a pass" >&2; exit 1; fi; \
	exit $$rc

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check uv || true
	@if [ -x $(VENV)/bin/uv ]; then \
		$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock && \
		$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e . ; \
	else \
		$(PY) -m pip install --quiet -r requirements.lock && \
		$(PY) -m pip install --quiet --no-deps -e . ; \
	fi
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check bot adapters flows tests bench

bench: install
	$(PY) bench/run_all.py

lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra test -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) .pytest_cache
