# jukebox: the two commands a new user needs are `make demo` and `make test`.
# Both install the native libraries first (scripts/install-deps.sh) when they are missing.

SWIFT ?= swift
BIN := .build/release/jukebox
MODEL ?= models/default
N ?= 8
SECONDS ?= 20
PRIME ?=
PRIME_SECONDS ?= 5

# Under `make -j`, jobs run side by side: give each jukebox one thread so they do not fight
# over the cores.
ifneq (,$(findstring j,$(filter-out --%,$(MAKEFLAGS))))
export JUKEBOX_THREADS := 1
endif

.PHONY: all deps build test test-matrix demo samples continue default-model bench melody-data fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release

# Tests run optimised: the numeric code is far too slow in a debug build. The command-line
# tests run the built executable, so it is built first.
test: deps
	$(SWIFT) build -c release
	$(SWIFT) test -c release

# The suite under each environment that changes which kernels run, to catch results that hold
# only for one set of kernels: as it is; with OpenBLAS choosing its kernels itself
# (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset); with the Haswell kernels, whose blocking once
# made chunked encoding depend on chunk boundaries; on one thread; and with the float16
# sampling kernels off (the path CPUs without F16C take). `make test` stays what CI runs.
test-matrix: deps
	$(SWIFT) build -c release
	$(SWIFT) test -c release
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(SWIFT) test -c release
	OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512 $(SWIFT) test -c release
	JUKEBOX_THREADS=1 $(SWIFT) test -c release
	JUKEBOX_HALF_KERNELS=off $(SWIFT) test -c release
	@echo "test-matrix: all five runs passed"

# Generates 10 s of music with the shipped model.
demo: build
	@scripts/demo.sh

# `make samples N=8 SECONDS=20`: out/sample-1.wav … out/sample-N.wav with seeds 1…N. Each file is
# its own target, so `make -j2 samples` makes two at once and a rerun redoes only what is
# missing (continuing an interrupted one).
SAMPLE_FILES := $(foreach i,$(shell seq 1 $(N)),out/sample-$(i).wav)
samples: $(SAMPLE_FILES)

out/sample-%.wav: | build
	$(BIN) sample --model $(MODEL) --seconds $(SECONDS) --seed $* -o $@ $(if $(wildcard $@.job.codes.safetensors),--resume)

# `make continue PRIME=song.ogg`: out/continue-song.wav continues the first PRIME_SECONDS of it.
continue: | build
	@test -n "$(PRIME)" || { echo "make continue: give PRIME=FILE (audio to continue)" >&2; exit 2; }
	$(BIN) sample --model $(MODEL) --seconds $(SECONDS) --prime "$(PRIME)" --prime-seconds $(PRIME_SECONDS) --seed 1 \
		-o "out/continue-$(basename $(notdir $(PRIME))).wav" \
		$(if $(wildcard out/continue-$(basename $(notdir $(PRIME))).wav.job.codes.safetensors),--resume)

# Retrains the shipped model from scratch (hours; resumable).
default-model: build
	scripts/default-model.sh

bench: build
	$(BIN) bench ops
	$(BIN) bench audio
	$(BIN) bench vqvae
	$(BIN) bench prior

# Folk melodies for the symbolic melody models, from the music21 wheel (non-commercial
# licences: data/melody is never committed); quick when already built.
melody-data:
	scripts/melody-data.sh

# `make fuzz`: every file reader under libFuzzer with the address sanitizer, one target after
# another, seeded with valid files (scripts/fuzz.sh; work folder fuzz/). For example
# `make fuzz FUZZ_SECONDS=600` or `make fuzz FUZZ_RUNS=1000000 FUZZ_SECONDS=0 FUZZ_TARGETS=audio`.
# `make test` does not fuzz; it replays the committed findings (FuzzCorpusTests).
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
FUZZ_TARGETS ?=
fuzz: deps
	FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_RUNS='$(FUZZ_RUNS)' FUZZ_TARGETS='$(FUZZ_TARGETS)' scripts/fuzz.sh

clean:
	rm -rf .build out
