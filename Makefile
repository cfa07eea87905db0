# mxgate build. `make` builds bin/mxgate; `make test` installs what is
# missing, builds and runs every test; `make run` starts on etc/mxgate.lua.

PKGS     := lua5.4 libcares openssl lmdb
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Iengine -Ilua $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm -lpthread

# Every engine/ and lua/ file but main.c goes into one archive so that unit
# tests and tools link against exactly what the server runs.
SRC      := $(sort $(wildcard engine/*.c lua/*.c))
LIBSRC   := $(filter-out engine/main.c,$(SRC))

B        ?= build
BIN      ?= bin
LIBOBJ   := $(LIBSRC:%.c=$(B)/%.o)
UNITSRC  := $(wildcard spec/unit/test_*.c)
UNITBIN  := $(UNITSRC:spec/unit/%.c=$(B)/unit/%)
# Small drivers that e2e tests run against real servers (spec/tools/*.c).
TOOLSRC  := $(wildcard spec/tools/*.c)
TOOLBIN  := $(TOOLSRC:spec/tools/%.c=$(B)/tools/%)

.PHONY: all asan fuzz test test-unit test-e2e test-asan run deps bench clean check-config

all: $(BIN)/mxgate $(BIN)/ruletest

$(B)/%.o: %.c $(wildcard engine/*.h lua/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(B)/libmxgate.a: $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/mxgate: $(B)/engine/main.o $(B)/libmxgate.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ruletest is the same binary: argv[0] selects the dry-run front end.
$(BIN)/ruletest: $(BIN)/mxgate
	ln -sf mxgate $@

$(B)/unit/%: spec/unit/%.c $(B)/libmxgate.a spec/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Ispec/unit -o $@ $< $(B)/libmxgate.a $(LDLIBS)

$(B)/tools/%: spec/tools/%.c $(B)/libmxgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(B)/libmxgate.a $(LDLIBS)

# AddressSanitizer + UBSan build of the same sources, in its own tree.
asan:
	$(MAKE) B=build-asan BIN=bin-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" all

# libFuzzer target over the session state machine (clang). Seeds live in
# spec/fuzz/seeds/; what the fuzzer finds grows spec/fuzz/corpus/ (ignored).
fuzz:
	$(MAKE) CC=clang B=build-fuzz BIN=bin-fuzz CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" build-fuzz/libmxgate.a
	@mkdir -p bin-fuzz spec/fuzz/corpus
	clang $(CPPFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o bin-fuzz/fuzz_session spec/fuzz/fuzz_session.c build-fuzz/libmxgate.a $(LDLIBS)
	cp -n spec/fuzz/seeds/* spec/fuzz/corpus/
	bin-fuzz/fuzz_session -max_total_time=$${FUZZ_SECONDS:-30} -max_len=4096 -dict=spec/fuzz/smtp.dict spec/fuzz/corpus

deps:
	@sh .ci/deps.sh

test: deps
	$(MAKE) all asan $(UNITBIN) $(TOOLBIN)
	/usr/bin/python3 spec/run.py

run: deps all
	$(BIN)/mxgate -c etc/mxgate.lua

check-config: all
	$(BIN)/mxgate -t -c etc/mxgate.lua

bench: deps all
	/usr/bin/python3 bench/bench.py

clean:
	rm -rf build build-asan build-fuzz bin bin-asan bin-fuzz
