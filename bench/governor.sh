#!/usr/bin/env bash
# Rate-governor timings: the client's tests whose assertions are wall-clock figures (how close
# to the allowed rate it runs, how few 429s it meets, how much a user cap slows it), kept out
# of `cargo test` because a loaded machine can fail them without any bug. They run against
# stub servers on 127.0.0.1 (src/intercom/tests.rs, the `timed_*` tests, ≈ 45 s in all), one at
# a time, and print their figures.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo test --release --lib intercom::tests::timed_ -- --ignored --nocapture --test-threads=1
