#!/usr/bin/env bash
# Builds the test guest that the QEMU e2e test and bench/boot-latency.ts boot, from Debian packages
# only (apt-get download + dpkg-deb -x; the guest itself needs no network beyond its own bridge),
# into the git-ignored .tools/guest/:
#
#   vmlinuz     Debian's cloud kernel (the package linux-image-cloud-amd64 depends on)
#   initrd.img  a ~1 MB busybox initramfs whose /init, on ttyS0:
#                 STRATUS-BOOTED                 once proc/sys/dev are mounted and the virtio modules loaded
#                 STRATUS-IP <address>           when udhcpc on eth0 got its lease
#                 STRATUS-DISK <serial> <dev>    for each /sys/block/vd*/serial not seen before,
#                                                polled every 0.5 s (so a live-attached volume shows)
#                 STRATUS-DISK-GONE <serial> <dev>  when such a disk disappears (a live detach)
#               and answers ping (the kernel does).
#   root.raw    1 MiB of zeros: the base image under a server's root overlay (the guest sees it as
#               the disk with serial 'root')
#
# Idempotent: skips when .tools/guest/stamp matches the package versions and this script. Downloaded
# .debs are kept in .tools/guest/debs/, so a rebuild after a change to this script needs no network.
# Boot it with direct kernel boot: <kernel>vmlinuz</kernel> <initrd>initrd.img</initrd>
# <cmdline>console=ttyS0</cmdline>, virtio disks and NIC, <serial type='file'>.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$repo_root/.tools/guest"
DEBS="$OUT/debs"
# The modules /init loads, in this order after their dependencies (computed from each .ko's modinfo).
MODULES=(virtio_pci virtio_blk virtio_net)

say() { printf 'build-test-guest: %s\n' "$*"; }
die() { printf 'build-test-guest: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
took() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $(((ms % 1000) / 100)); }
human() { numfmt --to=iec --suffix=B --format='%.1f' "$(stat -c %s "$1")"; }
print_sizes() {
  say "$(printf '%s %s, ' vmlinuz "$(human "$OUT/vmlinuz")" initrd.img "$(human "$OUT/initrd.img")")root.raw $(human "$OUT/root.raw") in ${OUT#"$repo_root"/}/"
}
total_start=$(now_ms)

# 1. what to build from: the cloud kernel's package and busybox-static, as apt knows them -----------
t=$(now_ms)
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
kernel_pkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg="$(kernel_pkg || true)"
if [[ -z "$kpkg" && "$(id -u)" -eq 0 ]]; then
  apt-get update -qq >/dev/null 2>&1 || true
  kpkg="$(kernel_pkg || true)"
fi
script_sum="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ -z "$kpkg" ]]; then
  if [[ -f "$OUT/stamp" && -f "$OUT/vmlinuz" && -f "$OUT/initrd.img" && -f "$OUT/root.raw" ]]; then
    say "apt knows no linux-image-cloud-amd64 (run apt-get update): keeping the existing build"
    print_sizes
    exit 0
  fi
  die "apt knows no linux-image-cloud-amd64: run apt-get update (as root), then this again"
fi
kver="$(candidate "$kpkg")"
bver="$(candidate busybox-static)"
[[ -n "$kver" && "$kver" != "(none)" && -n "$bver" && "$bver" != "(none)" ]] || die "no candidate version for $kpkg or busybox-static"
stamp="kernel=$kpkg=$kver busybox-static=$bver script=$script_sum"
if [[ -f "$OUT/stamp" && "$(cat "$OUT/stamp")" == "$stamp" && -f "$OUT/vmlinuz" && -f "$OUT/initrd.img" && -f "$OUT/root.raw" ]]; then
  say "up to date: $kpkg $kver, busybox-static $bver ($(took "$t"))"
  print_sizes
  exit 0
fi
say "sources: $kpkg $kver, busybox-static $bver ($(took "$t"))"

