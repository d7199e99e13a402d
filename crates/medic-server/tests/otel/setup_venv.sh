#!/usr/bin/env bash
# Creates (once) the Python venv with the real OpenTelemetry SDK and OTLP exporters that the
# OTLP tests export from, and prints the venv's python on stdout. The venv lives outside the
# clone ($MEDIC_OTEL_VENV, default $HOME/.cache/medic/otel-venv) so CI reuses it.
# Exit 3 means pip could not reach the registry (the tests then skip, saying so).
set -euo pipefail
venv="${MEDIC_OTEL_VENV:-$HOME/.cache/medic/otel-venv}"
py="$venv/bin/python"
pkgs=(opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc)
# A marker written after a successful install, so a half-made venv is retried.
if [ -x "$py" ] && [ -f "$venv/.medic-ok" ]; then
  echo "$py"; exit 0
fi
mkdir -p "$(dirname "$venv")"
# A lock so parallel tests do not build the venv twice at once.
exec 9>"$venv.lock"
flock 9
if [ -x "$py" ] && [ -f "$venv/.medic-ok" ]; then
  echo "$py"; exit 0
fi
python3 -m venv "$venv" >&2
if ! "$py" -m pip install --disable-pip-version-check -q "${pkgs[@]}" >&2; then
  if ! "$py" -m pip download --no-deps -q -d "$(mktemp -d)" opentelemetry-api >/dev/null 2>&1; then
    echo "pip cannot reach the package registry" >&2
    exit 3
  fi
  echo "pip install failed" >&2
  exit 1
fi
touch "$venv/.medic-ok"
echo "$py"
