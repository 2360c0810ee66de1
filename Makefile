# The two commands: `make run` and `make test`. Both work on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTHON  ?= python3

.PHONY: run test bench fuzz test-deps bench-deps clean

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
	$(VENV)/bin/ruff check src tests bench fuzz
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest -q -p no:cacheprovider

# --bench checks everything test-deps does, plus the peers; aiosmtpd goes into the venv.
bench-deps: $(STAMP)
	@VENV_PYTHON=$(PY) scripts/install-test-deps.sh --bench

bench: $(STAMP) bench-deps
	$(PY) bench/smtp_accept.py
	$(PY) bench/accept_ceiling.py
	$(PY) bench/gil_handoff.py
	$(PY) bench/pop3_download.py
	$(PY) bench/logins.py
	$(PY) bench/imap.py
	$(PY) bench/memory.py --peer-connections 500
	$(PY) bench/scaling.py
	$(PY) bench/relay.py
	$(PY) bench/message_sizes.py
	$(PY) bench/event_prune.py
	$(PY) bench/cluster.py
	$(PY) bench/event_stats.py
	$(PY) bench/event_backends.py
	$(PY) bench/send_api.py
	$(PY) bench/tracking.py

# Coverage-guided fuzzing (fuzz/, atheris): each target for FUZZ_SECONDS; not part of
# `make test`. The corpus grows in var/fuzz/corpus; findings land in var/fuzz/crashes
# (reproduce: $(PY) -m fuzz.run TARGET var/fuzz/crashes/crash-...) and fail the run.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := smtp imap pop3 framers mime

fuzz: $(STAMP)
	$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install -q -e '.[fuzz]'
	$(PY) -m fuzz.seeds var/fuzz/seeds
	mkdir -p var/fuzz/crashes
	@status=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p var/fuzz/corpus/$$t; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  $(PY) -m fuzz.run $$t var/fuzz/corpus/$$t var/fuzz/seeds/$$t \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 \
	    -artifact_prefix=var/fuzz/crashes/$$t- -print_final_stats=1 \
	    > var/fuzz/$$t.log 2>&1 || status=1; \
	  grep -E '^(#[0-9]+.*DONE|Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|new_units_added))' var/fuzz/$$t.log \
	    || tail -40 var/fuzz/$$t.log; \
	done; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache
