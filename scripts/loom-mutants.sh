#!/usr/bin/env bash
# Mutation test of the memory orderings in shared/src: weakens every Acquire, Release, AcqRel
# and SeqCst ordering and every fence once, one at a time, and runs the loom model plus the
# fast shared tests against each mutant. Prints one line per mutant and `N of M caught`.
#
#   scripts/loom-mutants.sh              full sweep (for humans: about a minute per mutant)
#   scripts/loom-mutants.sh --sample K   K mutants picked at random (CI)
#   scripts/loom-mutants.sh --list       the mutants, without running them
#   scripts/loom-mutants.sh --only RE    the mutants whose site (file:line:...) matches RE
#
# A weakening: an ordering on an atomic operation becomes Relaxed; `fence(Acquire)`,
# `fence(Release)` and `fence(AcqRel)` are removed; `fence(SeqCst)` becomes `fence(AcqRel)`.
# Mutants are built in a copy of the workspace (mktemp -d); the worktree is never changed.
# Exit status: 0 if every mutant run was caught, 1 if one survived, 2 on a usage error.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)

sample=0
list=0
only=.
while [ $# -gt 0 ]; do
  case "$1" in
    --sample) sample="${2:?--sample needs a count}"; shift 2 ;;
    --list) list=1; shift ;;
    --only) only="${2:?--only needs a pattern}"; shift 2 ;;
    *) echo "usage: $0 [--sample K] [--list] [--only RE]" >&2; exit 2 ;;
  esac
done

# Every site: file:line:occurrence:ordering[:fence], from code lines only (not comments).
sites() {
  for f in shared/src/*.rs; do
    [ "$f" = shared/src/ids.rs ] && continue
    awk -v f="$f" '
      /^[[:space:]]*\/\// { next }
      {
        line = $0; k = 0
        while (match(line, /Ordering::(Acquire|Release|AcqRel|SeqCst)/)) {
          k++
          ord = substr(line, RSTART + 10, RLENGTH - 10)
          before = substr(line, 1, RSTART - 1)
          fence = (before ~ /fence\($/) ? ":fence" : ""
          printf "%s:%d:%d:%s%s\n", f, NR, k, ord, fence
          line = substr(line, RSTART + RLENGTH)
        }
      }' "$f"
  done
}

mapfile -t all < <(sites | grep -E -- "$only")
if [ "$sample" -gt 0 ]; then
  mapfile -t chosen < <(printf '%s\n' "${all[@]}" | shuf -n "$sample")
else
  chosen=("${all[@]}")
fi
if [ "$list" = 1 ]; then
  printf '%s\n' "${chosen[@]}"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
# The copy to mutate, and a pristine one to restore from (the worktree may change meanwhile).
mkdir "$work/ws" "$work/orig"
tar --exclude=./target --exclude=./.git --exclude=./bench -cf - . | tar -xf - -C "$work/ws"
cp -r shared/src "$work/orig/src"
# Mutants build in target dirs of their own: cargo names a workspace member's artifacts
# without its path, so a copy built in the worktree's target dir would overwrite (and could
# be mistaken for) the worktree's own. Dependencies stay cached there between runs.
loom_target="$root/target/mutants/loom"
fast_target="$root/target/mutants/fast"
log="$work/log"

# 0: every test passed (the mutant survived); 1: a test failed (caught); 124: timed out.
run_tests() {
  # The loom model first (the model is what should catch a weakening), then the fast tests.
  (cd "$work/ws" && RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$loom_target" \
    timeout 600 cargo test -q -p shared --release --test loom_seqlock) >"$log" 2>&1
  local rc=$?
  [ "$rc" -ne 0 ] && { [ "$rc" -eq 124 ] && return 124; return 1; }
  (cd "$work/ws" && CARGO_TARGET_DIR="$fast_target" \
    timeout 600 cargo test -q -p shared --lib --test ring --test audit --test stress --test stress_inplace) >>"$log" 2>&1
  rc=$?
  [ "$rc" -ne 0 ] && { [ "$rc" -eq 124 ] && return 124; return 1; }
  return 0
}

caught=0
total=0
survivors=()
for site in "${chosen[@]}"; do
  IFS=: read -r file line occ ord fence <<<"$site"
  pristine="$work/orig/src/${file#shared/src/}"
  target="$work/ws/$file"
  cp "$pristine" "$target"
  if [ -n "$fence" ]; then
    if [ "$ord" = SeqCst ]; then
      sed -i -E "${line}s/fence\(Ordering::SeqCst\)/fence(Ordering::AcqRel)/" "$target"
      what="fence(SeqCst) -> fence(AcqRel)"
    else
      sed -i -E "${line}s/fence\(Ordering::$ord\);?/();/" "$target"
      what="fence($ord) removed"
    fi
  else
    sed -i -E "${line}s/Ordering::$ord/Ordering::Relaxed/$occ" "$target"
    what="$ord -> Relaxed"
  fi
  if cmp -s "$pristine" "$target"; then
    echo "skipped  $file:$line  $what (the substitution changed nothing)" >&2
    continue
  fi
  # A mutant that does not build (or build its tests) is not a mutant.
  if ! (cd "$work/ws" && RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$loom_target" \
        cargo test -q -p shared --release --test loom_seqlock --no-run) >"$log" 2>&1; then
    echo "invalid  $file:$line  $what (does not build)" >&2
    cp "$pristine" "$target"
    continue
  fi
  total=$((total + 1))
  start=$(date +%s)
  run_tests
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    echo "SURVIVED $file:$line  $what"
    survivors+=("$file:$line $what")
  elif [ "$rc" -eq 124 ]; then
    # A timeout is not a catch: CI would only see a hung job.
    echo "TIMEOUT  $file:$line  $what  [${secs}s] (not a catch)"
    survivors+=("$file:$line $what (timeout)")
  else
    why=$(grep -m1 -E "panicked at|[Dd]eadlock|FAILED" "$log" | cut -c1-110)
    echo "caught   $file:$line  $what  [${secs}s] $why"
    caught=$((caught + 1))
  fi
  cp "$pristine" "$target"
done

echo "$caught of $total caught"
[ "$caught" -eq "$total" ]
