# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

.PHONY: run test venv init-db

venv: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

init-db: venv
	$(BIN)/flask --app web init-db

# Serves on http://127.0.0.1:8000 with the stale-payment sweep on (gunicorn.conf.py).
run: init-db
	$(BIN)/gunicorn 'web:create_app()'

# The whole suite on SQLite; with TEST_DATABASE_URL=postgresql+psycopg://... on PostgreSQL instead (.ci/run does both).
test: venv
	$(BIN)/python -m pytest

# Benchmarks (not tests): PostgreSQL by default; `make bench ARGS=--sqlite` for the SQLite default;
# `make bench ARGS="--peers naive,seed,before"` for the working tree beside its peers (bench/peers/).
.PHONY: bench
bench: venv
	$(BIN)/python -m bench.run $(ARGS)
