# Sourced by the scripts that time make test: write_section NAME TEXT
# puts TEXT, which begins with <!-- NAME:begin --> and ends with
# <!-- NAME:end -->, into bench/RESULTS.md in place of that section, or
# at its end (make bench keeps such sections when it rewrites the file).
write_section() {
	local name=$1 section=$2 results=bench/RESULTS.md
	if grep -q "<!-- $name:begin -->" "$results"; then
		awk -v section="$section" -v begin="<!-- $name:begin -->" -v end="<!-- $name:end -->" '
			$0 == begin { print section; skip = 1; next }
			$0 == end { skip = 0; next }
			!skip { print }
		' "$results" >"$results.tmp" && mv "$results.tmp" "$results"
	else
		printf '\n%s\n' "$section" >>"$results"
	fi
}
