# The two commands of the README:
#   make demo   runs the custom resource locally against moto, end to end
#   make test   runs every check and test
# Both install what they need, pinned: Python tools into ./.venv from
# requirements.txt, npm packages from examples/cdk/package-lock.json.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
VENV_STAMP := $(VENV)/.installed
PYTHON ?= python3

# Debian packages that run the arm64 artefact on this x86_64 machine.
DEBIAN_PACKAGES := qemu-user-static=1:7.2+dfsg-7+deb12u18+b3 libc6-arm64-cross=2.36-8cross1

# The tools in .venv come first: cargo-lambda runs zig through `python3`.
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0

.PHONY: help demo test venv toolchain debian-packages lint unit-and-integration demo-check \
	templates artifact arm64-run fuzz-check fuzz release-builds bench bench-quick clean

help:
	@echo "make demo   run Create, Update and Delete locally against moto and show the result"
	@echo "make test   install the pinned tools and run every check and test"
	@echo "make bench  measure the release bootstrap and check bench/budgets.json"
	@echo "make fuzz   fuzz the event and property parsers for FUZZ_SECONDS (default 300)"

$(VENV_STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { \
	  echo "$(PYTHON) not found: install Python 3.11 or later with venv (apt-get install python3 python3-venv)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-virtualenv -r requirements.txt
	touch $@

venv: $(VENV_STAMP)

toolchain:
	@command -v cargo >/dev/null || { \
	  echo "cargo not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml pins the version" >&2; exit 2; }
	@cargo --version

debian-packages:
	scripts/install-debian-packages $(DEBIAN_PACKAGES)

demo: venv toolchain
	scripts/demo

test: venv toolchain lint unit-and-integration demo-check templates arm64-run bench-quick fuzz-check
	@scripts/figures
	@echo "make test: every check passed"

lint:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings

# The fault, race and bad-input tests record their figures in target/tmp/figures.
unit-and-integration:
	rm -rf target/tmp/figures
	cargo test --locked

demo-check:
	scripts/demo --check >/dev/null

templates:
	scripts/check-templates

# The arm64 bootstrap users deploy, cross-compiled by cargo-lambda (zig).
artifact: venv toolchain
	$(WITH_VENV) $(VENV)/bin/sam build --template template.yaml

arm64-run: artifact debian-packages
	cargo test --locked --test arm64_artifact

# The release bootstraps as they ship, zipped, for both architectures.
release-builds: venv toolchain
	$(WITH_VENV) cargo lambda build --release --locked --arm64 --output-format zip \
	  --lambda-dir target/lambda/arm64
	$(WITH_VENV) cargo lambda build --release --locked --x86-64 --output-format zip \
	  --lambda-dir target/lambda/x86_64

# Cold start, event times, AWS calls, memory and sizes, checked against
# bench/budgets.json; make test runs the quick form.
bench: release-builds
	cargo test --locked --test bench

bench-quick: release-builds
	cargo test --locked --test bench -- --quick

# The fuzz target builds with cargo fuzz (see the README); this keeps it compiling.
fuzz-check:
	cargo check --locked --manifest-path fuzz/Cargo.toml

# Runs the fuzz target for FUZZ_SECONDS. cargo fuzz builds with nightly
# flags (the address sanitizer); RUSTC_BOOTSTRAP lets the pinned stable
# toolchain accept them, so no nightly toolchain is needed.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_SECONDS ?= 300
fuzz: toolchain
	@[[ "$$(cargo fuzz --version 2>/dev/null)" == "cargo-fuzz $(CARGO_FUZZ_VERSION)" ]] || \
	  cargo install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	RUSTC_BOOTSTRAP=1 cargo fuzz run event_and_properties -- -max_total_time=$(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .demo .aws-sam examples/cdk/node_modules examples/cdk/cdk.out
	cargo clean
