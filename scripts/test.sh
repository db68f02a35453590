#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine (Python 3.11+, pip, Node/npm for
# Azurite) into .venv and .test-tools/, then runs lint, type checks and the whole test suite.
# The tests start and stop their own servers (moto, fake-gcs-server, Azurite, the ARM test server).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
editable=(-e ".[dev,policy]")
for p in providers/*/pyproject.toml; do
  [ -f "$p" ] && editable+=(-e "$(dirname "$p")[test]")
done
.venv/bin/python -m pip install -q --disable-pip-version-check "${editable[@]}"

# Azurite (Azure Blob emulator) for the Azure provider's tests; pinned for Node 20.
if [ -d providers/azure ] && command -v npm >/dev/null 2>&1; then
  if [ ! -f .test-tools/node_modules/azurite/dist/src/blob/main.js ]; then
    npm install --silent --no-audit --no-fund --prefix .test-tools azurite@3.35.0 >/dev/null
  fi
fi

# ssh-keygen (OpenSSH's client) signs and verifies approvals in the signed-approval tests.
if ! command -v ssh-keygen >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq openssh-client >/dev/null
  else
    echo "warning: no ssh-keygen; install OpenSSH's client, or the signed-approval tests are skipped" >&2
  fi
fi

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
srcs=(cloudorch)
for d in providers/*/src; do [ -d "$d" ] && srcs+=("$d"); done
.venv/bin/mypy "${srcs[@]}"
echo "== pytest"
.venv/bin/pytest -n 2 --dist loadfile -q "$@"
