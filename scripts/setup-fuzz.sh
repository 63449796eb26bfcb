#!/usr/bin/env bash
# The contract fuzzer's tool: Schemathesis (PyPI, pinned) in a git-ignored venv, .venv-fuzz/.
# Idempotent: an existing venv with the pinned version is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=.venv-fuzz

if [[ -x "$VENV/bin/st" ]] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
  echo "fuzz: schemathesis $SCHEMATHESIS_VERSION already in $VENV"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
echo "fuzz: schemathesis $SCHEMATHESIS_VERSION installed in $VENV"
