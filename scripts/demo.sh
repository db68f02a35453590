#!/usr/bin/env bash
# Installs cloudorch into .venv and walks through plans/quickstart.yaml on the built-in `core`
# provider: plan, apply, a no-change plan, drift after a hand edit, then destroy. No cloud account.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e . >/dev/null
co=.venv/bin/cloudorch
step() { printf '\n\033[1m$ cloudorch %s\033[0m\n' "$*"; }

step validate plans/quickstart.yaml;               $co validate plans/quickstart.yaml
step plan plans/quickstart.yaml;                   $co plan plans/quickstart.yaml
step apply plans/quickstart.yaml --auto-approve;   $co apply plans/quickstart.yaml --auto-approve
step plan plans/quickstart.yaml "  # nothing to do";  $co plan plans/quickstart.yaml
echo "someone edited this by hand" > plans/out/quickstart/motd.txt
step plan plans/quickstart.yaml "  # after editing plans/out/quickstart/motd.txt by hand"
$co plan plans/quickstart.yaml --detailed-exitcode || [ $? -eq 2 ]
step apply plans/quickstart.yaml --auto-approve "  # puts it back"; $co apply plans/quickstart.yaml --auto-approve
step output plans/quickstart.yaml;                 $co output plans/quickstart.yaml
step state list plans/quickstart.yaml;             $co state list plans/quickstart.yaml
step destroy plans/quickstart.yaml --auto-approve; $co destroy plans/quickstart.yaml --auto-approve
