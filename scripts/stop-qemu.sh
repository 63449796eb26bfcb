#!/usr/bin/env bash
# Stops what scripts/setup-qemu.sh started (libvirtd under tini, virtlogd), and only that: daemons it
# did not start are left alone. Domains and networks that are still running are named (they outlive
# libvirtd, which reconnects to them at its next start); destroy them first if they must go.
set -euo pipefail

STATE_DIR=/run/stratus-qemu
URI=qemu:///system

say() { printf 'stop-qemu: %s\n' "$*"; }
now_ms() { date +%s%3N; }
took() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $(((ms % 1000) / 100)); }
# a live process; a zombie counts as gone (PID 1 here reaps orphans only every ~2 s: trap 2)
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]]; }
pid_in() { [[ -f "$1" ]] && tr -dc '0-9' <"$1" || true; }

# stop_pid <name> <pid file>: SIGTERM, wait up to 10 s, then SIGKILL
stop_pid() {
  local name="$1" file="$2" pid t
  pid="$(pid_in "$file")"
  t=$(now_ms)
  if ! alive "$pid"; then
    rm -f "$file"
    say "$name: not running (not started by setup-qemu.sh, or already stopped)"
    return
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    say "$name: killed pid $pid (did not stop within 10 s)"
  else
    say "$name: stopped pid $pid ($(took "$t"))"
  fi
  rm -f "$file"
}

if [[ -f "$STATE_DIR/libvirtd.pid" ]] && alive "$(pid_in "$STATE_DIR/libvirtd.pid")"; then
  domains="$(timeout 10 virsh -c "$URI" list --name 2>/dev/null | grep -c . || true)"
  networks="$(timeout 10 virsh -c "$URI" net-list --name 2>/dev/null | grep -c . || true)"
  if [[ "${domains:-0}" -gt 0 || "${networks:-0}" -gt 0 ]]; then
    say "left running: ${domains:-0} domain(s), ${networks:-0} network(s) (virsh -c $URI list / net-list)"
  fi
fi
stop_pid "libvirtd (tini)" "$STATE_DIR/libvirtd.pid"
stop_pid virtlogd "$STATE_DIR/virtlogd.pid"
