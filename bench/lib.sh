# bench/lib.sh: helpers shared by run.sh and steps.sh (sourced).

# start_work NAME: makes the temporary directory $work and arranges that,
# however the script ends, every process in pids is stopped and $work is
# removed (kept when KEEP=1).
start_work() {
	work=$(mktemp -d "/tmp/tollgate-$1.XXXXXX")
	pids=()
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

cleanup() {
	local rc=$?
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}

# freeport prints a TCP port nobody listens on at 127.0.0.1.
freeport() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		if ! ss -Htln "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
}

# waitfor URL: until it answers, at most 10 s.
waitfor() {
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "$(basename "$0"): $1 did not come up" >&2
	return 1
}

# ticks PID: CPU time (user + system, all threads) in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# median, median1: the median of the numbers on stdin, whole or to a tenth.
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f\n", m}'; }
median1() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m}'; }
