#!/usr/bin/env bash
# Runs every test: sets up .venv (pinned PyPI packages) and runs the Maven test suite, which
# starts what it needs itself (a local MLflow server, Spark local[2], and, in the integration
# tests after `package`, a standalone cluster running the shaded job jar).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SKIP_BUILD=1 jobs/setup.sh
exec mvn -B verify "$@"
