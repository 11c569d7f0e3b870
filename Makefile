# Postern: the two entry points are `make run` (build and start the
# demo server) and `make test` (build twice and run every test).  Meson
# and Ninja do the building; this file only orders the steps.

MESON ?=	meson
NINJA ?=	ninja

BUILD_DIR =	build
SAN_DIR =	build-san
SAN_OPTS =	-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all

# meson setup DIR [OPTIONS]: configures DIR unless it already has a
# build.ninja; a half-configured DIR is configured again.
meson_setup = \
	if [ ! -f $(1)/build.ninja ]; then \
		if [ -f $(1)/meson-private/coredata.dat ]; then \
			$(MESON) setup --reconfigure $(1) $(2); \
		else \
			$(MESON) setup $(1) $(2); \
		fi; \
	fi

.PHONY: all deps build build-san run test install clean

all: build

deps:
	scripts/install-deps

build: deps
	@$(call meson_setup,$(BUILD_DIR),)
	$(NINJA) -C $(BUILD_DIR)

build-san: deps
	@$(call meson_setup,$(SAN_DIR),$(SAN_OPTS))
	$(NINJA) -C $(SAN_DIR)

run: build
	exec scripts/demo

test: deps build build-san build-fuzz
	tests/run

install: build
	$(MESON) install -C $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(SAN_DIR) $(FUZZ_DIR)

# Fuzzing: every libFuzzer target under fuzz/, built with clang, ASan and
# UBSan in build-fuzz, each run for FUZZ_SECONDS (default 300) on its
# seed corpus; prints each target's executions and coverage.
FUZZ_DIR =	build-fuzz
FUZZ_SECONDS ?=	300
FUZZ_OPTS =	-Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link

.PHONY: fuzz build-fuzz
build-fuzz: deps
	@if [ ! -f $(FUZZ_DIR)/build.ninja ]; then \
		CC=clang $(MESON) setup $(FUZZ_DIR) $(FUZZ_OPTS); fi
	$(NINJA) -C $(FUZZ_DIR)

fuzz: build-fuzz
	scripts/fuzz $(FUZZ_DIR) $(FUZZ_SECONDS)

# Soak: posternd under mixed load (deliveries over LMTP, fetch-and-delete,
# storm sessions, abrupt disconnects) with faults (SIGKILL of pop3, auth
# and lmtp processes, SIGHUP, a full disk) for SOAK_MINUTES (default 30, at
# least 2); fails on any lost, duplicated or damaged message.  Not part of
# `make test`.
SOAK_MINUTES ?=	30

.PHONY: soak
soak: build
	/usr/bin/python3 tests/soak/soak.py --minutes $(SOAK_MINUTES)

# Benchmark: posternd against a private Dovecot instance on 127.0.0.1,
# every scenario of bench/README.md (installs Dovecot if missing);
# BENCH_QUICK=1 for a run of a few minutes.
.PHONY: bench
bench: build
	bench/run
