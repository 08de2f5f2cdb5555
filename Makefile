# avatar.fcgi: build, test, run, benchmark, install.
# Every variable below can be overridden on the command line (make CC=clang PREFIX=/usr).

VERSION  = 0.1.0
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man/man1
SHAREDIR = $(PREFIX)/share/avatar-fcgi

WARN     = -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
           -Wpointer-arith -Wcast-qual -Wwrite-strings -Wundef -Wvla -Wnull-dereference \
           -Wconversion -Wno-sign-conversion
CFLAGS  ?= -O2 -g
# The test and CI builds add WERROR=-Werror: no warning is left there.
WERROR  ?=
CFLAGS  += -std=c11 $(WARN) $(WERROR) -D_GNU_SOURCE -DAVATAR_VERSION='"$(VERSION)"' \
           -fstack-protector-strong -D_FORTIFY_SOURCE=2
LDFLAGS ?=
# libfcgi is not linked: its reader blocks on one connection (see
# fcgi/fcgi_in.h); only its protocol header <fastcgi.h> is used, so
# libfcgi-dev stays a build dependency.
LDLIBS   = -lcrypto $(VIPS_LIBS)

# The modules of the responder. Each fcgi/X.c has fcgi/X.h as its whole API.
# One module a line, so that changes adding modules merge cleanly.
MODS     =
MODS    += clock
MODS    += log
MODS    += conf
MODS    += num
MODS    += reqparse
MODS    += resolve
MODS    += sniff
MODS    += httpdate
MODS    += cond
MODS    += cache
MODS    += resp
MODS    += handler
MODS    += out
MODS    += fcgi_in
MODS    += stats
MODS    += pool
MODS    += server
MODS    += sock
MODS    += sign
MODS    += store
MODS    += image
MODS    += upload
MODS    += write
MODS    += variant
MODS    += vmake
MODS    += batch
MODS    += publish
OBJS     = $(MODS:%=fcgi/%.o)
HDRS     = $(MODS:%=fcgi/%.h) fcgi/ext.h

# libvips, for the image module only (fcgi/image.c is its one user; it runs in
# upload processes). Its headers count as system headers, so the strict
# warnings above stay on our code. LDLIBS is expanded when the link runs, so
# it may name VIPS_LIBS before this line.
VIPS_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags vips libwebpmux))
VIPS_LIBS   = $(shell pkg-config --libs vips libwebpmux)
fcgi/image.o build/asan/image.o: CFLAGS += $(VIPS_CFLAGS)
fcgi/image.o build/asan/image.o: fcgi/image.h fcgi/sniff.h

# The image.o rules above name a target first: without this, a bare make
# built fcgi/image.o alone.
.DEFAULT_GOAL := all
all: avatar.fcgi

# Install first, then build: every compile waits for "ensure-deps build", and
# each target a newcomer may type first (run, test, bench, fuzz, stress)
# installs what it needs before it builds anything, so any of them works as
# the very first command on a fresh Debian 12 machine.
DEPS_TARGETS = deps-build deps-run deps-fuzz deps-bench deps-test
$(DEPS_TARGETS):
	@tests/lib/ensure-deps $(@:deps-%=%)
deps: deps-test

avatar.fcgi: $(OBJS) fcgi/main.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) fcgi/main.o $(LDLIBS)

fcgi/%.o: fcgi/%.c $(HDRS) | deps-build
	$(CC) $(CFLAGS) -c -o $@ $<

# Sanitizer build used by the tests: same sources, separate objects.
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
build/asan/%.o: fcgi/%.c $(HDRS) | deps-build
	@mkdir -p build/asan
	@$(CC) $(CFLAGS) -Werror $(ASAN_FLAGS) -c -o $@ $<
build/avatar.fcgi.asan: $(MODS:%=build/asan/%.o) build/asan/main.o
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: one C file per module under tests/unit, each printing TAP.
UNITS    = $(patsubst tests/unit/%.c,build/unit/%,$(wildcard tests/unit/test_*.c))
build/unit/%: tests/unit/%.c tests/unit/tap.h $(MODS:%=build/asan/%.o) | deps-build
	@mkdir -p build/unit
	@$(CC) $(CFLAGS) -Werror $(ASAN_FLAGS) -Ifcgi -o $@ $< $(filter-out build/asan/main.o,$(MODS:%=build/asan/%.o)) $(LDLIBS)

# The image module's test links libvips, and only the modules it needs.
# LeakSanitizer stays on and finds nothing in libvips or glib (a dropped
# image_out_free is reported), so it needs no suppression list.
build/unit/test_image: tests/unit/test_image.c tests/unit/tap.h build/asan/image.o build/asan/sniff.o \
    | deps-build
	@mkdir -p build/unit
	@$(CC) $(CFLAGS) -Werror $(ASAN_FLAGS) $(VIPS_CFLAGS) -Ifcgi -o $@ $< \
	    build/asan/image.o build/asan/sniff.o $(VIPS_LIBS)

# The variants' test decodes what vmake wrote, so it includes libvips too.
build/unit/test_vmake: tests/unit/test_vmake.c tests/unit/tap.h $(MODS:%=build/asan/%.o) \
    | deps-build
	@mkdir -p build/unit
	@$(CC) $(CFLAGS) -Werror $(ASAN_FLAGS) $(VIPS_CFLAGS) -Ifcgi -o $@ $< \
	    $(MODS:%=build/asan/%.o) $(LDLIBS)