# 2. download the two .debs (kept for offline rebuilds) -----------------------------------------------
t=$(now_ms)
mkdir -p "$DEBS"
deb_of() { compgen -G "$DEBS/${1}_$(printf '%s' "$2" | sed 's/:/%3a/')_*.deb" | head -n1 || true; }
fetched=()
for spec in "$kpkg=$kver" "busybox-static=$bver"; do
  name="${spec%%=*}" version="${spec#*=}"
  [[ -n "$(deb_of "$name" "$version")" ]] && continue
  log="$(mktemp)"
  # run as root, apt would drop to _apt, which may not write here: keep the download as the caller
  if ! (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$spec") >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get download $spec failed (output above)"
  fi
  rm -f "$log"
  fetched+=("$name")
done
kdeb="$(deb_of "$kpkg" "$kver")"
bdeb="$(deb_of busybox-static "$bver")"
[[ -f "$kdeb" && -f "$bdeb" ]] || die "downloaded .debs not found in $DEBS"
# older versions of the same packages are of no further use
find "$DEBS" -name '*.deb' ! -samefile "$kdeb" ! -samefile "$bdeb" -delete
say "packages: ${fetched[*]:-already downloaded} ($(took "$t"))"

# 3. extract, pick the kernel and the module closure ------------------------------------------------
t=$(now_ms)
work="$(mktemp -d "${TMPDIR:-/tmp}/stratus-guest.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/busybox"
vmlinuz="$(compgen -G "$work/kernel/boot/vmlinuz-*" | head -n1 || true)"
[[ -f "$vmlinuz" ]] || die "no /boot/vmlinuz-* in $(basename "$kdeb")"
moddir="$(compgen -G "$work/kernel/lib/modules/*" | head -n1 || true)"
[[ -d "$moddir" ]] || die "no /lib/modules/<version> in $(basename "$kdeb")"
busybox="$work/busybox/bin/busybox"
[[ -x "$busybox" ]] || die "no /bin/busybox in $(basename "$bdeb")"

declare -A module_path=() placed=()
while IFS= read -r f; do
  n="$(basename "$f" .ko)"
  module_path["${n//-/_}"]="$f"
done < <(find "$moddir/kernel" -name '*.ko')
order=()
place() { # depth-first: dependencies first; built-in modules (modules.builtin) need no loading
  local name="${1//-/_}" dep deps
  [[ -n "${placed[$name]:-}" ]] && return
  placed["$name"]=1
  local file="${module_path[$name]:-}"
  if [[ -z "$file" ]]; then
    grep -Eq "/${name//_/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null && return
    die "module $name is neither in $(basename "$kdeb") nor built in"
  fi
  deps="$(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p' | head -n1)"
  for dep in ${deps//,/ }; do place "$dep"; done
  order+=("$name")
}
for m in "${MODULES[@]}"; do place "$m"; done
say "kernel $(basename "$vmlinuz" | sed 's/^vmlinuz-//'), modules ${order[*]} ($(took "$t"))"

# 4. the initramfs ---------------------------------------------------------------------------------
t=$(now_ms)
root="$work/initramfs"
mkdir -p "$root"/{bin,dev,etc,lib/modules,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
for m in "${order[@]}"; do cp "${module_path[$m]}" "$root/lib/modules/$m.ko"; done
printf '%s\n' "${order[@]}" >"$root/etc/modules"
# the kernel opens /dev/console for /init before anything is mounted (needs root to create)
if [[ "$(id -u)" -eq 0 ]]; then mknod -m 600 "$root/dev/console" c 5 1; fi

cat >"$root/init" <<'INIT'
#!/bin/sh
# Stratus test guest (scripts/build-test-guest.sh): markers on ttyS0 for the e2e tests and benches.
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/ttyS0 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# from here on only emergencies from the kernel: its messages would otherwise land inside marker lines
echo 1 >/proc/sys/kernel/printk
for m in $(cat /etc/modules); do insmod "/lib/modules/$m.ko" || echo "STRATUS-ERROR insmod $m"; done
echo "STRATUS-BOOTED"
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  # -f: stays (renews the lease); retries every second for a minute
  udhcpc -f -i eth0 -s /etc/udhcpc.script -t 60 -T 1 -A 1 >/dev/null 2>&1 &
fi
seen=""
while :; do
  now=""
  for s in /sys/block/vd*/serial; do
    [ -r "$s" ] || continue
    dev="${s#/sys/block/}"
    dev="${dev%/serial}"
    key="$(cat "$s")@$dev"
    now="$now $key"
    case " $seen " in *" $key "*) ;; *) echo "STRATUS-DISK ${key%@*} $dev" ;; esac
  done
  for key in $seen; do
    case " $now " in *" $key "*) ;; *) echo "STRATUS-DISK-GONE ${key%@*} ${key#*@}" ;; esac
  done
  seen="$now"
  sleep 0.5
done
INIT
cat >"$root/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
# udhcpc hook: configure eth0 and say which address it got
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
      ip addr flush dev "$interface"
      ip addr add "$ip/${mask:-24}" dev "$interface"
      [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface" 2>/dev/null
    fi
    [ "$1" = bound ] && echo "STRATUS-IP $ip" >/dev/ttyS0
    ;;
esac
exit 0
DHCP
chmod 755 "$root/init" "$root/etc/udhcpc.script"

mkdir -p "$OUT"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -9 -n >"$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
cp "$vmlinuz" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
rm -f "$OUT/root.raw" && truncate -s 1M "$OUT/root.raw"
chmod 644 "$OUT/vmlinuz" "$OUT/initrd.img" "$OUT/root.raw"
echo "$stamp" >"$OUT/stamp"
say "built initrd.img, vmlinuz, root.raw ($(took "$t"))"
print_sizes
say "done ($(took "$total_start"))"
