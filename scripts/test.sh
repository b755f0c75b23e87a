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

run_suite() { # name builddir cmake-args...
    name=$1; dir=$2; shift 2
    note "build $name"
    if ! cmake -S "$top" -B "$dir" -DSW_WERROR=ON "$@" >"$dir.configure.log" 2>&1; then
        cat "$dir.configure.log"; fail=$((fail + 1)); return
    fi
    if ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
        grep -E 'error|Error' "$dir.build.log" | head -40; fail=$((fail + 1)); return
    fi
    note "ctest $name"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900 2>&1 | tee "$dir.ctest.log"
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
run_suite plain "$top/build-test/plain"
if [ -z "${SW_TEST_QUICK:-}" ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_suite "asan+ubsan" "$top/build-test/asan" -DSW_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
fi

note "summary"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
