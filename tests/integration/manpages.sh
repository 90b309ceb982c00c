#!/bin/bash
# manpages.sh - the manual pages format without a single groff warning
# (`groff -ww -z -man` prints nothing), and they keep up with the programs:
# every command in `vmctl --help` has an entry in vmctl(1), every option in
# `virtmgrd --help` one in virtmgrd(8).
set -euo pipefail

: "${top_builddir:?}" "${top_srcdir:?}"
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

command -v groff >/dev/null || fail "groff is not installed (Debian: groff-base)"
for page in docs/virtmgrd.8 docs/vmctl.1 docs/early_vms.xml.5; do
	[[ -f $top_srcdir/$page ]] || fail "$page is missing"
	out=$(groff -ww -z -man "$top_srcdir/$page" 2>&1) || fail "groff failed on $page: $out"
	[[ -z $out ]] || fail "groff warns about $page: $out"
	# the page renders to text with its NAME section
	groff -man -Tutf8 -P-cbou "$top_srcdir/$page" 2>/dev/null | grep '^NAME' >/dev/null || fail "$page has no NAME section"
	ok "$page formats without warnings"
done

# roff writes a hyphen in an option as \-
unroff() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$1"; }

vmctl_1=$(unroff "$top_srcdir/docs/vmctl.1")
virtmgrd_8=$(unroff "$top_srcdir/docs/virtmgrd.8")
cmds=$("$top_builddir/client/vmctl" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
[[ -n $cmds ]] || fail "no commands in vmctl --help"
for c in $cmds; do
	grep -Eq "^\.(B|BR|BI) ([^ ]+ \"[^\"]*\" )*$c( |$)" <<<"$vmctl_1" || fail "vmctl(1) lacks the command '$c'"
done
ok "vmctl(1) describes every command of vmctl --help: $(echo $cmds)"

opts=$("$top_builddir/server/virtmgrd" --help | grep -oE '^  --[a-z-]+' | tr -d ' ')
[[ -n $opts ]] || fail "no options in virtmgrd --help"
for o in $opts; do
	grep -q -- "$o" <<<"$virtmgrd_8" || fail "virtmgrd(8) lacks the option $o"
done
ok "virtmgrd(8) describes every option of virtmgrd --help"
