#!/usr/bin/env bash
# Coverage-guided fuzzing of profile parsing and validation, for a bounded
# time: the cargo-fuzz target `profile` (fuzz/fuzz_targets/profile.rs) over
# the seeds in fuzz/seeds/. Exits non-zero when an input panics, overflows
# the stack, trips AddressSanitizer, or hangs; the input is then saved under
# fuzz/artifacts/profile/ and its path printed.
#
#   scripts/fuzz.sh [SECONDS]          fuzz for SECONDS (default 60)
#
# Installs cargo-fuzz (from crates.io) when it is missing. cargo-fuzz needs
# nightly-only rustc flags (-Zsanitizer, sanitizer coverage); this machine
# has only the stable toolchain, so they are unlocked with RUSTC_BOOTSTRAP=1.
#
# Environment:
#   FUZZ_TARGET_DIR   cargo target dir for the fuzz build (default fuzz/target)
#   FUZZ_SANITIZER    address (default) or none (faster, catches only panics)
#   FUZZ_TIMEOUT      seconds one input may take before it counts as a hang (30)
#   FUZZ_TARGET       profile (default), or egress: what the egress proxy
#                     parses from the agent (ClientHello, HTTP heads, DNS
#                     queries), seeded from fuzz/seeds-egress/
#
# Inputs that find new coverage are kept in fuzz/corpus/profile/ (ignored by
# git) and reused by the next run. To replay one input:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run profile fuzz/artifacts/profile/crash-...
set -euo pipefail

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

export RUSTC_BOOTSTRAP=1
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
sanitizer=${FUZZ_SANITIZER:-address}
target=${FUZZ_TARGET:-profile}
case $target in
profile) seeds=fuzz/seeds extra=(-max_len=8192 -dict=fuzz/profile.dict) ;;
egress) seeds=fuzz/seeds-egress extra=(-max_len=20000) ;;
*)
    echo "fuzz.sh: unknown FUZZ_TARGET $target (profile or egress)" >&2
    exit 2
    ;;
esac
corpus=fuzz/corpus/$target
mkdir -p "$corpus"

# Built first, so that -max_total_time counts fuzzing only.
cargo fuzz build "$target" --sanitizer "$sanitizer" --target-dir "$target_dir"

# The first corpus directory receives new inputs; the seeds stay as they are.
# -max_len: room for a profile several times the size of the built-ins, or
# for a ClientHello of several records.
cargo fuzz run "$target" --sanitizer "$sanitizer" --target-dir "$target_dir" \
    "$corpus" "$seeds" -- \
    -max_total_time="$secs" \
    -timeout="${FUZZ_TIMEOUT:-30}" \
    -rss_limit_mb=4096 \
    "${extra[@]}" \
    -print_final_stats=1
