# The project's commands. Each prepares what it needs first (scripts/bootstrap), so each is safe to run
# on a fresh Debian machine and safe to run twice.
VENV := .venv/bin

.PHONY: test lint bench setup demo image image-amd64 image-test release release-amd64

setup:
	@scripts/bootstrap base

## test: every test (unit, property, integration, browser, PostgreSQL, QEMU system), after ruff; the QEMU
## system tests run in a second pytest process beside the others (scripts/test).
test:
	@scripts/bootstrap test
	$(VENV)/ruff check .
	@scripts/test

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

## image: the Raspberry Pi image (Debian bookworm arm64) in build/images/: .img.xz, .bmap, .sha256, .packages.
## Needs root; about 25 min the first time (emulated arm64), less with the package cache (images/README.md).
image:
	@scripts/bootstrap image
	images/build --arch arm64 --out build/images

## image-amd64: the same terminal for a PC (BIOS boot), the image the tests boot.
image-amd64:
	@scripts/bootstrap image
	images/build --arch amd64 --out build/images

## release: a signed update's bundle of this checkout for the Pis, in build/releases/ (publish it with
## `aptic-central fleet publish`, see images/release). Takes evdev's arm64 wheel from `make image`'s cache.
release:
	@scripts/bootstrap base
	images/release --arch arm64 --out build/releases

## release-amd64: the same for the PCs.
release-amd64:
	@scripts/bootstrap base
	images/release --arch amd64 --out build/releases

## image-test: boot the Pi image's root in qemu-system-aarch64 (-M virt) and check that its units come up.
image-test:
	@scripts/bootstrap image
	APTIC_PI_IMAGE=$$(ls build/images/aptic-terminal-*-arm64.img.xz | tail -n 1) \
		$(VENV)/python -m pytest -p no:cacheprovider -s tests/system/test_pi_image.py
