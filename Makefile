# kapauth — two commands for a newcomer: `make run` and `make test`.
CARGO ?= cargo
GNU_TARGET := x86_64-unknown-linux-gnu
MUSL_TARGET := x86_64-unknown-linux-musl
ADVISORY_DB ?= ../shared/advisory-db
FUZZ_SECONDS ?= 60
# Where `make static` builds; .ci/run points it at a cache outside the clone.
STATIC_DIR ?= target
# Where `make test` builds the static binary for bare-host: outside the clone, kept between runs.
BARE_HOST_STATIC_DIR ?= $(HOME)/.cache/kapauth/static-target
STATIC_BINARY := $(STATIC_DIR)/$(GNU_TARGET)/release/kapauth

.PHONY: build run test lint static static-pie bare-host musl audit fuzz interop bench clean

build:
	$(CARGO) build --release --locked

# The gateway on its embedded defaults: meta store under ./data, meta API on
# 127.0.0.1:8091, gateway on 127.0.0.1:9092 in front of Kapacitor on 127.0.0.1:9093.
run: build
	./target/release/kapauth serve --config etc/kapauth.conf

# Every test: unit tests beside the code, black-box tests in tests/ against the real binary.
# scripts/test-deps installs what the tests call besides cargo (cached in ~/.cache/kapauth).
# As root, also the static binary on a bare host (bare-host; its build is cached there too);
# without root that part says it is skipped.
test:
	KAPAUTH_TEST_PYTHON="$$(./scripts/test-deps | tail -n 1)" $(CARGO) test --locked --all-targets
	@if [ "$$(id -u)" = 0 ]; then \
		$(MAKE) --no-print-directory bare-host STATIC_DIR="$(BARE_HOST_STATIC_DIR)"; \
	else \
		echo "test: the bare-host tests need root (chroot, port 53); skipped. Run 'sudo make bare-host'."; \
	fi

lint:
	$(CARGO) fmt --check
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml
	$(CARGO) clippy --locked --all-targets -- -D warnings

# A statically linked release binary for the gnu target (non-PIE: `file` says
# "statically linked"). `static-pie` keeps position independence, so the loader can
# randomize where the code lands; its output is in target/static-pie/.
static:
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" CARGO_TARGET_DIR=$(STATIC_DIR) $(CARGO) build --release --locked --target $(GNU_TARGET)
	@file $(STATIC_BINARY)

static-pie:
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=target/static-pie $(CARGO) build --release --locked --target $(GNU_TARGET)
	@file target/static-pie/$(GNU_TARGET)/release/kapauth

# The static binary on a bare host (tests/bare_host.rs): `make static`, then the binary in a
# chroot holding only itself, its config, a CA, /etc/hosts and /etc/resolv.conf, naming meta
# and the upstream by host name; also under the unit's system call filter. Needs root
# (chroot, a DNS stand-in on port 53) and python3-seccomp; `make test` runs it as root.
bare-host: static
	KAPAUTH_STATIC_BINARY=$(abspath $(STATIC_BINARY)) $(CARGO) test --locked --test bare_host

musl:
	@if rustup target list --installed 2>/dev/null | grep -qx '$(MUSL_TARGET)'; then \
		$(CARGO) build --release --locked --target $(MUSL_TARGET) && file target/$(MUSL_TARGET)/release/kapauth; \
	else \
		echo "the $(MUSL_TARGET) target is not installed here; 'make static' builds a static gnu binary instead"; \
	fi

audit:
	@if command -v cargo-audit >/dev/null 2>&1; then \
		cargo audit --db $(ADVISORY_DB) --no-fetch --stale; \
	else \
		echo "cargo-audit is not installed; install it with 'cargo install cargo-audit --locked' and run 'make audit' again"; \
	fi

# Coverage-guided fuzzing of the HTTP and authentication parsing (fuzz/, a crate of its own):
# every target for FUZZ_SECONDS each; fails on a crash. fuzz/run installs cargo-fuzz if it is
# missing and says which toolchain it picked (a rustup nightly, else stable with
# RUSTC_BOOTSTRAP=1).
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run

# kapauth against the real peers (tests/interop/): the kapacitor CLI, Kapacitor's client/v1
# and meta client, Chronograf's Enterprise meta client, and a real kapacitord behind the
# gateway. Needs Go; builds into tests/interop/bin, caches under INTEROP_CACHE
# (default $(HOME)/.cache/kapauth/interop).
interop:
	CARGO="$(CARGO)" ./tests/interop/run

# kapauth against nginx (reverse proxy, auth_basic MD5 and bcrypt) with wrk on loopback,
# plus kapauth's memory with 1,000 idle connections; see bench/README.md.
# Results in target/bench/. Knobs: BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONTENDERS, ...
bench:
	CARGO="$(CARGO)" bash bench/run.sh

clean:
	$(CARGO) clean
	rm -rf data
