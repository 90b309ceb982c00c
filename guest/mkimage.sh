#!/bin/bash
# mkimage.sh - build the default virtmgr guest image (kernel + initramfs).
#
# Usage:
#   mkimage.sh --init PATH --out DIR [--work DIR] [--cache DIR]
#              [--add SRC:DEST]... [--module NAME]...
#
#   --init PATH     static init binary, installed as /init (required)
#   --out DIR       where vmlinuz, vmlinux (uncompressed, PVH entry),
#                   initramfs.img and kernel-release are written (required)
#   --work DIR      scratch directory (unpacked kernel, staging tree);
#                   default: DIR/../work
#   --cache DIR     where the kernel .deb is downloaded and reused; default:
#                   $VIRTMGR_GUEST_CACHE, else DIR/../cache
#   --add SRC:DEST  copy file SRC to absolute path DEST in the image (mode is
#                   kept, so executables stay executable); repeatable. Later
#                   additions (vmagent, static test tools) use this.
#   --module NAME   load kernel module NAME (and what it depends on) in the
#                   guest, in addition to the default list; repeatable
#
# Environment:
#   VIRTMGR_GUEST_CACHE   download cache shared between build trees
#   VIRTMGR_GUEST_KERNEL  kernel package to use instead of the one
#                         linux-image-cloud-amd64 depends on (e.g.
#                         linux-image-6.1.0-56-cloud-amd64)
#
# The kernel is Debian's linux-image-cloud-amd64: the metapackage is resolved
# to the real linux-image-<ver>-cloud-amd64 with apt-cache, fetched with
# `apt-get download` into the cache and unpacked with `dpkg-deb -x` into the
# work directory; nothing is installed on the host. If apt cannot resolve the
# package (no lists, offline) a single kernel .deb already in the cache is
# used. depmod is run on the unpacked tree; the modules the guest needs are
# resolved through modules.dep (builtins are skipped) and written, in
# dependency order, to /lib/modules/load-order, which init loads with
# finit_module. The initramfs is a gzip-compressed cpio (newc) archive with
# /init, busybox (/bin/busybox and applet links) and the modules.
set -euo pipefail

prog=${0##*/}
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$prog" "$*" >&2; }

# Modules the guest needs when they are not built in.
DEFAULT_MODULES=(
	virtio virtio_ring virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev
	virtio_mmio virtio_blk virtio_console virtio-rng
	vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport
	pvpanic pvpanic-pci pvpanic-mmio
	button evdev qemu_fw_cfg
	virtiofs
	virtio_balloon
	virtio_net
)

# File systems vmagent may mount (VmConfig mounts, and overlay for a read-only
# VmConfig root), by mount(2) type: the
# modules each needs, loaded by vmagent only when a mount asks for that type
# (listed in /lib/modules/fs/TYPE); ext4 and its helpers are built into
# Debian's cloud kernel and listed for kernels where they are not.
declare -A FS_MODULES=(
	[ext4]="ext4" [ext3]="ext4" [ext2]="ext4" [erofs]="erofs" [squashfs]="squashfs"
	[vfat]="vfat" [iso9660]="isofs" [virtiofs]="virtiofs" [overlay]="overlay"
)

# Busybox applets linked into /bin.
APPLETS=(
	sh ash ls cat echo printf uname mount umount dmesg logger sleep dd md5sum
	sha256sum head tail wc ps kill poweroff reboot halt mkdir rmdir rm cp mv
	ln chmod grep sed awk tr cut sort uniq find xargs test true false env
	date stat touch readlink realpath hexdump od seq tee timeout nproc free
	df du mknod sync insmod lsmod modprobe hostname id ifconfig ip vi less
	nc wget route
)

init='' out='' work='' cache=${VIRTMGR_GUEST_CACHE:-}
adds=() modules=("${DEFAULT_MODULES[@]}")
while (($#)); do
	case $1 in
	--init) init=${2:?--init needs a path}; shift 2 ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--work) work=${2:?--work needs a directory}; shift 2 ;;
	--cache) cache=${2:?--cache needs a directory}; shift 2 ;;
	--add) adds+=("${2:?--add needs SRC:DEST}"); shift 2 ;;
	--module) modules+=("${2:?--module needs a name}"); shift 2 ;;
	-h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[[ -n $init ]] || die "--init is required"
[[ -n $out ]] || die "--out is required"
[[ -f $init && -x $init ]] || die "init '$init' is not an executable file"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${work:-$(dirname "$out")/work}
cache=${cache:-$(dirname "$out")/cache}
mkdir -p "$work" "$cache"
work=$(cd "$work" && pwd)
cache=$(cd "$cache" && pwd)
init=$(cd "$(dirname "$init")" && pwd)/$(basename "$init")

for tool in apt-cache apt-get dpkg-deb depmod cpio gzip; do
	command -v "$tool" >/dev/null || die "'$tool' not found (see build.sh for the Debian packages)"
