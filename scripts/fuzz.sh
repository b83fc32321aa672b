#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target in fuzz/ (CI, and by hand).
#
# Builds the targets once with nightly (libFuzzer needs it), runs each for FUZZ_SECS seconds
# starting from its committed seeds (fuzz/corpus/<target>/seed-*) plus what earlier runs on
# this machine found (fuzz/target/corpus/<target>), prints how many inputs each executed, and
# fails on a crash, a timeout or a leak, naming the input libFuzzer saved (fuzz/artifacts/).
# Also fails when it cannot fuzz: no nightly toolchain, cargo-fuzz not installable, a target
# that does not build, or a run that reports no executions. It never skips and passes.
# Its last line is `fuzz: ran N of M targets` (M: the [[bin]] targets in fuzz/Cargo.toml),
# which scripts/test.sh checks.
#
# Environment:
#   FUZZ_SECS=45            seconds per target
#   FUZZ_TARGETS="..."      targets to run (default: every [[bin]] in fuzz/Cargo.toml)
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
# Every target declared in fuzz/Cargo.toml, in file order.
all_targets=$(awk '/^\[\[bin\]\]/{b=1;next} /^\[/{b=0} b&&/^name *=/{gsub(/"/,"",$3);print $3}' fuzz/Cargo.toml)
targets=${FUZZ_TARGETS:-$all_targets}
sanitizer=${FUZZ_SANITIZER:-none}
input_timeout=${FUZZ_INPUT_TIMEOUT:-20}
start=$(date +%s)
step() { echo "== $* ($(($(date +%s) - start)) s)"; }

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "error: fuzz: no nightly toolchain (rustup toolchain list): cargo fuzz cannot build the" >&2
  echo "       libFuzzer targets. Install one (rustup toolchain install nightly --profile minimal)." >&2
  exit 1
fi
# cargo-fuzz, once: installed only when `cargo fuzz` is not there already.
[ -x "$HOME/.cargo/bin/cargo-fuzz" ] && export PATH="$PATH:$HOME/.cargo/bin"
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
  export PATH="$PATH:$HOME/.cargo/bin"
  cargo fuzz --version >/dev/null
fi

# -a: debug assertions (integer overflow checks) on; the build is otherwise optimized.
target_dir=${FUZZ_TARGET_DIR:-$HOME/.cache/garou/fuzz-target}
mkdir -p "$target_dir"
fuzz_flags=(-s "$sanitizer" -a --target-dir "$target_dir")
step "cargo +nightly fuzz build"
cargo +nightly fuzz build "${fuzz_flags[@]}"

failed=()
ran=0
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
    if [ -z "$runs" ] || [ "$(echo "$runs" | awk '{print $2}')" -eq 0 ]; then
      # libFuzzer exited 0 without running anything (wrong binary, empty run): not a pass.
      echo "fuzz $t: FAILED: no executions reported (log $log)" >&2
      tail -20 "$log" >&2
      failed+=("$t")
      continue
    fi
    echo "fuzz $t: $runs"
    [ -n "$done_line" ] && echo "fuzz $t: $done_line"
    ran=$((ran + 1))
  else
    echo "fuzz $t: FAILED (log $log):" >&2
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to|deadly signal' "$log" | head -20 >&2 || tail -30 "$log" >&2
    failed+=("$t")
  fi
done

step "fuzz done"
echo "fuzz: ran $ran of $(echo "$all_targets" | wc -w) targets"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (crash inputs under fuzz/artifacts/<target>/, logs fuzz/target/fuzz-<target>.log)" >&2
  exit 1
fi
