# jukebox: the two commands a new user needs are `make demo` and `make test`.
# Both install the native libraries first (scripts/install-deps.sh) when they are missing.

SWIFT ?= swift
BIN := .build/release/jukebox

.PHONY: all deps build test demo bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release

# Tests run optimised: the numeric code is far too slow in a debug build.
test: deps
	$(SWIFT) test -c release

demo: build
	@scripts/demo.sh

bench: build
	$(BIN) bench ops
	$(BIN) bench audio
	$(BIN) bench vqvae
	$(BIN) bench prior

clean:
	rm -rf .build out
