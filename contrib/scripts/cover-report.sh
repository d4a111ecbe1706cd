#!/bin/sh
# Prints statement coverage per package from Go coverage data folders (GOCOVERDIR format):
# unit tests, integration tests (the shim binaries containerd started), and both merged.
# Also writes <dir>/combined.out, a text profile for `go tool cover -html`.
#
#   cover-report.sh DIR     DIR holds unit/ and integration/, as `make cover` fills them
set -eu
dir=${1:?usage: cover-report.sh DIR}
go=${GO:-go}
module=$($go list -m)

percent() { # folder(s) -> "pkg pct" lines
	$go tool covdata percent -i="$1" 2>/dev/null |
		awk '$NF == "statements" { sub("%", "", $3); print $1, $3 }'
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have() { [ -n "$(ls -A "$1" 2>/dev/null)" ]; }
inputs=""
for k in unit integration; do
	: >"$tmp/$k"
	if have "$dir/$k"; then
		percent "$dir/$k" >"$tmp/$k"
		inputs="${inputs:+$inputs,}$dir/$k"
	fi
done
: >"$tmp/combined"
if [ -n "$inputs" ]; then
	percent "$inputs" >"$tmp/combined"
	$go tool covdata textfmt -i="$inputs" -o "$dir/combined.out"
fi

# Every package of the module but the tests' own, whether or not any test reached it.
$go list ./... | grep -v "^$module/integration" >"$tmp/pkgs"
printf '%-36s %8s %12s %9s\n' package unit integration combined
while read -r p; do
	u=$(awk -v p="$p" '$1 == p { print $2 "%" }' "$tmp/unit")
	i=$(awk -v p="$p" '$1 == p { print $2 "%" }' "$tmp/integration")
	c=$(awk -v p="$p" '$1 == p { print $2 "%" }' "$tmp/combined")
	printf '%-36s %8s %12s %9s\n' "${p#"$module"/}" "${u:--}" "${i:--}" "${c:--}"
done <"$tmp/pkgs"
echo "(-: no test of that kind reached the package; unit tests count every package they reach)"
