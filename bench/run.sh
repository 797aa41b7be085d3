#!/usr/bin/env bash
# bench/run.sh: throughput and latency of tollgate against HAProxy 2.6
# (jwt_verify) and against the upstream reached directly, in one run,
# interleaved. See bench/README.md.
#
# Environment (all optional):
#   ROUNDS=5 DURATION=10 THREADS=2 CONNS=64   throughput rounds (wrk)
#   LAT_ROUNDS=3 LAT_DURATION=10              paced latency rounds
#   PIN=0|1      1: gateways on CPU 1, wrk and upstream on CPU 0
#   PROFILE=0|1  1: also take a 10 s CPU profile of tollgate under load
#   KEEP=0|1     1: keep the temporary directory (configs, logs, profile)
#   BARE=0|1     1: also measure a bare httputil.ReverseProxy (the net/http floor)
#   LIMITS=0|1   1: also measure tollgate with every limit off (tg-nolimits)
#                and with every limit and a budget on (tg-limits)
#   FLOOR=0|1    1: also measure what any proxy adds on this machine:
#                HAProxy with no token check (hp-plain), a byte relay with
#                no work (relay) and the same relay burning RELAY_WORK of
#                CPU per request (relay-work)
#   RELAY_WORK=40us
#   OPENAI=1|0   1: also measure tollgate with a type: openai route (tg-openai):
#                a chat body posted by bench/chat.lua, the usage of each
#                answer metered at token prices against a budget
#   TG_ENV=...   environment for the tollgate server, e.g. "GOGC=200"
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
LAT_ROUNDS=${LAT_ROUNDS:-3}
LAT_DURATION=${LAT_DURATION:-10}
PIN=${PIN:-0}
PROFILE=${PROFILE:-0}
KEEP=${KEEP:-0}
TG_ENV=${TG_ENV:-}
BARE=${BARE:-0}
LIMITS=${LIMITS:-0}
FLOOR=${FLOOR:-0}
RELAY_WORK=${RELAY_WORK:-40us}
OPENAI=${OPENAI:-1}
unset DELAY_MS # set for the paced rounds only (pace.lua, chat.lua)

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
start_work bench

for tool in wrk haproxy curl go ss; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install -y haproxy wrk curl)" >&2; exit 1; }
done

# CPU placement: the gateways get CPU 1 alone, wrk and the upstream share
# CPU 0 (PIN=1); or everything floats over both CPUs (PIN=0).
gw_cpu=() load_cpu=()
if [[ $PIN == 1 ]]; then
	gw_cpu=(taskset -c 1)
	load_cpu=(taskset -c 0)
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== build (load average $load0)" >&2
mkdir -p "$work/bin" "$work/data"
(cd "$root" && go build -o "$work/bin/tollgate" ./cmd/tollgate &&
	go build -o "$work/bin/upstream" ./bench/upstream &&
	go build -o "$work/bin/jwkpem" ./bench/jwkpem &&
	go build -o "$work/bin/bareproxy" ./bench/bareproxy &&
	go build -o "$work/bin/relay" ./bench/relay)

up_port=$(freeport)
"${load_cpu[@]}" "$work/bin/upstream" -port "$up_port" >"$work/upstream.out" 2>&1 &
pids+=($!)
declare -A pid=([direct]=$!)
upstream="127.0.0.1:$up_port"

export TOLLGATE_ADMIN_PASSWORD=bench-admin-password
tg=("$work/bin/tollgate")
declare -A url=() tok=()

