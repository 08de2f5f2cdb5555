#!/bin/sh
# A short libFuzzer run of both targets (request-to-id and the FastCGI
# record parser) inside make test; `make fuzz` runs them for a minute each.
# Skips only when clang's fuzzer runtime cannot exist on this machine.
echo "1..2"
if ! command -v clang >/dev/null 2>&1; then
    echo "ok 1 # SKIP clang not installed"; echo "ok 2 # SKIP clang not installed"; exit 0
fi
n=1
for t in reqparse fcgi_in; do
    if make -s build/fuzz_$t >/dev/null 2>&1 && mkdir -p build/fuzz-corpus/$t &&
       ASAN_OPTIONS=detect_leaks=1 build/fuzz_$t -max_total_time=5 -timeout=10 \
           -artifact_prefix=build/fuzz-$t- build/fuzz-corpus/$t tests/fuzz/corpus/$t >/dev/null 2>build/fuzz-$t-short.log; then
        echo "ok $n - fuzz_$t: 5 s without a finding"
    else
        echo "not ok $n - fuzz_$t"
        tail -20 build/fuzz-$t-short.log | sed 's/^/# /'
    fi
    n=$((n + 1))
done
