#!/usr/bin/env bash
# `up` of two rcluster binaries side by side, against the engine's floor, in one run.
#
#   bash bench/up-compare.sh OLD_BIN NEW_BIN [ROUNDS]      (default 7 rounds)
#
# Each round, in turn: the engine floor (six containers of the same image, created first,
# then started concurrently: what no `up` of 1 master + 2 replicas + 3 sentinels can beat on
# this engine), `up` with OLD_BIN, `up` with NEW_BIN (each from nothing to healthy, then
# `down --volumes`). Alternating inside every round keeps a machine that slows down during
# the run from favouring one binary. Prints min / median / max per figure, and each
# binary's median minus the floor's median.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/up-compare.sh OLD_BIN NEW_BIN [ROUNDS]}
NEW=${2:?usage: bench/up-compare.sh OLD_BIN NEW_BIN [ROUNDS]}
ROUNDS=${3:-7}
for bin in "$OLD" "$NEW"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
WORK=$(mktemp -d)
export RCLUSTER_STATE_DIR="$WORK/state"
export BENCH_PASSWORD=benchpassword0123456789
FLOOR_LABEL=io.rcluster.bench=floor-$$
cleanup() {
  docker ps -aq --filter "label=$FLOOR_LABEL" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=$FLOOR_LABEL" | xargs -r docker network rm >/dev/null 2>&1 || true
  "$NEW" --name bench-cmp down --volumes -q >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# The same topology as bench/run.sh's `up` figure.
cat > "$WORK/rc.toml" <<TOML
[cluster]
name = "bench-cmp"
[auth]
password_env = "BENCH_PASSWORD"
[master]
port = 0
[replicas]
port = 0
[sentinel]
port = 0
down_after_ms = 2000
TOML

# Both binaries use the image NEW builds (or already built) for this host's redis.
"$NEW" -f "$WORK/rc.toml" up -q && "$NEW" -f "$WORK/rc.toml" down --volumes -q
IMAGE=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^rcluster/redis:' | head -1)

floor() {
  local net=bench-floor-$$
  docker network create --label "$FLOOR_LABEL" "$net" >/dev/null
  local ids=()
  for i in 1 2 3 4 5 6; do
    ids+=("$(docker create --label "$FLOOR_LABEL" --network "$net" --name "$net-$i" "$IMAGE" \
      redis-server --port 6379 --save '' --appendonly no)")
  done
  local t0 t1
  t0=$(now)
  for id in "${ids[@]}"; do docker start "$id" >/dev/null & done
  wait
  t1=$(now)
  docker rm -f "${ids[@]}" >/dev/null
  docker network rm "$net" >/dev/null
  ms "$t0" "$t1"
}

timed_up() { # bin
  local t0 t1
  t0=$(now); "$1" -f "$WORK/rc.toml" up -q; t1=$(now)
  "$1" -f "$WORK/rc.toml" down --volumes -q
  ms "$t0" "$t1"
}

declare -a FLOOR OLDUP NEWUP
for round in $(seq 1 "$ROUNDS"); do
  FLOOR+=("$(floor)")
  OLDUP+=("$(timed_up "$OLD")")
  NEWUP+=("$(timed_up "$NEW")")
  echo "round $round: floor ${FLOOR[-1]} ms, old up ${OLDUP[-1]} ms, new up ${NEWUP[-1]} ms" >&2
done

stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%6d %8.0f %6d", a[1], m, a[NR] }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "figure (ms, $ROUNDS rounds)                       min   median    max"
printf '%-45s %s\n' "engine floor: six concurrent starts" "$(stats "${FLOOR[@]}")"
printf '%-45s %s\n' "up, old: $OLD" "$(stats "${OLDUP[@]}")"
printf '%-45s %s\n' "up, new: $NEW" "$(stats "${NEWUP[@]}")"
f=$(median "${FLOOR[@]}")
awk -v o="$(median "${OLDUP[@]}")" -v n="$(median "${NEWUP[@]}")" -v f="$f" \
  'BEGIN { printf "old - floor: %+d ms; new - floor: %+d ms; new - old: %+d ms (medians)\n", o - f, n - f, n - o }'
