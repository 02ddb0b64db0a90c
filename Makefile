# Every target runs the idempotent set-up first (a cached torch==2.11.0 environment; the first
# run on a machine downloads it, later runs only verify its version).
SHELL := /bin/bash
ENV := eval "$$(bash scripts/setup.sh --print-env)"
CARGO_FLAGS ?= --release

.PHONY: setup build test test-core demo lint fmt clean-cache

setup:
	@$(ENV)

build:
	@$(ENV) && cargo build $(CARGO_FLAGS)

## The demo: generate Gaussian random fields, train on their incomplete observations, impute, score.
demo: build
	./target/release/lacuna demo --out demo-out

## The test suite (what CI runs).
test:
	@$(ENV) && cargo test $(CARGO_FLAGS)

## The tensor-free core alone: no set-up, no libtorch (torch-sys is not in its dependency tree).
test-core:
	@! cargo tree -p lacuna-core --prefix none | grep -E '^(tch|torch-sys) '
	env -u LIBTORCH -u LIBTORCH_USE_PYTORCH -u LD_LIBRARY_PATH cargo test -p lacuna-core $(CARGO_FLAGS)

lint:
	@$(ENV) && cargo fmt --check && cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings

fmt:
	cargo fmt
