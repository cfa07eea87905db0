# mxgate build. `make` builds bin/mxgate; `make test` installs what is
# missing, builds and runs every test; `make run` starts on etc/mxgate.lua.

PKGS     := lua5.4 libcares openssl lmdb jansson yajl hiredis libsystemd libmicrohttpd
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wno-unused-parameter

# Layers, lowest first. Each folder is one archive; programs link them in
# the reverse order (highest first), so a lower layer that calls up into a
# higher one fails to link. `make check-layers` proves it symbol by symbol.
#   engine/lib    log, config, the shared vocabulary
#   engine/store  spool, state
#   engine/net    DNS, TLS, SMTP client, callouts
#   engine/smtp   the SMTP protocol, the server, the policy seam, the journal
#   lua           the rules bridge
#   engine/delivery  the delivery process: queue, scheduler, sessions, bounces, routing
#   engine/http   the HTTP process: /metrics, /healthz, the portal page
#   engine/proc   master, workers, connection limits
#   tools         ruletest, report, the state CLI, the journal reader
# The layer rules below are defined before `all`; bare `make` must still build the programs.
.DEFAULT_GOAL := all
LAYERS   := engine/lib engine/store engine/net engine/smtp lua engine/delivery engine/http engine/proc tools
CPPFLAGS += -D_GNU_SOURCE $(addprefix -I,$(LAYERS)) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm -lpthread

B        ?= build
BIN      ?= bin
layer_a   = $(B)/lib$(notdir $(1)).a
reverse   = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
ARCHIVES := $(foreach l,$(call reverse,$(LAYERS)),$(call layer_a,$(l)))
ALLOBJ   :=

