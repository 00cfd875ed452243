#!/usr/bin/env bash
# Benchmark: rcluster against the hand-written way, alternating, in one run.
#
#   bash bench/run.sh [ROUNDS]        (default 5; needs a release build and the image)
#
# The baseline is a plain docker-compose file of the same layout (1 master, 2 replicas,
# 3 sentinels) with default Redis and Sentinel settings, as the classic guides write it,
# on the same image. Both are timed until the same condition: `rcluster status` exits 0,
# i.e. the same health definition `up` waits for. The baseline's containers carry
# rcluster's labels and fixed addresses only so that `status` can judge them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
BIN=${RCLUSTER_BIN:-target/release/rcluster}
[ -x "$BIN" ] || cargo build --release --quiet
WORK=$(mktemp -d)
export RCLUSTER_STATE_DIR="$WORK/state"
export BENCH_PASSWORD=benchpassword0123456789
trap 'docker-compose -p benchbase -f "$WORK/base/docker-compose.yml" down -v >/dev/null 2>&1 || true;
      "$BIN" --name bench-rc down --volumes -q >/dev/null 2>&1 || true;
      "$BIN" -f "$WORK/big.toml" down --volumes -q >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# down_after_ms = 1000 keeps the failover figure comparable with earlier runs; rcluster
# warns about it (a second failover can follow the first; the figure ends at the first).
cat > "$WORK/rc.toml" <<TOML
[cluster]
name = "bench-rc"
[auth]
password_env = "BENCH_PASSWORD"
[master]
port = 0
[replicas]
port = 0
[sentinel]
port = 0
down_after_ms = 1000
failover_timeout_ms = 5000
TOML
cat > "$WORK/big.toml" <<TOML
[cluster]
name = "bench-big"
[auth]
password_env = "BENCH_PASSWORD"
[master]
port = 0
[replicas]
count = 10
port = 0
[sentinel]
count = 5
quorum = 3
port = 0
TOML
# The baseline, as rcluster's `status` sees it.
SUBNET=172.31.250
cat > "$WORK/base.toml" <<TOML
[cluster]
name = "benchbase"
subnet = "$SUBNET.0/24"
[auth]
password_env = "BENCH_PASSWORD"
[master]
port = 0
[replicas]
port = 0
[sentinel]
port = 0
TOML
IMAGE=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^rcluster/redis:' | head -1)
[ -n "$IMAGE" ] || { "$BIN" -f "$WORK/rc.toml" up -q && "$BIN" --name bench-rc down --volumes -q;
  IMAGE=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^rcluster/redis:' | head -1); }

mkdir -p "$WORK/base"
service() { # name node ip conf-dir command
  cat <<YML
  $1:
    image: $IMAGE
    user: "999:999"
    command: $5
    labels: { io.rcluster.project: benchbase, io.rcluster.node: $2 }
    volumes: [ "./$4:/etc/redis" ]
    networks: { net: { ipv4_address: $3 } }
YML
}
{
  echo "version: '2.4'"
  echo "services:"
  service master master "$SUBNET.10" master '["redis-server", "/etc/redis/redis.conf"]'
  for i in 1 2; do service "replica$i" "replica-$i" "$SUBNET.1$i" "replica$i" '["redis-server", "/etc/redis/redis.conf"]'; done
  for i in 1 2 3; do service "sentinel$i" "sentinel-$i" "$SUBNET.10$i" "sentinel$i" '["redis-server", "/etc/redis/sentinel.conf", "--sentinel"]'; done
  cat <<YML
networks:
  net:
    labels: { io.rcluster.project: benchbase, io.rcluster.subnet: "$SUBNET.0/24" }
    ipam: { config: [ { subnet: "$SUBNET.0/24" } ] }
YML
} > "$WORK/base/docker-compose.yml"

reset_base_configs() {
  rm -rf "$WORK/base/master" "$WORK/base/replica"* "$WORK/base/sentinel"*
  mkdir -p "$WORK/base/master"
  printf 'requirepass %s\nmasterauth %s\n' "$BENCH_PASSWORD" "$BENCH_PASSWORD" > "$WORK/base/master/redis.conf"
  for i in 1 2; do
    mkdir -p "$WORK/base/replica$i"
    printf 'requirepass %s\nmasterauth %s\nreplicaof %s.10 6379\n' "$BENCH_PASSWORD" "$BENCH_PASSWORD" "$SUBNET" > "$WORK/base/replica$i/redis.conf"
  done
  for i in 1 2 3; do
    mkdir -p "$WORK/base/sentinel$i"
    printf 'port 26379\nrequirepass %s\nsentinel monitor mymaster %s.10 6379 2\nsentinel auth-pass mymaster %s\n' \
      "$BENCH_PASSWORD" "$SUBNET" "$BENCH_PASSWORD" > "$WORK/base/sentinel$i/sentinel.conf"
  done
  chmod -R a+rwX "$WORK/base"
}

declare -a UP DOWN STATUS BASE BIG AGREE OUTAGE
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now); "$BIN" -f "$WORK/rc.toml" up -q; t1=$(now); UP+=("$(ms "$t0" "$t1")")
  t0=$(now); "$BIN" -f "$WORK/rc.toml" status -q; t1=$(now); STATUS+=("$(ms "$t0" "$t1")")
  t0=$(now); "$BIN" -f "$WORK/rc.toml" down --volumes -q; t1=$(now); DOWN+=("$(ms "$t0" "$t1")")

  reset_base_configs
  t0=$(now)
  docker-compose -p benchbase -f "$WORK/base/docker-compose.yml" up -d >/dev/null 2>&1
  until "$BIN" -f "$WORK/base.toml" status -q >/dev/null 2>&1; do sleep 0.05; done
  t1=$(now); BASE+=("$(ms "$t0" "$t1")")
  docker-compose -p benchbase -f "$WORK/base/docker-compose.yml" down -v >/dev/null 2>&1

  t0=$(now); "$BIN" -f "$WORK/big.toml" up -q; t1=$(now); BIG+=("$(ms "$t0" "$t1")")
  "$BIN" -f "$WORK/big.toml" down --volumes -q
  echo "round $round: up ${UP[-1]} ms, baseline ${BASE[-1]} ms, big up ${BIG[-1]} ms, status ${STATUS[-1]} ms, down ${DOWN[-1]} ms" >&2
