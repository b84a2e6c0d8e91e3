# gatehouse: the front door. See README.md.
#   make run    build and start the quickstart gateway (examples/quickstart.yaml)
#   make test   install test dependencies, build, run every test (plain and ASan+UBSan)
#   make fuzz   run each libFuzzer target for FUZZ_TIME seconds
#   make build  just build build/gatehouse

BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
JOBS ?= $(shell nproc)
PYTEST = /usr/bin/python3 -m pytest

.PHONY: all build build-tests run test unit integration asan fuzz bench format clean deps-build deps-test

all: build

deps-build:
	@scripts/deps build

deps-test:
	@scripts/deps test

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps-build $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/quickstart $(BUILD)/gatehouse

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGH_SANITIZE=ON -DGH_REQUIRE_TESTS=ON

asan: deps-test $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The release build with its unit tests: reconfigured so that a build dir
# first made by `make run` (before cmocka was installed) gains them.
build-tests: deps-test $(BUILD)/Makefile
	cmake -S . -B $(BUILD) -DGH_REQUIRE_TESTS=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

unit: build-tests
	cd $(BUILD) && ctest --output-on-failure

integration: build-tests
	GATEHOUSE_BIN=$(CURDIR)/$(BUILD)/gatehouse $(PYTEST) -q tests/integration

# Every test twice: the release build, then the ASan+UBSan build (unit
# tests and the integration suite against the sanitized binary).
test: build-tests asan
	cd $(BUILD) && ctest --output-on-failure
	cd $(ASAN_BUILD) && ctest --output-on-failure
	GATEHOUSE_BIN=$(CURDIR)/$(BUILD)/gatehouse $(PYTEST) -q tests/integration
	GATEHOUSE_BIN=$(CURDIR)/$(ASAN_BUILD)/gatehouse GH_SANITIZED=1 $(PYTEST) -q tests/integration

$(FUZZ_BUILD)/Makefile:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGH_FUZZ=ON -DGH_TESTS=OFF

fuzz: deps-test $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	scripts/fuzz $(FUZZ_BUILD) $(FUZZ_TIME)

bench: build
	@scripts/deps bench
	bench/run
	BENCH_OUT=$${BENCH_OUT:-docs/performance.md} bench/filters $(BUILD)
	BENCH_OUT=$${BENCH_OUT:-docs/performance.md} bench/fleet $(BUILD)
	BENCH_OUT=$${BENCH_OUT:-docs/performance.md} bench/authz $(BUILD)
	BENCH_OUT=$${BENCH_OUT:-docs/performance.md} bench/issuer $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
