#!/usr/bin/env bash
# make test, N times (default 3), on an otherwise idle machine, warm: a
# first make test run beforehand fills the build cache (not counted;
# TEST_TIME_WARMUP=0 skips it when the cache is known warm). Each
# run's exit, wall time and CPU time (user and system, every process it
# waited for) go into bench/RESULTS.md between the test-time markers
# (make bench keeps them), rewritten after every run. The wall time can
# not go below the CPU time over the cores: that bound is written beside
# it, with the packages that took longest in the last run. Each run's
# output into build/test-time-N.log. Exit 1 when any run failed.
set -u
. "$(dirname "$0")/section.sh"
runs=${1:-3}
cores=$(nproc)
mkdir -p build
rows=""
failed=0
done_runs=0
walls=()
record() {
	local section median slowest
	median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	slowest=$(grep -E '^ok +[^ ]+\s+[0-9.]+s$' "build/test-time-$done_runs.log" | awk '{ sub(/s$/, "", $3); print $3, $2 }' |
		sort -rn | head -6 | awk '{ printf "%s (%.0f s), ", $2, $1 }' | sed 's/, $//; s|github.com/ipnlab/ipnlab/||g')
	section="<!-- test-time:begin -->
## make test's own time

\`bash bench/test-time.sh $runs\` on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $cores cores, warm build cache, idle machine: $((done_runs - failed)) of $done_runs runs passed ($runs asked). Median wall time ${median} s (goal: 150 s). The floor is the CPU time over the cores: no schedule of the same work ends sooner.

| run | make test | wall time, s | CPU time (user + system, go vet included), s | floor: CPU over $cores cores, s |
|---|---|---|---|---|
${rows}
Longest packages in the last run (the race run's, and the every-seed sweep's as the second suites/conformance): ${slowest}.
<!-- test-time:end -->"
	write_section test-time "$section"
}
if [ "${TEST_TIME_WARMUP:-1}" != 0 ]; then
	echo "warming the build cache (one make test, not counted; TEST_TIME_WARMUP=0 skips it)"
	make test >build/test-time-warm.log 2>&1 || echo "the warm-up run failed (build/test-time-warm.log); timing goes on"
fi
TIMEFORMAT='%R %U %S'
for i in $(seq "$runs"); do
	times=$({ time make test >"build/test-time-$i.log" 2>&1; } 2>&1)
	rc=$(tail -n 1 "build/test-time-$i.log" | sed -n 's/.*exit \([0-9]*\)$/\1/p')
	read -r real user sys <<<"$times"
	wall=$(tail -n 1 "build/test-time-$i.log" | sed -n 's/^make test: \([0-9]*\) s.*/\1/p')
	cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
	floor=$(awk -v c="$cpu" -v n="$cores" 'BEGIN { printf "%.0f", c / n }')
	verdict=passed
	if [ "${rc:-1}" != 0 ]; then
		verdict="failed (build/test-time-$i.log)"
		failed=$((failed + 1))
	fi
	echo "run $i of $runs: $verdict, ${wall:-$real} s wall, $cpu s CPU"
	walls+=("${wall:-${real%.*}}")
	rows="$rows| $i | $verdict | ${wall:-$real} | $cpu | $floor |"$'\n'
	done_runs=$i
	record
done
[ "$failed" -eq 0 ]
