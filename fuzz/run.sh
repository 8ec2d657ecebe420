#!/bin/sh
# Runs the fuzz targets one after the other at the lowest CPU priority.
#
#   fuzz/run.sh                     # every target, the durations below
#   fuzz/run.sh open_npy 600        # one target for 600 s
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The stable toolchain does the
# job with RUSTC_BOOTSTRAP=1; `-s none` skips AddressSanitizer (npyflow has no
# unsafe outside src/sys.rs; crashes, panics, aborts, leaks of time or memory
# are what we look for). Logs go to fuzz/artifacts/<target>.log, crashing
# inputs to fuzz/artifacts/<target>/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
"$here/seed.sh" >/dev/null
RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz build -s none
bin="$here/target/x86_64-unknown-linux-gnu/release"

run() { # target seconds [runs]
    t=$1
    case $t in
        open_npz) dict=npz.dict ;;
        config_json) dict=json.dict ;;
        *) dict=npy.dict ;;
    esac
    mkdir -p "artifacts/$t"
    extra=""
    [ -n "${3:-}" ] && extra="-runs=$3"
    echo "== $t: up to $2 s ${3:+or $3 runs}"
    # -timeout: one input may not take 10 s; -rss_limit_mb: nor 2 GB.
    nice -n 19 "$bin/$t" "corpus/$t" -dict="dict/$dict" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -max_total_time="$2" $extra -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"artifacts/$t.log" 2>&1 || echo "   $t stopped early: see artifacts/$t.log"
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "artifacts/$t.log" | tail -2 | sed 's/^/   /'
}

if [ $# -ge 1 ]; then
    run "$1" "${2:-600}" "${3:-}"
else
    run header 300
    run open_npy 1800
    run open_npz 1800
    run config_json 1800
fi
