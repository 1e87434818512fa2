#!/usr/bin/env bash
# Installs everything genai-batch needs that this repository does not hold, idempotently:
#  - .venv: a project-local Python with the pinned PyPI packages of src/main/python/requirements.txt
#  - the job jar, target/genai-batch-spark4_2.13.jar (unless SKIP_BUILD=1)
#  - only when asked, one small venv per extra Spark runtime of src/main/python/runtimes.txt
#    (.venv-spark3.5, .venv-spark4.3: that pyspark alone), which jobs/test.sh tests the jars on:
#      jobs/setup.sh --runtimes all        (or --runtimes spark3.5,spark4.3; or GENAI_BATCH_RUNTIMES=all)
#  - only when asked, one venv per older MLflow server of src/main/python/old-servers.txt
#    (.venv-mlflow3.6, .venv-mlflow2: that mlflow alone), which OldServersIT runs a job against:
#      jobs/setup.sh --old-servers all     (or --old-servers mlflow2; or GENAI_BATCH_OLD_SERVERS=all)
#  - only when asked (jobs/test.sh asks, for BrowserTest), Debian's chromium, when no chromium is on
#    PATH: jobs/setup.sh --browser   (apt-get, as root or through sudo; elsewhere install it yourself)
# A second run with nothing changed takes seconds: each venv is stamped with the hash of its pins.
set -euo pipefail
runtimes="${GENAI_BATCH_RUNTIMES:-}"
old_servers="${GENAI_BATCH_OLD_SERVERS:-}"
browser=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runtimes) runtimes="${2:?--runtimes takes all or NAME[,NAME...]}"; shift 2 ;;
    --runtimes=*) runtimes="${1#--runtimes=}"; shift ;;
    --old-servers) old_servers="${2:?--old-servers takes all or NAME[,NAME...]}"; shift 2 ;;
    --old-servers=*) old_servers="${1#--old-servers=}"; shift ;;
    --browser) browser=1; shift ;;
    *) echo "jobs/setup.sh: unknown argument $1 (usage: jobs/setup.sh [--runtimes all|NAME,...] [--old-servers all|NAME,...] [--browser])" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
REQ="src/main/python/requirements.txt"
CON="src/main/python/constraints.txt"
RUNTIMES="src/main/python/runtimes.txt"
OLD_SERVERS="src/main/python/old-servers.txt"

# venv DIR PINS_HASH PIP_ARGS...: creates DIR and installs PIP_ARGS unless DIR is stamped PINS_HASH.
venv() {
  local dir="$1" want="$2" stamp="$1/.genai-batch-stamp"
  shift 2
  if [[ ! -x "$dir/bin/python" ]]; then
    echo "[setup] creating $dir"
    "$PY" -m venv "$dir"
  fi
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "[setup] installing pinned Python packages into $dir (first run: a few minutes)"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$want" > "$stamp"
  else
    echo "[setup] $dir is up to date"
  fi
}

hash() { sha256sum | cut -c1-16; }
venv "$VENV" "$(cat "$REQ" "$CON" | hash)" -r "$REQ" -c "$CON"

# listed LIST ASKED: a venv .venv-NAME for each NAME of LIST asked (all, or NAME,...), holding the
# pins of its line (NAME PIN [PIN...]), through pip's cache.
listed() {
  local list="$1" asked_names="$2" known name pins
  [[ -z "$asked_names" || "$asked_names" == none ]] && return 0
  known="$(grep -v '^[[:space:]]*\(#\|$\)' "$list" | awk '{print $1}' | paste -sd' ')"
  [[ "$asked_names" == all ]] && asked_names="${known// /,}"
  IFS=, read -ra asked <<< "$asked_names"
  for name in "${asked[@]}"; do
    pins="$(awk -v n="$name" '$1 == n {$1 = ""; print substr($0, 2)}' "$list")"
    if [[ -z "$pins" ]]; then
      echo "[setup] unknown name '$name': $list has $known" >&2
      exit 2
    fi
    # shellcheck disable=SC2086 # the pins are words
    venv "$ROOT/.venv-$name" "$(echo "$pins" | hash)" $pins
  done
}
listed "$RUNTIMES" "$runtimes"
listed "$OLD_SERVERS" "$old_servers"

if [[ "$browser" == 1 ]]; then
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    echo "[setup] chromium is installed"
  elif command -v apt-get >/dev/null; then
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q)
    [[ "$(id -u)" != 0 ]] && apt=(sudo "${apt[@]}")
    echo "[setup] installing Debian's chromium for BrowserTest (apt-get, a few minutes)"
    # A fresh machine may have no package lists yet: update them only when the install needs it.
    "${apt[@]}" install -y --no-install-recommends chromium \
      || { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends chromium; }
  else
    echo "[setup] no chromium on PATH and no apt-get: install chromium yourself, or BrowserTest fails" >&2
  fi
fi

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  if [[ ! -f target/genai-batch-spark4_2.13.jar || -n "$(find pom.xml src/main -newer target/genai-batch-spark4_2.13.jar -print -quit)" ]]; then
    echo "[setup] building target/genai-batch-spark4_2.13.jar"
    mvn -B -q -DskipTests package
  else
    echo "[setup] target/genai-batch-spark4_2.13.jar is up to date"
  fi
fi