# Test tools (FastCGI client used by the end-to-end tests).
build/fcgi-client: tests/tools/fcgi-client.c | deps-build
	@mkdir -p build
	$(CC) $(CFLAGS) -Werror -o $@ $<
build/fcgi-hostile: tests/tools/fcgi-hostile.c | deps-build
	@mkdir -p build
	$(CC) $(CFLAGS) -Werror -o $@ $<

# libFuzzer target for the request-to-id path.
FUZZ_SECONDS ?= 60
build/fuzz_reqparse: tests/fuzz/fuzz_reqparse.c fcgi/reqparse.c fcgi/num.c $(HDRS) | deps-fuzz
	@mkdir -p build
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ifcgi -o $@ \
	    tests/fuzz/fuzz_reqparse.c fcgi/reqparse.c fcgi/num.c
build/fuzz_fcgi_in: tests/fuzz/fuzz_fcgi_in.c fcgi/fcgi_in.c $(HDRS) | deps-fuzz
	@mkdir -p build
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ifcgi -o $@ \
	    tests/fuzz/fuzz_fcgi_in.c fcgi/fcgi_in.c

TEST_BINS = avatar.fcgi build/avatar.fcgi.asan build/fcgi-client build/fcgi-hostile $(UNITS)

# Test files run two at a time: most of their time is spent waiting for
# servers to start, stop or time out, so two files share 2 cores well
# (measured: 630 s against 998 s one at a time, all passing). Each file
# takes its own ports, directories and processes. TEST_JOBS=1 runs them
# one by one; the stress tests, which load the machine on purpose, always do.
TEST_JOBS ?= 2

test: deps-test
	$(MAKE) WERROR=-Werror $(TEST_BINS)
	prove -j$(TEST_JOBS) $(PROVE_FLAGS) $(UNITS) tests/t/

fuzz: build/fuzz_reqparse build/fuzz_fcgi_in
	tests/lib/run-fuzz $(FUZZ_SECONDS)

stress: deps-test all build/avatar.fcgi.asan build/fcgi-client build/fcgi-hostile
	prove $(PROVE_FLAGS) tests/stress/

# The single-avatar rows (tests/bench/run), then the site-like Zipf
# workload (tests/bench/zipf.py, results/zipf.md); both always run.
bench: deps-bench all
	rc=0; tests/bench/run $(if $(QUICK),--quick) || rc=$$?; \
	/usr/bin/python3 -B tests/bench/zipf.py $(if $(QUICK),--quick --out tests/bench/results/quick) || rc=$$?; \
	exit $$rc

SERVER ?= nginx
MODE   ?=
# FASTPATH=1: nginx serves the published tree itself (docs/fastpath.md).
FASTPATH ?=
# TLS=1: nginx over TLS and HTTP/2 with a self-signed certificate
# (avatar-tls.conf, or avatar-fastpath-tls.conf with FASTPATH=1).
TLS    ?=
RUNURL  = $(if $(TLS),https,http)://127.0.0.1:$(PORT)
PORT   ?= 8080
# make run serves a copy of avatars/ (uploads must not change tracked files)
# and enables signed uploads with a development key made on first use.
run: deps-run all
	@mkdir -p .run
	@[ -d .run/avatars ] || cp -a avatars .run/avatars
	@[ -s .run/dev.key ] || (umask 077; openssl rand -hex 32 >.run/dev.key)
	@echo "Upload an avatar (link valid 1 h):"
	@echo "  curl$(if $(TLS), -k) -T photo.jpg \"$(RUNURL)/1000?$$(./avatar.fcgi sign --key-file .run/dev.key PUT 1000 3600)\""
	@echo "Then: $(RUNURL)/1000?s=64 (64 px), /1000.webp (WebP)"
	tests/lib/stack run --server $(SERVER) $(if $(MODE),--mode $(MODE)) $(if $(FASTPATH),--fastpath) $(if $(TLS),--tls) \
	    --port $(PORT) --run .run/$(SERVER) \
	    --avatars .run/avatars -- --key-file .run/dev.key

INSTALL_FILES = $(BINDIR)/avatar.fcgi $(MANDIR)/avatar.fcgi.1
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(SHAREDIR)
	install -m 0755 avatar.fcgi $(DESTDIR)$(BINDIR)/avatar.fcgi
	install -m 0644 fcgi/avatar.fcgi.1 $(DESTDIR)$(MANDIR)/avatar.fcgi.1
	for d in nginx lighttpd apache systemd; do \
	    install -d $(DESTDIR)$(SHAREDIR)/$$d; \
	    for f in conf/$$d/*; do case "$$f" in *.md) continue;; esac; \
	        [ -f "$$f" ] && install -m 0644 "$$f" $(DESTDIR)$(SHAREDIR)/$$d/; done; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/avatar.fcgi $(DESTDIR)$(MANDIR)/avatar.fcgi.1
	for d in nginx lighttpd apache systemd; do \
	    for f in conf/$$d/*; do rm -f $(DESTDIR)$(SHAREDIR)/$$d/$${f##*/}; done; \
	    rmdir $(DESTDIR)$(SHAREDIR)/$$d 2>/dev/null || true; \
	done
	rmdir $(DESTDIR)$(SHAREDIR) 2>/dev/null || true

clean:
	rm -rf build fcgi/*.o avatar.fcgi .run

.PHONY: all test deps $(DEPS_TARGETS) fuzz stress bench run install uninstall clean
