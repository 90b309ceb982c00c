#!/bin/sh
# Replay every committed fuzz corpus (tests/fuzz/corpus/NAME/) through its
# replay program tests/fuzz/replay_NAME, built by `make check`. A corpus
# without its replay program is an error, so a new target cannot be skipped.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
status=0
found=0
for dir in "$top_srcdir"/tests/fuzz/corpus/*/; do
	[ -d "$dir" ] || continue
	name=$(basename "$dir")
	prog="$top_builddir/tests/fuzz/replay_$name"
	found=$((found + 1))
	if [ ! -x "$prog" ]; then
		echo "FAIL: $name: no replay program $prog" >&2
		status=1
		continue
	fi
	echo "replaying $name"
	"$prog" "$dir" || { echo "FAIL: $name" >&2; status=1; }
done
[ "$found" -gt 0 ] || { echo "no corpora under $top_srcdir/tests/fuzz/corpus" >&2; exit 1; }
exit $status