done

# Failover: ROUNDS kills in a row on one group, each measured by failover-test itself.
# One unmeasured failover first, so the group is in steady state: for about two seconds
# after `up`, Sentinel's ping schedule restarts (up sets it back to its default) and a
# kill is detected up to 0.7 s later than in steady state.
"$BIN" -f "$WORK/rc.toml" up -q
"$BIN" -f "$WORK/rc.toml" failover-test --fault kill -q
json=$("$BIN" -f "$WORK/rc.toml" failover-test --fault kill --runs "$ROUNDS" --json)
"$BIN" -f "$WORK/rc.toml" down --volumes -q
for r in $(seq 0 $((ROUNDS - 1))); do
  AGREE+=("$(echo "$json" | python3 -c "import json,sys; print(json.load(sys.stdin)['runs'][$r]['timings_ms']['all_agree'])")")
  OUTAGE+=("$(echo "$json" | python3 -c "import json,sys; print(json.load(sys.stdin)['runs'][$r]['timings_ms']['first_write'])")")
done

stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%6d %8.0f %6d", a[1], m, a[NR] }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "figure (ms, $ROUNDS rounds)                       min   median    max"
printf '%-45s %s\n' "up, 1+2+3, nothing to healthy" "$(stats "${UP[@]}")"
printf '%-45s %s\n' "baseline compose, same condition" "$(stats "${BASE[@]}")"
printf '%-45s %s\n' "up, 1+10+5" "$(stats "${BIG[@]}")"
printf '%-45s %s\n' "down --volumes" "$(stats "${DOWN[@]}")"
printf '%-45s %s\n' "status" "$(stats "${STATUS[@]}")"
printf '%-45s %s\n' "failover: kill to all sentinels agree" "$(stats "${AGREE[@]}")"
printf '%-45s %s\n' "failover: write outage seen by clients" "$(stats "${OUTAGE[@]}")"
awk -v a="$(median "${UP[@]}")" -v b="$(median "${BASE[@]}")" 'BEGIN { printf "up / baseline (medians): %.3f\n", a / b }'
