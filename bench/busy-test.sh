#!/usr/bin/env bash
# make test, N times (default 5), beside a CPU hog: a busy loop on every
# core for the whole of each run. Each run's exit and wall time go into
# bench/RESULTS.md (between the busy markers, which make bench keeps),
# rewritten after every run, so that a series cut short still records
# the runs it made; each run's output into build/busy-N.log. Exit 1 when
# any run failed.
set -u
. "$(dirname "$0")/section.sh"
runs=${1:-5}
cores=$(nproc)
mkdir -p build
rows=""
failed=0
done_runs=0
record() {
	local section
	section="<!-- busy:begin -->
## make test beside a CPU hog

\`bash bench/busy-test.sh $runs\` on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $cores cores, each kept busy by a loop for the whole run: $((done_runs - failed)) of $done_runs runs passed ($runs asked).

| run | make test | wall time, s |
|---|---|---|
${rows}<!-- busy:end -->"
	write_section busy "$section"
}
for i in $(seq "$runs"); do
	hogs=()
	for _ in $(seq "$cores"); do
		sh -c 'while :; do :; done' &
		hogs+=($!)
	done
	start=$(date +%s)
	make test >"build/busy-$i.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	kill "${hogs[@]}" 2>/dev/null
	wait "${hogs[@]}" 2>/dev/null
	verdict=passed
	if [ "$rc" -ne 0 ]; then
		verdict="failed (build/busy-$i.log)"
		failed=$((failed + 1))
	fi
	echo "run $i of $runs: $verdict in ${secs} s"
	rows="$rows| $i | $verdict | $secs |"$'\n'
	done_runs=$i
	record
done
[ "$failed" -eq 0 ]
