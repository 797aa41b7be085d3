#!/usr/bin/env bash
# bench/steps.sh REV...: tollgate built at each git revision, measured in
# one run against the same upstream, interleaved round by round, so each
# step's cost or gain is read against the others under the same load.
# Prints the median req/s and CPU microseconds per request of each.
#
# Environment (all optional): ROUNDS=5 DURATION=10 THREADS=2 CONNS=64
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
[[ $# -gt 0 ]] || { echo "usage: bench/steps.sh REV..." >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
start_work steps

(cd "$root" && go build -o "$work/upstream" ./bench/upstream)
up_port=$(freeport)
"$work/upstream" -port "$up_port" >/dev/null 2>&1 &
pids+=($!)
waitfor "http://127.0.0.1:$up_port/v1/ping"

export TOLLGATE_ADMIN_PASSWORD=bench-admin-password
declare -A url=() tok=() pid=()
names=()
for rev in "$@"; do
	name=$(git -C "$root" rev-parse --short "$rev")
	names+=("$name")
	src="$work/src-$name"
	mkdir -p "$src" "$work/$name/data"
	git -C "$root" archive "$rev" | tar -x -C "$src"
	(cd "$src" && go build -o "$work/$name/tollgate" ./cmd/tollgate)
	port=$(freeport)
	cat >"$work/$name/tollgate.yaml" <<YAML
listen: 127.0.0.1:$port
data_dir: $work/$name/data
public_url: http://127.0.0.1:$port
server: {access_log: false}
protection: {ip_rate_limit: 1000000/s}
roles:
  user: {scopes: [infer:text]}
routes:
  - name: bench
    path: /v1/
    type: http
    upstreams: [http://127.0.0.1:$up_port]
    scopes: [infer:text]
YAML
	tg=("$work/$name/tollgate")
	"${tg[@]}" user add bench --password bench-password --tenant acme --role user --config "$work/$name/tollgate.yaml" >/dev/null
	"${tg[@]}" serve --config "$work/$name/tollgate.yaml" >"$work/$name/log" 2>&1 &
	pids+=($!)
	pid[$name]=$!
	waitfor "http://127.0.0.1:$port/healthz"
	tok[$name]=$("${tg[@]}" token mint --user bench --ttl 1h --config "$work/$name/tollgate.yaml" 2>/dev/null)
	url[$name]="http://127.0.0.1:$port/v1/chat/completions"
done

hz=$(getconf CLK_TCK)
for n in "${names[@]}"; do
	wrk -t"$THREADS" -c"$CONNS" -d3s -H "Authorization: Bearer ${tok[$n]}" "${url[$n]}" >/dev/null
done
declare -A rps=() cpu=()
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for n in "${names[@]}"; do
		c0=$(ticks "${pid[$n]}")
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H "Authorization: Bearer ${tok[$n]}" "${url[$n]}")
		c1=$(ticks "${pid[$n]}")
		if grep -q 'Non-2xx' <<<"$out"; then echo "steps.sh: $n answered errors" >&2; exit 1; fi
		v=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
		k=$(awk '/requests in/ {print $1}' <<<"$out")
		u=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$k" 'BEGIN {printf "%.1f\n", c * 1e6 / hz / n}')
		rps[$n]+="$v "
		cpu[$n]+="$u "
		line+=" $n=$v (${u}us)"
	done
	echo "$line" >&2
done
echo "tollgate by revision (wrk -t$THREADS -c$CONNS, ${DURATION}s x $ROUNDS interleaved rounds, medians; load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '| %-9s | %9s | %10s |\n' revision "req/s" "CPU us/req"
printf '|-----------|----------:|-----------:|\n'
for n in "${names[@]}"; do
	printf '| %-9s | %9s | %10s |\n' "$n" "$(tr ' ' '\n' <<<"${rps[$n]}" | grep . | median1)" "$(tr ' ' '\n' <<<"${cpu[$n]}" | grep . | median1)"
done
