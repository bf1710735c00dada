# Sourced by soak.sh and crash-campaign.sh (from the workspace root, with $root set).
# campaign_setup NAME: sets $bin (the binary: $EPOCHFUSE, else target/release/epochfuse,
# built if missing), $scratch (a scratch directory) and $shm (a shm root, under /dev/shm
# when there is one, as in production); exits 2 if the binary cannot be built.
campaign_setup() {
  bin="${EPOCHFUSE:-$root/target/release/epochfuse}"
  if [ ! -x "$bin" ]; then
    cargo build --release --bin epochfuse || exit 2
  fi
  scratch=$(mktemp -d "/tmp/epochfuse-$1.XXXXXX")
  shm="$scratch/shm"
  if [ -d /dev/shm ]; then shm=$(mktemp -d "/dev/shm/epochfuse-$1.XXXXXX"); fi
}