# start_tollgate NAME PROTECTION PLANS PRICE [TYPE]: a tollgate server
# with its own data_dir, config, user and token, its route /v1/ of TYPE
# (http unless given); NAME becomes a target.
start_tollgate() {
	local name=$1 protection=$2 plans=$3 price=$4 type=${5:-http} port dir extra=()
	port=$(freeport)
	dir="$work/$name"
	mkdir -p "$dir/data"
	cat >"$dir/tollgate.yaml" <<YAML
listen: 127.0.0.1:$port
data_dir: $dir/data
public_url: http://127.0.0.1:$port
server:
  access_log: false
  drain_timeout: 2s
protection: $protection
roles:
  user: {scopes: [infer:text]}
plans: $plans
routes:
  - name: bench
    path: /v1/
    type: $type
    upstreams: [http://$upstream]
    scopes: [infer:text]
    price: $price
YAML
	"${tg[@]}" user add bench --password bench-password --tenant acme --role user --config "$dir/tollgate.yaml" >/dev/null
	[[ $name == tollgate ]] && extra=(--pprof "127.0.0.1:$pprof_port")
	"${gw_cpu[@]}" env $TG_ENV "${tg[@]}" serve --config "$dir/tollgate.yaml" "${extra[@]}" >"$dir/tollgate.log" 2>&1 &
	pids+=($!)
	pid[$name]=$!
	waitfor "http://127.0.0.1:$port/healthz"
	tok[$name]=$("${tg[@]}" token mint --user bench --ttl 1h --config "$dir/tollgate.yaml" 2>/dev/null)
	url[$name]="http://127.0.0.1:$port/v1/chat/completions"
}

pprof_port=$(freeport)
waitfor "http://$upstream/v1/ping"
# As shipped: metering on (one ledger record per call), the per-IP limit
# on but far above the load.
start_tollgate tollgate '{ip_rate_limit: 1000000/s}' '{}' '{}'
if [[ $LIMITS == 1 ]]; then
	# Every limit off: the baseline the limits' cost is measured against.
	start_tollgate tg-nolimits '{ip_rate_limit: "off", login_rate_limit: "off"}' '{}' '{}'
	# Every limit on (user, tenant, route, IP, concurrency) and a budget
	# with a price, none of them reached by the load.
	start_tollgate tg-limits '{ip_rate_limit: 1000000/s}' \
		'{free: {rate_limit: 100000000/m, tenant_rate_limit: 100000000/m, concurrency: 100000, tenant_concurrency: 100000, budget: {amount: "100000000", period: month}}}' \
		'{per_request: "0.0001"}'
fi
if [[ $OPENAI == 1 ]]; then
	# The LLM path: an openai route reads the chat body, reserves its
	# max_tokens against the budget, and meters the usage of the answer
	# at token prices; the budget is far above what the load spends.
	start_tollgate tg-openai '{ip_rate_limit: 1000000/s}' \
		'{free: {budget: {amount: "100000000", period: month}}}' \
		'{per_1k_input_tokens: "0.0005", per_1k_output_tokens: "0.0015"}' openai
fi
token=${tok[tollgate]}
tg_port=${url[tollgate]#http://127.0.0.1:}
tg_port=${tg_port%%/*}

"$work/bin/jwkpem" -jwks "http://127.0.0.1:$tg_port/.well-known/jwks.json" -token "$token" >"$work/tollgate-es256.pem"
hp_port=$(freeport)
export BENCH_HAPROXY_BIND="127.0.0.1:$hp_port" BENCH_UPSTREAM="$upstream" \
	BENCH_PUBKEY="$work/tollgate-es256.pem" BENCH_AUD=tollgate BENCH_NBTHREAD=2
haproxy -q -c -f "$here/haproxy.cfg" >/dev/null
"${gw_cpu[@]}" haproxy -db -f "$here/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
pid[haproxy]=$!

url[direct]="http://$upstream/v1/chat/completions"
url[haproxy]="http://127.0.0.1:$hp_port/v1/chat/completions"
targets=(direct haproxy tollgate)
[[ $LIMITS == 1 ]] && targets+=(tg-nolimits tg-limits)
[[ $OPENAI == 1 ]] && targets+=(tg-openai)
if [[ $BARE == 1 ]]; then
	bp_port=$(freeport)
	"${gw_cpu[@]}" "$work/bin/bareproxy" -port "$bp_port" -upstream "http://$upstream" >"$work/bareproxy.log" 2>&1 &
	pids+=($!)
	pid[bare]=$!
	url[bare]="http://127.0.0.1:$bp_port/v1/chat/completions"
	targets+=(bare)
	waitfor "${url[bare]}"
fi
if [[ $FLOOR == 1 ]]; then
	hpp_port=$(freeport)
	BENCH_HAPROXY_PLAIN_BIND="127.0.0.1:$hpp_port" haproxy -q -c -f "$here/haproxy-plain.cfg" >/dev/null
	BENCH_HAPROXY_PLAIN_BIND="127.0.0.1:$hpp_port" "${gw_cpu[@]}" haproxy -db -f "$here/haproxy-plain.cfg" >"$work/haproxy-plain.log" 2>&1 &
	pids+=($!)
	pid[hp-plain]=$!
	url[hp-plain]="http://127.0.0.1:$hpp_port/v1/chat/completions"
	for name in relay relay-work; do
		port=$(freeport)
		w=0s
		[[ $name == relay-work ]] && w=$RELAY_WORK
		"${gw_cpu[@]}" "$work/bin/relay" -port "$port" -upstream "$upstream" -work "$w" >"$work/$name.log" 2>&1 &
		pids+=($!)
		pid[$name]=$!
		url[$name]="http://127.0.0.1:$port/v1/chat/completions"
	done
	targets+=(hp-plain relay relay-work)
	for t in hp-plain relay relay-work; do waitfor "${url[$t]}"; done
fi
bearer="Authorization: Bearer $token"
waitfor "${url[direct]}"
for i in $(seq 101); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' -H "$bearer" "${url[haproxy]}") == 200 ]] && break
	if [[ $i == 101 ]]; then echo "run.sh: haproxy did not come up:" >&2; cat "$work/haproxy.log" >&2; exit 1; fi
	sleep 0.1
done

# The same token with one signature byte changed (not the last character,
# whose low bits are padding).
sig=${token##*.}
c=${sig:10:1}
[[ $c == A ]] && c=B || c=A
tampered="${token%.*}.${sig:0:10}$c${sig:11}"

echo "== sanity: identity headers the upstream receives; bad tokens get 401" >&2
for t in haproxy tollgate; do
	base=${url[$t]%/chat/completions}
	echo "$t: $(curl -fsS -H "$bearer" -H 'X-User-ID: spoofed' "$base/echo-identity")" >&2
	for bad in "" "Authorization: Bearer $tampered" "Authorization: Bearer x.y.z"; do
		hb=()
		[[ -z $bad ]] || hb=(-H "$bad")
		code=$(curl -s -o /dev/null -w '%{http_code}' "${hb[@]}" "${url[$t]}")
		if [[ $code != 401 ]]; then echo "run.sh: $t answered $code to a bad token" >&2; exit 1; fi
	done
done

if [[ $OPENAI == 1 ]]; then
	echo "== sanity: the openai route meters a chat completion's usage" >&2
	export CHAT_BODY="$here/chat.json"
	answer=$(curl -fsS -H "Authorization: Bearer ${tok[tg-openai]}" -H 'Content-Type: application/json' \
		--data-binary "@$CHAT_BODY" "${url[tg-openai]}")
	grep -q '"completion_tokens":16' <<<"$answer" || { echo "run.sh: tg-openai answered $answer" >&2; exit 1; }
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tampered" --data-binary "@$CHAT_BODY" "${url[tg-openai]}")
	[[ $code == 401 ]] || { echo "run.sh: tg-openai answered $code to a bad token" >&2; exit 1; }
	base=${url[tg-openai]%/v1/chat/completions}
	for i in $(seq 51); do
		usage=$(curl -fsS -H "Authorization: Bearer ${tok[tg-openai]}" "$base/v1/me/usage")
		grep -q '"output_tokens":16' <<<"$usage" && break
		if [[ $i == 51 ]]; then echo "run.sh: tg-openai did not meter the call: $usage" >&2; exit 1; fi
		sleep 0.1
	done
	echo "tg-openai: $usage" >&2
fi

# runwrk TARGET ARGS...: wrk's output; fails on errors or non-2xx answers.
# tg-openai posts the chat body of bench/chat.lua (paced when DELAY_MS is
# set), the others send GET.
runwrk() {
	local t=$1 out
	shift
	local h=()
	case $t in
	direct | bare | hp-plain | relay | relay-work) ;;
	haproxy) h=(-H "$bearer") ;;
	tg-openai) h=(-H "Authorization: Bearer ${tok[$t]}" -s "$here/chat.lua") ;;
	*) h=(-H "Authorization: Bearer ${tok[$t]}") ;;
	esac
	out=$("${load_cpu[@]}" wrk --timeout 10s "$@" "${h[@]}" "${url[$t]}")
	if grep -q 'Socket errors' <<<"$out"; then
		echo "run.sh: warning: $t: $(grep 'Socket errors' <<<"$out")" >&2
	fi
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "run.sh: $t had errors:" >&2
		echo "$out" >&2
		exit 1
	fi
	printf '%s\n' "$out"
}
rps() { awk '/^Requests\/sec:/ {print $2}'; }
hz=$(getconf CLK_TCK)
# p LEVEL: the latency at that percentile of wrk --latency, in microseconds.
pct() {
	awk -v want="$1%" '$1==want {v=$2; u=v; gsub(/[0-9.]/,"",u); sub(/[a-z]+$/,"",v);
		f=(u=="us")?1:(u=="ms")?1000:(u=="s")?1000000:0; printf "%.0f\n", v*f}'
}

echo "== warm-up" >&2
for t in "${targets[@]}"; do runwrk "$t" -t"$THREADS" -c"$CONNS" -d3s >/dev/null; done

echo "== throughput: $ROUNDS rounds x ${targets[*]}, wrk -t$THREADS -c$CONNS -d${DURATION}s (PIN=$PIN)" >&2
declare -A all=() cpu=()
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for t in "${targets[@]}"; do
		c0=$(ticks "${pid[$t]}")
		out=$(runwrk "$t" -t"$THREADS" -c"$CONNS" -d"${DURATION}s")
		c1=$(ticks "${pid[$t]}")
		v=$(rps <<<"$out")
		n=$(awk '/requests in/ {print $1}' <<<"$out")
		# CPU microseconds the server process spent per request: unlike
		# req/s it hardly depends on what else runs on the machine.
		u=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f\n", c * 1e6 / hz / n}')
		all[$t]+="$v "
		cpu[$t]+="$u "
		line+=" $t=$v (${u}us cpu/req)"
	done
	echo "$line" >&2
done
declare -A med=() medcpu=()
for t in "${targets[@]}"; do
	med[$t]=$(tr ' ' '\n' <<<"${all[$t]}" | grep . | median)
	medcpu[$t]=$(tr ' ' '\n' <<<"${cpu[$t]}" | grep . | median1)
done

if [[ $PROFILE == 1 ]]; then
	echo "== CPU profile of tollgate under load (10 s)" >&2
	runwrk tollgate -t"$THREADS" -c"$CONNS" -d14s >/dev/null &
	wrkpid=$!
	sleep 2
	curl -fsS -o "$work/cpu.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=10" &
	curlpid=$!
	# Off-CPU: where the request goroutines wait, from five snapshots
	# (the innermost tollgate or net/http frame of each goroutine).
	for _ in 1 2 3 4 5; do
		curl -fsS "http://127.0.0.1:$pprof_port/debug/pprof/goroutine?debug=1"
		sleep 1
	done | awk '/^[0-9]+ @/ {n = $1; next}
		n && /^#/ && $3 ~ /tollgate\/tollgate|persistConn|conn\)\.serve|connReader/ {
			f = $3; sub(/\+0x.*/, "", f); sub(/.*\//, "", f); c[f] += n; n = 0 }
		END {for (k in c) printf "%8.1f %s\n", c[k] / 5, k}' | sort -rn | head -12 >"$work/goroutines.txt"
	wait "$curlpid"
	wait "$wrkpid"
	(cd "$root" && go tool pprof -top -nodecount=40 "$work/bin/tollgate" "$work/cpu.pprof" 2>/dev/null) >"$work/pprof-top.txt"
	(cd "$root" && go tool pprof -top -cum -nodecount=40 "$work/bin/tollgate" "$work/cpu.pprof" 2>/dev/null) >"$work/pprof-cum.txt"
	cat "$work/pprof-top.txt"
	echo
	cat "$work/pprof-cum.txt"
	echo
	echo "goroutines waiting, mean of 5 snapshots, by innermost frame:"
	cat "$work/goroutines.txt"
	echo
fi

[[ $LAT_ROUNDS -gt 0 ]] || LAT_ROUNDS=0
# Paced latency at half of tollgate's peak, the same offered load for all.
target_rate=$((med[tollgate] / 2))
delay_ms=$(awk -v c="$CONNS" -v r="$target_rate" 'BEGIN {d=c*1000/r; printf "%d\n", (d<1)?1:d+0.5}')
echo "== latency: $LAT_ROUNDS rounds, $CONNS connections paced at ~$target_rate req/s (delay mean ${delay_ms} ms)" >&2
declare -A p50s=() p99s=() rates=()
for r in $(seq "$LAT_ROUNDS"); do
	line="round $r:"
	for t in "${targets[@]}"; do
		pace=(-s "$here/pace.lua")
		[[ $t == tg-openai ]] && pace=() # chat.lua paces itself
		out=$(DELAY_MS=$delay_ms runwrk "$t" -t"$THREADS" -c"$CONNS" -d"${LAT_DURATION}s" --latency "${pace[@]}")
		p50s[$t]+="$(pct 50 <<<"$out") "
		p99s[$t]+="$(pct 99 <<<"$out") "
		rates[$t]+="$(rps <<<"$out") "
		line+=" $t=$(pct 99 <<<"$out")us@$(rps <<<"$out")/s"
	done
	echo "$line" >&2
done

echo
echo "machine: load average before the run: $load0; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(go version | awk '{print $3}'), $(haproxy -v | awk 'NR==1 {print $3}'), PIN=$PIN"
echo
echo "throughput (wrk -t$THREADS -c$CONNS, ${DURATION}s x $ROUNDS interleaved rounds, median req/s)"
printf '| %-11s | %10s | %12s | %s |\n' target "req/s" "CPU us/req" "req/s of each round"
printf '|-------------|-----------:|-------------:|---------------------|\n'
for t in "${targets[@]}"; do printf '| %-11s | %10s | %12s | %s |\n' "$t" "${med[$t]}" "${medcpu[$t]}" "${all[$t]% }"; done
awk -v a="${med[tollgate]}" -v b="${med[haproxy]}" 'BEGIN {printf "\ntollgate / haproxy = %.2f (target >= 1.50)\n", a/b}'
if [[ $LIMITS == 1 ]]; then
	awk -v a="${med[tg-limits]}" -v b="${med[tg-nolimits]}" -v h="${med[haproxy]}" 'BEGIN {
		printf "tg-limits / tg-nolimits = %.2f (limits cost %.1f%% of throughput; target <= 10%%)\n", a/b, 100*(1-a/b)
		printf "tg-limits / haproxy = %.2f (metering and a budget on; target >= 1.40)\n", a/h }'
fi
if [[ $OPENAI == 1 ]]; then
	awk -v a="${med[tg-openai]}" -v b="${med[tollgate]}" -v ca="${medcpu[tg-openai]}" -v cb="${medcpu[tollgate]}" 'BEGIN {
		printf "tg-openai / tollgate = %.2f in req/s, %.2f in CPU per request (the openai route against the http route)\n", a/b, ca/cb }'
	# Every call metered at its tokens: the warm-up's, the rounds' and the
	# sanity check's (64 input and 16 output tokens each).
	echo "tg-openai's ledger so far:"
	"${tg[@]}" usage --config "$work/tg-openai/tollgate.yaml" --group-by route
fi
echo

[[ $LAT_ROUNDS -gt 0 ]] || exit 0
echo "latency (paced ~$target_rate req/s offered, $CONNS conns, median of $LAT_ROUNDS rounds, microseconds)"
printf '| %-11s | %8s | %8s | %8s | %s |\n' target "req/s" p50 p99 "p99 added vs direct"
printf '|-------------|---------:|---------:|---------:|---------------------|\n'
dp99=$(tr ' ' '\n' <<<"${p99s[direct]}" | grep . | median)
for t in "${targets[@]}"; do
	m50=$(tr ' ' '\n' <<<"${p50s[$t]}" | grep . | median)
	m99=$(tr ' ' '\n' <<<"${p99s[$t]}" | grep . | median)
	mr=$(tr ' ' '\n' <<<"${rates[$t]}" | grep . | median)
	printf '| %-11s | %8s | %8s | %8s | %19s |\n' "$t" "$mr" "$m50" "$m99" "$((m99 - dp99))"
done
