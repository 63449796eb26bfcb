#!/usr/bin/env bash
# The real OpenStack clients for the compat-surface tests (issue 10): python-openstackclient 10.5.0
# with openstacksdk 4.22.0 and keystoneauth1 5.18.1 (PyPI, pinned with every dependency in
# test/openstack/constraints.txt) in a git-ignored venv, .venv-osc/. Idempotent: a venv installed from
# the same constraints is kept (about 0.1 s); a changed constraints file reinstalls into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv-osc
CONSTRAINTS=test/openstack/constraints.txt
WANT='python-openstackclient==10.5.0 openstacksdk==4.22.0 keystoneauth1==5.18.1'

# The constraints' hash, kept in the venv: a changed pin reinstalls.
STAMP="$VENV/.constraints.sha256"
SHA="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"

have_pins() {
  [[ -x "$VENV/bin/openstack" ]] && [[ "$(cat "$STAMP" 2>/dev/null)" == "$SHA" ]] && "$VENV/bin/python" - "$WANT" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(any(m.version(n) != v for n, v in (p.split('==') for p in sys.argv[1].split())))
PY
}

if have_pins; then
  echo "openstack-client: python-openstackclient 10.5.0 already in $VENV"
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
# -qq: the machine's pip config names local indexes that may be absent; their warnings are noise.
# shellcheck disable=SC2086
"$VENV/bin/pip" install -qq --disable-pip-version-check -c "$CONSTRAINTS" $WANT
echo "$SHA" > "$STAMP"
have_pins || { echo "openstack-client: $VENV does not hold $WANT after install" >&2; exit 1; }
echo "openstack-client: python-openstackclient 10.5.0 installed in $VENV"
