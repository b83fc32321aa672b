#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target in fuzz/ (CI, and by hand).
#
# Builds the targets once with nightly (libFuzzer needs it), runs each for FUZZ_SECS seconds
# starting from its committed seeds (fuzz/corpus/<target>/seed-*) plus what earlier runs on
# this machine found (fuzz/target/corpus/<target>), prints how many inputs each executed, and
# fails on a crash, a timeout or a leak, naming the input libFuzzer saved (fuzz/artifacts/).
# Without a nightly toolchain it says so and runs the protocol property tests instead.
#
# Environment:
#   FUZZ_SECS=45            seconds per target
#   FUZZ_TARGETS="..."      targets to run (default: all three)
#   FUZZ_SANITIZER=none     cargo fuzz -s: none (default: the crates are safe Rust) or address
#   FUZZ_INPUT_TIMEOUT=20   seconds one input may take before libFuzzer calls it a hang
#   FUZZ_TARGET_DIR=~/.cache/garou/fuzz-target   build directory, kept outside the checkout so
#                           a fresh clone on the same machine reuses the instrumented build
#                           (the first build of the dependency tree takes ~15 min of CPU)
# Reproduce a crash: cargo +nightly fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust

secs=${FUZZ_SECS:-45}
targets=${FUZZ_TARGETS:-"frame_decoder payload_decoder server_session"}
sanitizer=${FUZZ_SANITIZER:-none}
input_timeout=${FUZZ_INPUT_TIMEOUT:-20}
start=$(date +%s)
step() { echo "== $* ($(($(date +%s) - start)) s)"; }

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (rustup toolchain list): cargo fuzz cannot build libFuzzer targets." >&2
  echo "fuzz: running the protocol property tests instead (cargo test -p garou-protocol --test codec)." >&2
  exec cargo test -p garou-protocol --test codec --locked
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# -a: debug assertions (integer overflow checks) on; the build is otherwise optimized.
target_dir=${FUZZ_TARGET_DIR:-$HOME/.cache/garou/fuzz-target}
mkdir -p "$target_dir"
fuzz_flags=(-s "$sanitizer" -a --target-dir "$target_dir")
step "cargo +nightly fuzz build"
cargo +nightly fuzz build "${fuzz_flags[@]}"

failed=()
for t in $targets; do
  step "fuzz $t for ${secs}s"
  work="fuzz/target/corpus/$t"
  log="fuzz/target/fuzz-$t.log"
  mkdir -p "$work" "fuzz/corpus/$t"
  # libFuzzer adds new inputs to the first directory; the committed seeds stay as they are.
  if cargo +nightly fuzz run "${fuzz_flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout="$input_timeout" -print_final_stats=1 >"$log" 2>&1; then
    # "Done 123456 runs in 45 second(s)" and the final "#N DONE cov: ... exec/s: ..." line.
    runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    echo "fuzz $t: ${runs:-no run count found, see $log}"
    [ -n "$done_line" ] && echo "fuzz $t: $done_line"
  else
    echo "fuzz $t: FAILED (log $log):" >&2
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to|deadly signal' "$log" | head -20 >&2 || tail -30 "$log" >&2
    failed+=("$t")
  fi
done

step "fuzz done"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/<target>/)" >&2
  exit 1
fi
