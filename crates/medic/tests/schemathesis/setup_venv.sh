#!/usr/bin/env bash
# Creates (once) the Python venv with schemathesis (PyPI) that tests/api_schemathesis.rs runs
# against a running `medic run`, and prints the venv's schemathesis on stdout. The venv lives
# outside the clone ($MEDIC_SCHEMATHESIS_VENV, default $HOME/.cache/medic/schemathesis-venv)
# so CI reuses it. Exit 3 means pip could not reach the registry (the test then skips, saying so).
set -euo pipefail
venv="${MEDIC_SCHEMATHESIS_VENV:-$HOME/.cache/medic/schemathesis-venv}"
bin="$venv/bin/schemathesis"
# Pinned: its checks and flags are what the test relies on (installs on Python 3.9+).
pkg="schemathesis==4.32.5"
# A marker naming the pinned version, written after a successful install, so a half-made
# venv or one with another version is redone.
marker="$venv/.medic-ok"
if [ -x "$bin" ] && [ "$(cat "$marker" 2>/dev/null)" = "$pkg" ]; then
  echo "$bin"; exit 0
fi
mkdir -p "$(dirname "$venv")"
# A lock so parallel runs do not build the venv twice at once.
exec 9>"$venv.lock"
flock 9
if [ -x "$bin" ] && [ "$(cat "$marker" 2>/dev/null)" = "$pkg" ]; then
  echo "$bin"; exit 0
fi
# Only ever a venv this script made.
if [ -f "$venv/pyvenv.cfg" ]; then rm -rf "$venv"; fi
python3 -m venv "$venv" >&2
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "$pkg" >&2; then
  if ! "$venv/bin/python" -m pip download --no-deps -q -d "$(mktemp -d)" "$pkg" >/dev/null 2>&1; then
    echo "pip cannot reach the package registry" >&2
    exit 3
  fi
  echo "pip install failed" >&2
  exit 1
fi
echo "$pkg" > "$marker"
echo "$bin"
