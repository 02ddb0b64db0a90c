# Every target runs the idempotent set-up first (a cached torch==2.11.0 environment; the first
# run on a machine downloads it, later runs only verify its version).
SHELL := /bin/bash
ENV := eval "$$(bash scripts/setup.sh --print-env)"
CARGO_FLAGS ?= --release

.PHONY: setup build python test test-python test-core demo lint fmt clean-cache

setup:
	@$(ENV)

build:
	@$(ENV) && cargo build $(CARGO_FLAGS)

## The demo: simulate Kolmogorov-flow turbulence, train on its incomplete observations, impute,
## score next to thin-plate inpainting and fitted kriging (`lacuna demo --data grf`: Gaussian fields).
demo: build
	./target/release/lacuna demo --out demo-out

## The Python module (`import lacuna`), built by maturin into the set-up's environment
## (editable: it reuses this checkout's release build of the library).
python:
	@$(ENV) && VIRTUAL_ENV="$$LACUNA_VENV" PYO3_PYTHON="$$LACUNA_VENV/bin/python" \
		"$$LACUNA_VENV/bin/python" -m maturin develop --release --quiet -m crates/py/Cargo.toml

## The test suite (what CI runs): the Rust tests, then the Python module's.
test:
	@$(ENV) && cargo test $(CARGO_FLAGS)
	@$(MAKE) --no-print-directory test-python

# The binary its NetCDF test calls is the one `cargo test` builds (same features: a plain
# `cargo build` would compile the library again without the test dependencies' features).
test-python: python
	@$(ENV) && cargo test $(CARGO_FLAGS) --no-run -q && "$$LACUNA_VENV/bin/python" -m pytest -q crates/py/tests

## The tensor-free core alone: no set-up, no libtorch (torch-sys is not in its dependency tree).
test-core:
	@! cargo tree -p lacuna-core --prefix none | grep -E '^(tch|torch-sys) '
	env -u LIBTORCH -u LIBTORCH_USE_PYTORCH -u LD_LIBRARY_PATH cargo test -p lacuna-core $(CARGO_FLAGS)

lint:
	@$(ENV) && cargo fmt --check && cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings
	@$(ENV) && PYO3_PYTHON="$$LACUNA_VENV/bin/python" cargo clippy $(CARGO_FLAGS) -p lacuna-py -- -D warnings

fmt:
	cargo fmt
