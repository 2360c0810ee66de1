# The two commands: `make run` and `make test`. Both work on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTHON  ?= python3

.PHONY: run test bench test-deps bench-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(STAMP)
	$(VENV)/bin/mailwright --config dev.toml serve

test-deps:
	@scripts/install-test-deps.sh

test: $(STAMP) test-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest -q -p no:cacheprovider

# --bench checks everything test-deps does, plus the peers; aiosmtpd goes into the venv.
bench-deps: $(STAMP)
	@VENV_PYTHON=$(PY) scripts/install-test-deps.sh --bench

bench: $(STAMP) bench-deps
	$(PY) bench/smtp_accept.py
	$(PY) bench/pop3_download.py
	$(PY) bench/logins.py
	$(PY) bench/imap.py
	$(PY) bench/relay.py
	$(PY) bench/message_sizes.py
	$(PY) bench/event_prune.py
	$(PY) bench/event_stats.py
	$(PY) bench/send_api.py
	$(PY) bench/tracking.py

clean:
	rm -rf $(VENV) var .pytest_cache
