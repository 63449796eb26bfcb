#!/usr/bin/env bash
# Makes this machine a QEMU host agent's host: libvirtd + virtlogd answering on qemu:///system.
# Idempotent and quiet: one line per step with the time it took, details only on failure.
# Runs as root (libvirtd, iptables and bridges need it). Facts behind each step: shared/notes/libvirt.md.
#
#   1. Debian packages, only the missing ones: libvirtd and its QEMU driver, QEMU (TCG here), qemu-img,
#      dnsmasq + iptables (libvirt's NAT networks), tini (the subreaper of step 4), busybox-static
#      (the test guest's userland, scripts/build-test-guest.sh), iputils-ping (the e2e test pings guests).
#      Services the packages would start themselves are held back (policy-rc.d): libvirtd must run
#      under our subreaper, not under PID 1.
#   2. /etc/libvirt/qemu.conf: user = "root", group = "root" (trap 1: otherwise every define re-probes
#      QEMU for ~48 s, as /dev/kvm is there but not usable).
#   3. virtlogd -d (without it, starting a VM fails on /run/libvirt/virtlogd-sock).
#   4. libvirtd in the foreground under tini as subreaper (trap 2: PID 1 here reaps orphans only
#      every ~2 s, so each domain destroy took 1.2-2 s): `setsid tini -s -- /usr/sbin/libvirtd`.
#   5. Wait until `virsh -c qemu:///system version` answers (the first call probes QEMU, ~8-12 s).
#
# What this script started is recorded under /run/stratus-qemu/; scripts/stop-qemu.sh stops it.
# Logs: /var/log/libvirt/stratus-libvirtd.log.
set -euo pipefail

STATE_DIR=/run/stratus-qemu
LIBVIRTD_LOG=/var/log/libvirt/stratus-libvirtd.log
QEMU_CONF=/etc/libvirt/qemu.conf
URI=qemu:///system
PACKAGES=(libvirt-daemon-system libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
  dnsmasq-base iptables tini busybox-static iputils-ping)

say() { printf 'setup-qemu: %s\n' "$*"; }
die() { printf 'setup-qemu: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
took() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $(((ms % 1000) / 100)); }
# a live process; a zombie counts as gone (PID 1 here reaps orphans only every ~2 s: trap 2)
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]]; }
pid_in() { [[ -f "$1" ]] && tr -dc '0-9' <"$1" || true; }
answers() { timeout 60 virsh -c "$URI" version >/dev/null 2>&1; }

[[ "$(id -u)" -eq 0 ]] || die "run as root (libvirtd, bridges and iptables need it): sudo $0"
total_start=$(now_ms)
mkdir -p "$STATE_DIR"

# 1. packages -------------------------------------------------------------------------------------
t=$(now_ms)
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${PACKAGES[@]}"; do have_pkg "$p" || missing+=("$p"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  say "packages: ok ($(took "$t"))"
else
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here"
  log="$(mktemp)"
  # hold back service starts by maintainer scripts (a Docker-style policy-rc.d may already do it)
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# scripts/setup-qemu.sh: no service starts during its apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 || rc=$?
  [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
  if [[ $rc -ne 0 ]]; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install ${missing[*]} failed (output above)"
  fi
  rm -f "$log"
  say "packages: installed ${missing[*]} ($(took "$t"))"
fi

# 2. qemu.conf ------------------------------------------------------------------------------------
t=$(now_ms)
[[ -f "$QEMU_CONF" ]] || die "$QEMU_CONF is missing (package libvirt-daemon-system brings it)"
conf_changed=""
set_conf() { # key value: make `key = "value"` the one active setting
  local key="$1" value="$2"
  if grep -Eq "^[[:space:]]*${key}[[:space:]]*=[[:space:]]*\"${value}\"[[:space:]]*(#.*)?$" "$QEMU_CONF"; then return; fi
  sed -i -E "/^[[:space:]]*${key}[[:space:]]*=/d" "$QEMU_CONF"
  printf '%s = "%s"   # scripts/setup-qemu.sh (trap 1 in notes/libvirt.md)\n' "$key" "$value" >>"$QEMU_CONF"
  conf_changed=1
}
set_conf user root
set_conf group root
say "qemu.conf: ${conf_changed:+set }user/group root ($(took "$t"))"

# 3. virtlogd -------------------------------------------------------------------------------------
t=$(now_ms)
if pidof virtlogd >/dev/null 2>&1; then
  say "virtlogd: running ($(took "$t"))"
else
  virtlogd -d
  for _ in $(seq 1 50); do pidof virtlogd >/dev/null 2>&1 && break; sleep 0.1; done
  pid="$(pidof virtlogd || true)"
  [[ -n "$pid" ]] || die "virtlogd did not start"
  echo "$pid" >"$STATE_DIR/virtlogd.pid"
  say "virtlogd: started, pid $pid ($(took "$t"))"
fi

# 4. libvirtd -------------------------------------------------------------------------------------
t=$(now_ms)
ours="$(pid_in "$STATE_DIR/libvirtd.pid")"
if [[ -n "$conf_changed" ]] && pidof libvirtd >/dev/null 2>&1; then
  # a running libvirtd read the old qemu.conf: restart it if it is ours, else say so
  if alive "$ours"; then
    kill -TERM "$ours"
    for _ in $(seq 1 100); do alive "$ours" || break; sleep 0.1; done
    alive "$ours" && die "libvirtd (tini pid $ours) did not stop within 10 s"
    rm -f "$STATE_DIR/libvirtd.pid"
    say "libvirtd: stopped to read the new qemu.conf"
  else
    die "libvirtd is running (not started by this script) with the old qemu.conf: stop it, then run this again"
  fi
fi
if pidof libvirtd >/dev/null 2>&1; then
  if alive "$ours"; then say "libvirtd: running under tini, pid $ours ($(took "$t"))"
  else say "libvirtd: running, not started by this script: is it under a subreaper? (trap 2, notes/libvirt.md) ($(took "$t"))"; fi
else
  mkdir -p "$(dirname "$LIBVIRTD_LOG")"
  # libvirtd refuses to start while a stale pid file names a live process; a dead one it replaces
  setsid tini -s -- /usr/sbin/libvirtd >>"$LIBVIRTD_LOG" 2>&1 </dev/null &
  tini_pid=$!
  echo "$tini_pid" >"$STATE_DIR/libvirtd.pid"
  for _ in $(seq 1 100); do [[ -S /run/libvirt/libvirt-sock ]] && break; alive "$tini_pid" || break; sleep 0.1; done
  alive "$tini_pid" || { tail -n 20 "$LIBVIRTD_LOG" >&2; rm -f "$STATE_DIR/libvirtd.pid"; die "libvirtd exited at start (log above, $LIBVIRTD_LOG)"; }
  say "libvirtd: started under tini, pid $tini_pid ($(took "$t"))"
fi

# 5. qemu:///system answers -----------------------------------------------------------------------
t=$(now_ms)
ok=""
for _ in $(seq 1 60); do
  if answers; then ok=1; break; fi
  sleep 0.5
done
[[ -n "$ok" ]] || { tail -n 20 "$LIBVIRTD_LOG" >&2 || true; die "$URI does not answer (virsh -c $URI version; log $LIBVIRTD_LOG)"; }
versions="$(virsh -c "$URI" version 2>/dev/null | awk -F': ' '/Running hypervisor/ {h=$2} /Using library/ {l=$2} END {print l ", " h}')"
say "$URI answers: $versions ($(took "$t"))"
say "ready ($(took "$total_start"))"
