# The project's commands. Each prepares what it needs first (scripts/bootstrap), so each is safe to run
# on a fresh Debian machine and safe to run twice.
VENV := .venv/bin

.PHONY: test lint bench setup demo

setup:
	@scripts/bootstrap base

## test: every test (unit, property, integration, browser, PostgreSQL, QEMU system), after ruff.
test:
	@scripts/bootstrap test
	$(VENV)/ruff check .
	$(VENV)/python -m pytest

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

## bench: benchmarks; they print figures and ratios against each issue's targets (not timed tests).
bench: setup
	$(VENV)/python -m bench

## demo: the central on SQLite with demo data, a terminal activated against it (mock GPIO, virtual
## douchette) and the kiosk on http://127.0.0.1:8080; it prints a five-minute tour. Ctrl-C stops it.
demo:
	@scripts/demo