define layer_rule
$(1)_OBJ := $$(patsubst %.c,$$(B)/%.o,$$(sort $$(wildcard $(1)/*.c)))
ALLOBJ   += $$($(1)_OBJ)
$$(call layer_a,$(1)): $$($(1)_OBJ)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rule,$(l))))

UNITSRC  := $(wildcard spec/unit/test_*.c)
UNITBIN  := $(UNITSRC:spec/unit/%.c=$(B)/unit/%)
# Small drivers that e2e tests run against real servers (spec/tools/*.c).
TOOLSRC  := $(wildcard spec/tools/*.c)
TOOLBIN  := $(TOOLSRC:spec/tools/%.c=$(B)/tools/%)

.PHONY: build-tests archives all asan fuzz lint test test-unit test-e2e test-asan run deps bench clean check-config check-layers install deb test-deb

all: $(BIN)/mxgate $(BIN)/ruletest

# -MMD: each object depends on the headers it includes, nothing more.
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<
-include $(ALLOBJ:.o=.d) $(B)/engine/main.d

$(BIN)/mxgate: $(B)/engine/main.o $(ARCHIVES)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ruletest is the same binary: argv[0] selects the dry-run front end.
$(BIN)/ruletest: $(BIN)/mxgate
	ln -sf mxgate $@

archives: $(ARCHIVES)

check-layers: $(ARCHIVES)
	/usr/bin/python3 spec/layers.py $(foreach l,$(LAYERS),$(call layer_a,$(l)))

$(B)/unit/%: spec/unit/%.c $(ARCHIVES) spec/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Ispec/unit -o $@ $< $(ARCHIVES) $(LDLIBS)

$(B)/tools/%: spec/tools/%.c $(ARCHIVES)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(ARCHIVES) $(LDLIBS)

# AddressSanitizer + UBSan build of the same sources, in its own tree.
asan:
	$(MAKE) B=build-asan BIN=bin-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" all

# libFuzzer targets (clang): the session state machine (fuzz_session),
# the journal reader with the JSON codec (fuzz_journal) and the config
# loader the master runs on SIGHUP (fuzz_config), FUZZ_SECONDS each.
# Seeds live in spec/fuzz/seeds/, spec/fuzz/journal_seeds/ and
# spec/fuzz/config_seeds/ (with etc/mxgate.lua and spec/ruletest/mxgate.lua); what the
# fuzzers find grows spec/fuzz/corpus*/ (ignored).
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz:
	$(MAKE) CC=clang B=build-fuzz BIN=bin-fuzz CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" archives
	@mkdir -p bin-fuzz spec/fuzz/corpus spec/fuzz/corpus_journal spec/fuzz/corpus_config
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -o bin-fuzz/fuzz_session spec/fuzz/fuzz_session.c $(subst $(B)/,build-fuzz/,$(ARCHIVES)) $(LDLIBS)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -o bin-fuzz/fuzz_journal spec/fuzz/fuzz_journal.c $(subst $(B)/,build-fuzz/,$(ARCHIVES)) $(LDLIBS)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -o bin-fuzz/fuzz_config spec/fuzz/fuzz_config.c $(subst $(B)/,build-fuzz/,$(ARCHIVES)) $(LDLIBS)
	cp -n spec/fuzz/seeds/* spec/fuzz/corpus/
	cp -n spec/fuzz/journal_seeds/* spec/fuzz/corpus_journal/
	cp -n spec/fuzz/config_seeds/* spec/fuzz/corpus_config/
	cp -n etc/mxgate.lua spec/fuzz/corpus_config/etc-mxgate.lua
	cp -n spec/ruletest/mxgate.lua spec/fuzz/corpus_config/ruletest-mxgate.lua
	bin-fuzz/fuzz_session -max_total_time=$${FUZZ_SECONDS:-30} -max_len=4096 -dict=spec/fuzz/smtp.dict spec/fuzz/corpus
	bin-fuzz/fuzz_journal -max_total_time=$${FUZZ_SECONDS:-30} -max_len=8192 -dict=spec/fuzz/json.dict spec/fuzz/corpus_journal
	bin-fuzz/fuzz_config -max_total_time=$${FUZZ_SECONDS:-30} -max_len=8192 -timeout=10 -dict=spec/fuzz/config.dict spec/fuzz/corpus_config

deps:
	@sh .ci/deps.sh

# Everything the tests run, without running them (then spec/run.py -k PATTERN).
build-tests: all check-layers $(UNITBIN) $(TOOLBIN)
	$(MAKE) asan

test: deps
	$(MAKE) build-tests
	$(MAKE) lint
	/usr/bin/python3 spec/run.py

# The rules and the stdlib under luacheck (.luacheckrc: the sandbox's names).
lint:
	luacheck --no-color -q stdlib rules.d

run: deps all
	$(BIN)/mxgate -c etc/mxgate.lua

check-config: all
	$(BIN)/mxgate -t -c etc/mxgate.lua

bench: deps all
	/usr/bin/python3 bench/bench.py
	/usr/bin/python3 bench/e2e.py
	/usr/bin/python3 bench/drain.py
	/usr/bin/python3 bench/replay_bench.py -n 100000,1000000 --runs 1

# Installed layout (the Debian package's): PREFIX=/usr gives /usr/sbin,
# /usr/share/mxgate/stdlib, /etc/mxgate, /var/spool/mxgate, /var/lib/mxgate.
# Another PREFIX (e.g. /usr/local) puts etc/, var/ and the unit under it.
PREFIX        ?= /usr
DESTDIR       ?=
root_of        = $(if $(filter /usr,$(PREFIX)),,$(PREFIX))
SBINDIR       ?= $(PREFIX)/sbin
DATADIR       ?= $(PREFIX)/share
MANDIR        ?= $(DATADIR)/man
DOCDIR        ?= $(DATADIR)/doc/mxgate
SYSCONFDIR    ?= $(root_of)/etc
LOCALSTATEDIR ?= $(root_of)/var
UNITDIR       ?= $(root_of)/lib/systemd/system
# The sample config with the installed paths, user "mxgate" and ports 25/587
# (on loopback until the admin opens them).
INSTALL_CONF   = -e 's|^hostname = .*|-- hostname = "mx.example.net"     -- default: this machine'"'"'s name|' \
                 -e 's|^state_dir = .*|state_dir = "$(LOCALSTATEDIR)/lib/mxgate"   -- state/, journal/, tls/|' \
                 -e '/^state_dir = /a spool_dir = "$(LOCALSTATEDIR)/spool/mxgate"   -- accepted mail' \
                 -e 's|^user = .*|user = "mxgate"                      -- made by the package (adduser --system)|' \
                 -e 's|^rules = .*|rules = "$(SYSCONFDIR)/mxgate/rules.d"|' \
                 -e '/^rules = /a stdlib = "$(DATADIR)/mxgate/stdlib"' \
                 -e 's|port = 2525,|port = 25,  |; s|port = 2587,|port = 587, |' \
                 -e 's|^  \(\["example.test"\]\)|  -- \1|'

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/mxgate/stdlib $(DESTDIR)$(SYSCONFDIR)/mxgate/rules.d \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(LOCALSTATEDIR)/spool/mxgate $(DESTDIR)$(LOCALSTATEDIR)/lib/mxgate
	install -m 0755 $(BIN)/mxgate $(DESTDIR)$(SBINDIR)/mxgate
	ln -sf mxgate $(DESTDIR)$(SBINDIR)/ruletest
	install -m 0644 stdlib/*.lua $(DESTDIR)$(DATADIR)/mxgate/stdlib/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 docs/PORTAL.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|/usr/sbin/|$(SBINDIR)/|g; s|/etc/mxgate|$(SYSCONFDIR)/mxgate|g; s|/var/|$(LOCALSTATEDIR)/|g' \
	    etc/mxgate.service > $(DESTDIR)$(UNITDIR)/mxgate.service
	@# An admin's config and rules are never overwritten (the package: conffiles).
	@for f in rules.d/*.lua; do t=$(DESTDIR)$(SYSCONFDIR)/mxgate/$$f; \
	    if [ -e $$t ]; then echo "kept $$t"; else install -m 0644 $$f $$t; fi; done
	@t=$(DESTDIR)$(SYSCONFDIR)/mxgate/mxgate.lua; if [ -e $$t ]; then echo "kept $$t"; \
	    else sed $(INSTALL_CONF) etc/mxgate.lua > $$t && chmod 0644 $$t; fi

# The Debian package, built from a copy of the tree (tracked and new files,
# not build output): mxgate_VERSION_ARCH.deb in the top directory.
DEBVERSION = $(shell sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)
DEB_PKGS   = debhelper dpkg-dev fakeroot lintian adduser
deb:
	@sh .ci/deps.sh $(DEB_PKGS)
	rm -rf build-deb && mkdir -p build-deb/mxgate-$(DEBVERSION)
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t build-deb/mxgate-$(DEBVERSION)
	cd build-deb/mxgate-$(DEBVERSION) && dpkg-buildpackage -us -uc -b
	cp build-deb/mxgate_$(DEBVERSION)_*.deb .
	@ls mxgate_$(DEBVERSION)_*.deb

# Builds the package, checks it with lintian, installs it on this machine
# (as root; apt-get install ./mxgate_*.deb), verifies the installed unit,
# starts the installed server as the unit would (not under systemd) and
# talks to it. Slow (a package build): not part of `make test`.
test-deb: deps
	$(MAKE) deb
	/usr/bin/python3 spec/package/test_package.py

clean:
	rm -rf build build-asan build-fuzz bin bin-asan bin-fuzz build-deb
