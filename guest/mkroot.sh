#!/bin/bash
# mkroot.sh - build a Debian root file system image (ext4) for VmConfig.root
# (vmctl run --root IMAGE; docs/storage.md, "A root file system").
#
# Two sources for the files:
#   (default) offline, from this host's own installed Debian packages: the
#       files `dpkg -L` lists for each PACKAGE and, recursively, for every
#       package it Depends or Pre-Depends on (the first installed
#       alternative; a virtual package by an installed provider). No
#       maintainer scripts run: the image holds the packages' files, which
#       is what running a program needs. Nothing is downloaded.
#   --mmdebstrap: a fresh minbase system from a Debian mirror with the
#       packages included (Debian's mmdebstrap; it reaches the mirror at
#       build time, never at VM run time).
# Either way the tree gets the usual mount points, /etc/passwd and
# /etc/group with root (and a user "u", uid 1000, with --user-u), and is
# written into an ext4 image with mke2fs -d (e2fsprogs), sized to fit with
# room to spare unless --size says otherwise.
#
# Usage: mkroot.sh [OPTIONS] -o IMAGE PACKAGE...
#   -o, --output IMAGE   the image to write (replaced)
#   --size SIZE          image size (mke2fs units: 512M, 2G); default: the tree + 25% + 32M
#   --tree DIR           build the tree in DIR and keep it (default: a temp dir, removed)
#   --mmdebstrap         fetch the packages with mmdebstrap instead of copying the host's
#   --suite SUITE        with --mmdebstrap (default: bookworm)
#   --mirror URL         with --mmdebstrap (default: mmdebstrap's)
#   --user-u             add user u (1000:1000, home /home/u)
#   -h, --help
# Run it as root so that the files keep their owners (as non-root they
# belong to the caller in the image).
set -euo pipefail
prog=${0##*/}
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
usage() { sed -n '/^# Usage:/,/^# Run it/p' "$0" | sed 's/^# \{0,1\}//'; }

out= size= tree= keep_tree=0 mode=host suite=bookworm mirror= user_u=0
pkgs=()
while (($#)); do
	case $1 in
	-o | --output) out=${2:?}; shift ;;
	--size) size=${2:?}; shift ;;
	--tree) tree=${2:?}; keep_tree=1; shift ;;
	--mmdebstrap) mode=mmdebstrap ;;
	--suite) suite=${2:?}; shift ;;
	--mirror) mirror=${2:?}; shift ;;
	--user-u) user_u=1 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; pkgs+=("$@"); break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) pkgs+=("$1") ;;
	esac
	shift
done
[[ -n $out ]] || die "no output image: -o IMAGE"
((${#pkgs[@]})) || die "no packages named (for example: $prog -o py.img python3)"
command -v mke2fs >/dev/null || PATH=$PATH:/sbin:/usr/sbin
command -v mke2fs >/dev/null || die "mke2fs not found (Debian package e2fsprogs)"

if [[ -z $tree ]]; then
	tree=$(mktemp -d "${TMPDIR:-/tmp}/mkroot.XXXXXX")
	trap 'rm -rf "$tree"' EXIT
else
	mkdir -p "$tree"
fi

# ---- offline: the host's installed packages and their dependencies
installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

declare -A want=() provider=()
provides_loaded=0
load_provides() { # virtual package -> an installed package providing it
	local p prov v
	while read -r p prov; do
		[[ -n $prov ]] || continue
		IFS=',' read -ra vs <<<"$prov"
		for v in "${vs[@]}"; do
			v=${v%%(*}
			v=${v//[[:space:]]/}
			[[ -n $v && -z ${provider[$v]:-} ]] && provider[$v]=$p
		done
	done < <(dpkg-query -W -f='${db:Status-Status} ${Package} ${Provides}\n' 2>/dev/null |
		sed -n 's/^installed //p')
	provides_loaded=1
}

resolve() { # add $1 and its dependencies to want[]
	local pkg=$1 deps group alt name found
	[[ -n ${want[$pkg]:-} ]] && return 0
	want[$pkg]=1
	deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$pkg")
	IFS=',' read -ra groups <<<"$deps"
	for group in "${groups[@]}"; do
		[[ $group =~ [^[:space:]] ]] || continue
		found=
		IFS='|' read -ra alts <<<"$group"
		for alt in "${alts[@]}"; do
			name=${alt%%(*}
			name=${name//[[:space:]]/}
			name=${name%%:*} # :any, :amd64
			if installed "$name"; then
				found=$name
				break
			fi
			((provides_loaded)) || load_provides
			if [[ -n ${provider[$name]:-} ]]; then
				found=${provider[$name]}
				break
			fi
		done
		[[ -n $found ]] || die "$pkg needs '$group': nothing of it is installed on this host"
		resolve "$found"
	done
}

from_host() {
	local p list n
	for p in dash base-files "${pkgs[@]}"; do
		installed "$p" || die "package $p is not installed on this host (apt-get install $p, or use --mmdebstrap)"
		resolve "$p"
	done
	# merged-/usr hosts: the same top-level links in the image
	for n in bin sbin lib lib32 lib64 libx32; do
		if [[ -L /$n ]]; then
			mkdir -p "$tree/$(readlink -f "/$n")"
			ln -sfn "$(readlink "/$n")" "$tree/$n"
		fi
	done
	list=$tree.files
	for p in "${!want[@]}"; do
		dpkg-query -L "$p"
	done | grep '^/' | sort -u | while read -r f; do
		# what dpkg lists and the host still has (diversions, removed docs)
		[[ -e $f || -L $f ]] && printf '%s\n' "${f#/}"
	done >"$list"
	log "${#want[@]} packages, $(wc -l <"$list") files from this host"
	tar -C / --no-recursion -cf - -T "$list" | tar -C "$tree" --keep-directory-symlink -xpf -
	rm -f "$list"
}

from_mmdebstrap() {
	local inc
	command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
	inc=$(IFS=,; echo "${pkgs[*]}")
	# mmdebstrap wants an empty or missing target
	rmdir "$tree" 2>/dev/null || true
	mmdebstrap --variant=minbase --include="$inc" "$suite" "$tree" ${mirror:+"$mirror"}
}

case $mode in
host) from_host ;;
mmdebstrap) from_mmdebstrap ;;
esac

mkdir -p "$tree"/{proc,sys,dev,tmp,run,root,etc,home}
chmod 1777 "$tree/tmp"
if [[ $mode == host || ! -s $tree/etc/passwd ]]; then
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tree/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\n' >"$tree/etc/group"
fi
if ((user_u)); then
	mkdir -p "$tree/home/u"
	chown 1000:1000 "$tree/home/u" 2>/dev/null || true
	grep -q '^u:' "$tree/etc/passwd" || printf 'u:x:1000:1000:u:/home/u:/bin/sh\n' >>"$tree/etc/passwd"
	grep -q '^u:' "$tree/etc/group" || printf 'u:x:1000:\n' >>"$tree/etc/group"
fi

if [[ -z $size ]]; then
	kib=$(du -sk "$tree" | cut -f1)
	size=$((kib + kib / 4 + 32768))K
fi
rm -f "$out"
: >"$out" # mke2fs says "Creating regular file" otherwise
mke2fs -q -t ext4 -L root -d "$tree" "$out" "$size" || die "mke2fs -d $tree $out $size failed"
log "wrote $out ($size, ext4): vmctl run --root $out -- ..."
