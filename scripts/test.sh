#!/bin/sh
# The whole test suite: installs dependencies, checks formatting, builds plainly and with
# AddressSanitizer + UBSan, and runs every ctest (unit, fuzz-corpus replay, integration with real
# daemons, redis-server, ffmpeg and curl) in both builds. Ends with "N passed, N failed".
#
#   scripts/test.sh             everything
#   SW_TEST_QUICK=1 scripts/test.sh   the plain build only
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc)

sh scripts/deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

fail=0
pass=0
note() { printf '\n== %s\n' "$*"; }

note "clang-format"
bad=$(git ls-files '*.c' '*.h' 2>/dev/null | xargs -r clang-format --dry-run --Werror 2>&1 | grep -c 'error:' || true)
if [ "$bad" -gt 0 ]; then
    git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run --Werror 2>&1 | grep 'error:' | head -20
    echo "clang-format: $bad places differ"; fail=$((fail + 1))
else
    echo "clang-format: clean"; pass=$((pass + 1))
fi

run_suite() { # name builddir ctest-regex cmake-args...
    name=$1; dir=$2; regex=$3; shift 3
    note "build $name"
    if ! cmake -S "$top" -B "$dir" -DSW_WERROR=ON "$@" >"$dir.configure.log" 2>&1; then
        cat "$dir.configure.log"; fail=$((fail + 1)); return
    fi
    if ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
        grep -E 'error|Error' "$dir.build.log" | head -40; fail=$((fail + 1)); return
    fi
    note "ctest $name"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900 -R "$regex" 2>&1 | tee "$dir.ctest.log"
    p=$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$dir.ctest.log" | tail -1)
    if [ -n "$p" ]; then
        f=$(echo "$p" | awk '{print $1}'); t=$(echo "$p" | awk '{print $6}')
    else
        f=0; t=$(grep -Eo 'tests passed, 0 tests failed out of [0-9]+' "$dir.ctest.log" | awk '{print $NF}')
        [ -n "$t" ] || { t=0; f=1; }
    fi
    pass=$((pass + t - f)); fail=$((fail + f))
}

mkdir -p build-test
run_suite plain "$top/build-test/plain" "."
if [ -z "${SW_TEST_QUICK:-}" ]; then
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
    run_suite "asan+ubsan" "$top/build-test/asan" "." -DSW_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
    unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# ThreadSanitizer over the threaded ingest (SRT thread, demux threads, the loop), with real
# publishers: third-party reports are suppressed in tests/tsan.supp, ours fail the daemon's exit.
if [ -z "${SW_TEST_QUICK:-}" ]; then
    export TSAN_OPTIONS="suppressions=$top/tests/tsan.supp second_deadlock_stack=1 halt_on_error=0"
    run_suite "tsan (ingest)" "$top/build-test/tsan" "ingest|origin_publishers|origin_reconnect|http_server|edge_test_cache|edge_workers|edge_collapse" \
        -DSW_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
    unset TSAN_OPTIONS
fi

# libFuzzer: each target runs for a short while from its corpus (clang; new inputs go to a
# scratch folder, never into the checked-in corpus).
if [ -z "${SW_TEST_QUICK:-}" ]; then
    note "fuzz (libFuzzer, ${SW_FUZZ_SECONDS:-10} s per target)"
    fdir="$top/build-test/fuzz"
    if CC=clang cmake -S "$top" -B "$fdir" -DSW_FUZZ=ON -DSW_SANITIZE=address,undefined \
            -DCMAKE_BUILD_TYPE=Debug -DSW_WERROR=ON >"$fdir.configure.log" 2>&1 &&
        cmake --build "$fdir" -j"$jobs" >"$fdir.build.log" 2>&1; then
        for f in "$fdir"/tests/fuzz_*; do
            n=$(basename "$f"); what=${n#fuzz_}
            scratch=$(mktemp -d)
            if "$f" -max_total_time="${SW_FUZZ_SECONDS:-10}" -rss_limit_mb=2048 -print_final_stats=0 \
                    "$scratch" "$top/tests/fuzz/corpus/$what" >"$fdir.$n.log" 2>&1; then
                echo "fuzz $n: ok ($(grep -Eo 'Done [0-9]+ runs' "$fdir.$n.log" | tail -1))"; pass=$((pass + 1))
            else
                echo "fuzz $n: FAILED"; tail -n 30 "$fdir.$n.log"; fail=$((fail + 1))
            fi
            rm -rf "$scratch"
        done
    else
        tail -n 30 "$fdir.configure.log" "$fdir.build.log"; fail=$((fail + 1))
    fi
fi

note "summary"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
