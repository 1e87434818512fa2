#!/usr/bin/env bash
# Installs everything genai-batch needs that this repository does not hold, idempotently:
#  - .venv: a project-local Python with the pinned PyPI packages of src/main/python/requirements.txt
#  - the job jar, target/genai-batch-spark4_2.13.jar (unless SKIP_BUILD=1)
# A second run with nothing changed takes seconds: the venv is stamped with the hash of its pins.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
REQ="src/main/python/requirements.txt"
CON="src/main/python/constraints.txt"
STAMP="$VENV/.genai-batch-stamp"
want="$(cat "$REQ" "$CON" | sha256sum | cut -c1-16)"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]]; then
  echo "[setup] installing pinned Python packages into $VENV (first run: a few minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" -c "$CON"
  echo "$want" > "$STAMP"
else
  echo "[setup] $VENV is up to date"
fi

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  if [[ ! -f target/genai-batch-spark4_2.13.jar || -n "$(find pom.xml src/main -newer target/genai-batch-spark4_2.13.jar -print -quit)" ]]; then
    echo "[setup] building target/genai-batch-spark4_2.13.jar"
    mvn -B -q -DskipTests package
  else
    echo "[setup] target/genai-batch-spark4_2.13.jar is up to date"
  fi
fi