done
busybox=$(command -v busybox || true)
[[ -n $busybox ]] || busybox=/bin/busybox
[[ -x $busybox ]] || die "busybox not found (Debian: busybox-static)"
ldd_out=$(LC_ALL=C ldd "$busybox" 2>&1 || true)
if [[ $ldd_out != *"not a dynamic executable"* && $ldd_out != *"statically linked"* ]]; then
	die "$busybox is not statically linked (Debian: busybox-static)"
fi

# ---- resolve and fetch the kernel package ----
resolve_kernel() {
	if [[ -n ${VIRTMGR_GUEST_KERNEL:-} ]]; then
		printf '%s\n' "$VIRTMGR_GUEST_KERNEL"
		return
	fi
	LC_ALL=C apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1
}

pkg=$(resolve_kernel || true)
deb=
if [[ -n $pkg ]]; then
	ver=$(LC_ALL=C apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [[ -n $ver && $ver != "(none)" ]]; then
		deb=$cache/${pkg}_${ver//:/%3a}_amd64.deb
		if [[ ! -s $deb ]]; then
			log "downloading $pkg $ver into $cache"
			tmp=$(mktemp -d "$cache/.download.XXXXXX")
			trap 'rm -rf "$tmp"' EXIT
			(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$pkg=$ver") >&2 ||
				die "apt-get download $pkg=$ver failed (run 'apt-get update'?)"
			got=("$tmp"/*.deb)
			[[ -s ${got[0]} ]] || die "apt-get download $pkg produced no .deb"
			mv "${got[0]}" "$deb"
			rm -rf "$tmp"
			trap - EXIT
		fi
	fi
fi
if [[ -z $deb ]]; then
	shopt -s nullglob
	cached=("$cache"/linux-image-*-cloud-amd64_*.deb)
	shopt -u nullglob
	((${#cached[@]} == 1)) ||
		die "cannot resolve linux-image-cloud-amd64 with apt-cache (run 'apt-get update') and $cache holds ${#cached[@]} kernel packages, not one"
	deb=${cached[0]}
	log "apt cannot resolve the kernel; using cached $(basename "$deb")"
fi

# ---- unpack (once per .deb) ----
kroot=$work/kernel
stamp=$kroot/.unpacked-from
if [[ ! -f $stamp || $(cat "$stamp") != "$(basename "$deb")" ]]; then
	log "unpacking $(basename "$deb")"
	rm -rf "$kroot"
	mkdir -p "$kroot"
	dpkg-deb -x "$deb" "$kroot" || die "dpkg-deb -x $deb failed"
	basename "$deb" >"$stamp"
fi
shopt -s nullglob
kvers=("$kroot"/lib/modules/*)
vmlinuz=("$kroot"/boot/vmlinuz-*)
shopt -u nullglob
((${#kvers[@]} == 1)) || die "$deb: expected one lib/modules/<version> directory, found ${#kvers[@]}"
((${#vmlinuz[@]} == 1)) || die "$deb: expected one boot/vmlinuz-*, found ${#vmlinuz[@]}"
kver=${kvers[0]##*/}
moddir=$kroot/lib/modules/$kver
if [[ ! -s $moddir/modules.dep ]]; then
	depmod -b "$kroot" "$kver" || die "depmod on $moddir failed"
fi

# ---- resolve modules in dependency order ----
declare -A dep_of=() path_of=() builtin=() seen=() done_=()
while IFS= read -r line; do
	mod=${line%%:*}
	name=${mod##*/}
	name=${name%%.ko*}
	name=${name//-/_}
	path_of[$name]=$mod
	dep_of[$name]=${line#*:}
done <"$moddir/modules.dep"
if [[ -f $moddir/modules.builtin ]]; then
	while IFS= read -r mod; do
		name=${mod##*/}
		name=${name%%.ko*}
		builtin[${name//-/_}]=1
	done <"$moddir/modules.builtin"
fi

order=()
visit() { # NAME: depth-first, dependencies before the module itself
	local name=${1//-/_} dep dname
	[[ -n ${done_[$name]:-} ]] && return
	[[ -n ${seen[$name]:-} ]] && die "module dependency cycle at $name"
	seen[$name]=1
	for dep in ${dep_of[$name]}; do
		dname=${dep##*/}
		dname=${dname%%.ko*}
		visit "$dname"
	done
	done_[$name]=1
	order+=("${path_of[$name]}")
}
for m in "${modules[@]}"; do
	n=${m//-/_}
	if [[ -n ${path_of[$n]:-} ]]; then
		visit "$n"
	elif [[ -n ${builtin[$n]:-} ]]; then
		log "module $m is built into $kver"
	else
		die "module $m is neither a module nor built into kernel $kver"
	fi
done

# the file systems' modules, each list without what init loads already
declare -A fs_order=()
for fs in "${!FS_MODULES[@]}"; do
	boot_done=$(declare -p done_)
	order_boot=("${order[@]}")
	order=()
	for m in ${FS_MODULES[$fs]}; do
		n=${m//-/_}
		if [[ -n ${path_of[$n]:-} ]]; then
			visit "$n"
		elif [[ -z ${builtin[$n]:-} ]]; then
			die "module $m (file system $fs) is neither a module nor built into kernel $kver"
		fi
	done
	fs_order[$fs]="${order[*]}"
	order=("${order_boot[@]}")
	eval "${boot_done/declare -A/declare -gA}"
	seen=()
	for k in "${!done_[@]}"; do seen[$k]=1; done
done

# ---- stage the root file system ----
stage=$work/root
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,usr/bin,usr/sbin,lib/modules/"$kver"}
install -m 0755 "$init" "$stage/init"
install -m 0755 "$busybox" "$stage/bin/busybox"
for a in "${APPLETS[@]}"; do
	[[ -e $stage/bin/$a ]] || ln -s busybox "$stage/bin/$a"
done
{
	echo "# kernel $kver: modules in load order (dependencies first)"
	for mod in "${order[@]}"; do
		install -m 0644 -D "$moddir/$mod" "$stage/lib/modules/$kver/$mod"
		echo "/lib/modules/$kver/$mod"
	done
} >"$stage/lib/modules/load-order"
mkdir -p "$stage/lib/modules/fs"
for fs in "${!fs_order[@]}"; do
	[[ -n ${fs_order[$fs]} ]] || continue
	for mod in ${fs_order[$fs]}; do
		install -m 0644 -D "$moddir/$mod" "$stage/lib/modules/$kver/$mod"
		echo "/lib/modules/$kver/$mod"
	done >"$stage/lib/modules/fs/$fs"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$stage/etc/group"
for a in ${adds[@]+"${adds[@]}"}; do
	[[ $a == *:/* ]] || die "--add '$a': expected SRC:/ABSOLUTE/DEST"
	src=${a%%:*} dest=${a#*:}
	[[ -f $src ]] || die "--add '$a': '$src' is not a file"
	[[ $dest != */ && $dest != *..* ]] || die "--add '$a': bad destination '$dest'"
	mkdir -p "$stage$(dirname "$dest")"
	rm -f "$stage$dest"
	cp -L --preserve=mode "$src" "$stage$dest"
done

# ---- archive ----
# Outputs are replaced atomically (tests may be booting the previous image)
# and only when their content changed, so an unchanged image keeps its mtime.
publish() { # TMP DEST
	if cmp -s "$1" "$2"; then rm -f "$1"; else chmod 0644 "$1" && mv -f "$1" "$2"; fi
}
tmpimg=$out/.initramfs.img.tmp
(cd "$stage" && find . -mindepth 1 -exec touch -h -d @0 {} + &&
	find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9n >"$tmpimg" ||
	die "creating the initramfs failed"
publish "$tmpimg" "$out/initramfs.img"
cp "${vmlinuz[0]}" "$out/.vmlinuz.tmp"
publish "$out/.vmlinuz.tmp" "$out/vmlinuz"

# ---- vmlinux: the uncompressed kernel, booted through its PVH entry ----
# QEMU loads an ELF kernel with a PVH note directly, which skips the
# decompressor; under TCG that saves about 0.4 s of CPU per boot.
extract_vmlinux() { # BZIMAGE OUT
	local config=$kroot/boot/config-$kver magic tool off
	grep -qx 'CONFIG_PVH=y' "$config" || { log "kernel $kver has no PVH entry; no vmlinux"; return 0; }
	case $(grep -o '^CONFIG_KERNEL_[A-Z0-9]*=y' "$config") in
	CONFIG_KERNEL_LZ4=y) magic='\x02\x21\x4c\x18' tool=lz4 ;;
	CONFIG_KERNEL_GZIP=y) magic='\x1f\x8b\x08\x00' tool=gzip ;;
	CONFIG_KERNEL_XZ=y) magic='\xfd\x37\x7a\x58\x5a\x00' tool=xz ;;
	CONFIG_KERNEL_ZSTD=y) magic='\x28\xb5\x2f\xfd' tool=zstd ;;
	*) die "kernel $kver: unsupported compression for extracting vmlinux" ;;
	esac
	command -v "$tool" >/dev/null || die "'$tool' not found, needed to extract vmlinux (Debian: $tool)"
	off=$(LC_ALL=C grep -obUaP -m1 "$magic" "$1" | head -n1 | cut -d: -f1)
	[[ -n $off ]] || die "$1: no $tool stream found"
	# The stream is followed by the rest of the bzImage, which the
	# decompressors report as trailing garbage: check the result instead.
	tail -c +$((off + 1)) "$1" | "$tool" -dc >"$2.tmp" 2>/dev/null || true
	[[ $(head -c 4 "$2.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] ||
		die "$1: the $tool stream at offset $off is not an ELF kernel"
	LC_ALL=C readelf -n "$2.tmp" | grep -q 'Xen.*0x00000012' ||
		die "$1: the extracted vmlinux has no PVH entry note"
	publish "$2.tmp" "$2"
}
extract_vmlinux "${vmlinuz[0]}" "$out/vmlinux"
printf '%s\n' "$kver" >"$out/.kernel-release.tmp"
publish "$out/.kernel-release.tmp" "$out/kernel-release"
log "kernel $kver, ${#order[@]} modules, $(du -k "$out/initramfs.img" | cut -f1) KiB initramfs in $out"
