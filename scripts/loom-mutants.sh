#!/usr/bin/env bash
# Shows that the loom model of the seqlock can fail: with either fence of the recipe removed,
# loom must find an interleaving where the reader accepts a torn copy. Exits non-zero if a
# mutant survives (the model would then prove nothing).
set -u
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
status=0
for mutant in loom_mutant_no_release_fence loom_mutant_no_acquire_fence; do
  if RUSTFLAGS="--cfg loom --cfg $mutant" cargo test -q -p shared --release --test loom_seqlock >/tmp/loom-$mutant.log 2>&1; then
    echo "loom mutant $mutant SURVIVED: the model did not catch the missing fence" >&2
    status=1
  elif grep -q "accepted a copy" /tmp/loom-$mutant.log; then
    echo "loom mutant $mutant killed: loom found a torn read"
  else
    echo "loom mutant $mutant failed for another reason:" >&2
    tail -n 20 /tmp/loom-$mutant.log >&2
    status=1
  fi
done
exit $status
