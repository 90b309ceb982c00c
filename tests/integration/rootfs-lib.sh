# rootfs-lib.sh - build a root file system tree from the host's own files,
# for tests and benchmarks of VmConfig.root (docs/storage.md). Sourced.
#
# rootfs_tree DIR PROGRAM... : DIR gets each PROGRAM (a path, or a name
# found in PATH) at /bin/NAME and at its real path, every library ldd names
# for it at the same path, and the dynamic loader; /bin/sh is dash; the usual
# mount points; /etc/passwd and /etc/group with root and u (1000, home
# /home/u); /etc/marker holding "image-root-marker".
rootfs_copy() { # rootfs_copy DIR FILE: FILE and what ldd names for it
	local dir=$1 f
	for f in "$2" $(ldd "$2" 2>/dev/null | grep -oE '/[^ ]+'); do
		[[ -e $dir$f ]] && continue
		mkdir -p "$dir$(dirname "$f")"
		cp -L "$f" "$dir$f"
	done
}

rootfs_tree() {
	local dir=$1 p real
	shift
	mkdir -p "$dir"/{bin,etc,proc,sys,dev,tmp,run,home/u,root}
	chown 1000:1000 "$dir/home/u"
	for p in dash "$@"; do
		real=$(command -v "$p") || { echo "rootfs_tree: no $p on this host" >&2; return 1; }
		real=$(readlink -f "$real")
		rootfs_copy "$dir" "$real"
		[[ -e $dir/bin/$(basename "$p") ]] || cp -L "$real" "$dir/bin/$(basename "$p")"
	done
	[[ -e $dir/bin/sh ]] || ln -s dash "$dir/bin/sh"
	echo image-root-marker >"$dir/etc/marker"
	printf 'root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nu:x:1000:\n' >"$dir/etc/group"
}
