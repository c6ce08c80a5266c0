# canaryd - build, test, demo. Libraries are found with pkg-config; `make
# setup` (run by `make test` and `make demo`) installs whatever is missing.

CC      ?= cc
PKGS     = libuv yaml-0.1 jansson sqlite3 libcurl libcrypto
CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
OPT     ?= -O2 -g
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN    = -fsanitize=address,undefined
else ifeq ($(SAN),thread)
# ThreadSanitizer: the proxy workers (spec.workers) share weights, ejections
# and stats shards across threads; `make test-tsan` runs the tests with them
BUILD   ?= build-tsan
OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=thread
LDSAN    = -fsanitize=thread
else
BUILD   ?= build
LDSAN    =
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

# Sources live in src/ and in its layer folders (src/LAYER/NAME.c, one level
# deep); a .c dropped straight into src/ is built as well. Every folder is
# on the include path, so that "util.h" is found wherever a file lives:
# header names are unique across src/ (scripts/check-layers.sh says which
# folder may include which).
SRC_DIRS := src $(patsubst %/,%,$(sort $(dir $(wildcard src/*/*.[ch]))))
ALL_SRC  := $(wildcard src/*.c src/*/*.c)
CFLAGS  += $(CSTD) $(WARN) $(OPT) $(PKG_CFLAGS) $(addprefix -I,$(SRC_DIRS)) -MMD -MP
LDLIBS  += $(PKG_LIBS) -lm -lpthread

MAINS    = $(filter %/main.c %/canaryctl.c,$(ALL_SRC))
MAIN_OBJ = $(MAINS:src/%.c=$(BUILD)/obj/%.o)
LIB_SRC  = $(filter-out $(MAINS),$(ALL_SRC))
LIB_OBJ  = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
# unit tests: tests/unit/test_NAME.c or tests/unit/LAYER/test_NAME.c, each
# built as $(BUILD)/tests/test_NAME
TEST_SRC = $(wildcard tests/unit/test_*.c tests/unit/*/test_*.c)
TESTS    = $(addprefix $(BUILD)/tests/,$(basename $(notdir $(TEST_SRC))))
vpath test_%.c tests/unit $(sort $(dir $(wildcard tests/unit/*/test_*.c)))
BINS     = $(BUILD)/canaryd $(BUILD)/canaryctl $(BUILD)/canaryd-upstream $(BUILD)/canaryd-k8sctl
# benchmark tools: built with the rest (tests/e2e/test_loadgen.py runs
# them), never installed
BENCH_TOOLS = $(BUILD)/bench/loadgen

.PHONY: all setup test test-tsan test-unit test-e2e check-layers demo bench fuzz fuzz-long clean check-deps \
        install web-weight FORCE
all: $(BINS) $(BENCH_TOOLS) $(TESTS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libcanaryd.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

# --as-needed: the daemon loads libcurl only when a webhook or a metric
# provider first needs it (src/net/hooks.c), so it must not be DT_NEEDED
$(BUILD)/canaryd: $(filter %/main.o,$(MAIN_OBJ)) $(BUILD)/obj/gen/web_assets.o $(BUILD)/libcanaryd.a
	$(CC) $(LDSAN) -Wl,--as-needed -o $@ $^ $(LDLIBS) -ldl

# The dashboard: every file of web/ embedded with its gzip -9n copy and its
# SHA-256 ETag (tools/embed.c, src/api/assets.h), linked into canaryd only.
# web.list holds the names: adding or removing a file regenerates the table.
WEB_FILES := $(sort $(wildcard web/*.*))
WEB_GZ    := $(WEB_FILES:web/%=$(BUILD)/gen/web/%.gz)

$(BUILD)/canaryd-embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O1 -Wall -Wextra -Werror $(shell pkg-config --cflags libcrypto) -o $@ $< \
	      $(shell pkg-config --libs libcrypto)

$(BUILD)/gen/web.list: FORCE
	@mkdir -p $(dir $@)
	@echo '$(WEB_FILES)' | cmp -s - $@ || echo '$(WEB_FILES)' > $@

$(BUILD)/gen/web/%.gz: web/%
	@mkdir -p $(dir $@)
	gzip -9n -c $< > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web_assets.c: $(BUILD)/canaryd-embed $(BUILD)/gen/web.list $(WEB_FILES) $(WEB_GZ)
	$(BUILD)/canaryd-embed $@ index.html $(foreach f,$(WEB_FILES),$(f) $(BUILD)/gen/web/$(notdir $(f)).gz)

$(BUILD)/obj/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# the page's weight: each asset's bytes as served, identity and gzip
web-weight: $(WEB_GZ)
	@printf '%-12s %9s %9s\n' file bytes gzip; t=0; g=0; \
	for f in $(WEB_FILES); do n=$$(wc -c < $$f); z=$$(wc -c < $(BUILD)/gen/web/$$(basename $$f).gz); \
	  t=$$((t + n)); g=$$((g + z)); printf '%-12s %9d %9d\n' $$(basename $$f) $$n $$z; done; \
	printf '%-12s %9d %9d\n' total $$t $$g

$(BUILD)/canaryctl: $(filter %/canaryctl.o,$(MAIN_OBJ)) $(BUILD)/libcanaryd.a
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/canaryd-upstream: tools/upstream.c $(BUILD)/libcanaryd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $^ $(LDLIBS)

# the open-loop load generator of bench/mirror.sh (bench/loadgen.c)
$(BUILD)/bench/loadgen: bench/loadgen.c $(BUILD)/libcanaryd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $^ $(LDLIBS)

# drives the Kubernetes client (src/k8s.h) for tests/e2e/test_k8s.py
$(BUILD)/canaryd-k8sctl: tools/k8sctl.c $(BUILD)/libcanaryd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $^ $(LDLIBS)

# $< and the library, not $^: a test that #includes the .c it tests has
# that .c among its dependencies (-MMD), and it must not be linked twice
$(BUILD)/tests/%: %.c $(BUILD)/libcanaryd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(BUILD)/libcanaryd.a $(LDLIBS) $(CMOCKA_LIBS)

# what each target needs, installed only when missing (scripts/setup.sh)
setup:
	@sh scripts/setup.sh build

# Which src/ folder may include which (ARCHITECTURE.md's layers; the pure
# core includes no libuv, sockets or clock): fails on a forbidden edge.
check-layers:
	@sh scripts/check-layers.sh

# The builds of make test and make test-tsan run TEST_JOBS compilers at
# once (one per core): CI has 2 cores, and a build compiles one file at a
# time otherwise
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

# The layers, unit and end-to-end tests, then the same again under
# ASan+UBSan.
test:
	@sh scripts/setup.sh test
	@sh scripts/check-layers.sh
	@$(MAKE) -s -j$(TEST_JOBS) all
	@$(MAKE) -s -j$(TEST_JOBS) all SAN=1
	@sh tests/run.sh build build-san

# The tests that run several proxy workers (threads), under ThreadSanitizer,
# with every end-to-end test in them run with 2 workers.
# src/core is pure and single-threaded (engine.h, judge.h, simulate.h):
# ThreadSanitizer has nothing to find in its unit tests, which are the
# longest (the judge's and the simulator's rollouts)
TSAN_UNIT_SKIP = test_engine test_judge test_simulate test_readings test_template
TSAN_E2E = tests/e2e/test_workers.py tests/e2e/test_zero_loss.py tests/e2e/test_proxy.py tests/e2e/test_hardening.py \
           tests/e2e/test_mirror.py \
           tests/e2e/test_ab.py
test-tsan:
	@sh scripts/setup.sh test
	@$(MAKE) -s -j$(TEST_JOBS) all SAN=thread
	@CANARYD_TEST_WORKERS=2 CANARYD_E2E_FILES="$(TSAN_E2E)" \
	 CANARYD_UNIT_SKIP="$(TSAN_UNIT_SKIP)" sh tests/run.sh build-tsan

test-unit: all
	@sh tests/run.sh --unit-only $(BUILD)

test-e2e: all
	@sh tests/run.sh --e2e-only $(BUILD)

demo:
	@sh scripts/setup.sh demo
	@$(MAKE) -s all
	@sh demo/demo.sh $(BUILD)

bench:
	@sh scripts/setup.sh bench
	@$(MAKE) -s all
	@sh bench/run.sh $(BUILD)

# every libFuzzer target for FUZZ_SECONDS each (the CI run)
fuzz:
	@sh scripts/setup.sh fuzz
	@sh fuzz/run.sh $${FUZZ_SECONDS:-30}

# >= 10 million executions over all targets, slow inputs reported, figures
# per target at the end (see fuzz/run.sh)
fuzz-long:
	@sh scripts/setup.sh fuzz
	@sh fuzz/run.sh --long

# The two programs, their man pages, canaryctl's shell completions and the
# systemd unit (PREFIX, DESTDIR as usual). Nothing is started or enabled.
PREFIX  ?= /usr/local
install: $(BUILD)/canaryd $(BUILD)/canaryctl
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	        $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	        $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 755 $(BUILD)/canaryd $(BUILD)/canaryctl $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/canaryd.1 man/canaryctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 completions/canaryctl.bash \
	        $(DESTDIR)$(PREFIX)/share/bash-completion/completions/canaryctl
	install -m 644 completions/_canaryctl $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_canaryctl
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' deploy/systemd/canaryd.service \
	        > $(DESTDIR)$(PREFIX)/lib/systemd/system/canaryd.service

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TESTS:=.d) $(BUILD)/obj/gen/web_assets.d
