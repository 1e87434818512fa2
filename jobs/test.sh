#!/usr/bin/env bash
# Runs every test: sets up .venv (pinned PyPI packages) and runs the Maven test suite, which
# starts what it needs itself (a local MLflow server, Spark local[2], and, in the integration
# tests after `package`, a standalone cluster running the shaded job jar). The full suite runs on
# the Spark of .venv (4.0.4, the Spark 4 jar); then, on every other runtime of
# src/main/python/runtimes.txt (its own .venv-NAME, installed here), the jar of that runtime's
# Spark line goes through the integration tests that run it through that runtime's spark-submit,
# spark-shell and JShell: RuntimeJobIT (input to output, error rows, exit codes, resume, a jar of
# the other line refused), ClusterIT (one model load per executor), NotebooksIT's Scala and Java
# notebooks (the Transformer and the SQL function). On Spark 3.5 the 3.5 jar is built first and
# NotebookApiTest (Transformer, Pipeline save/load, SQL function) runs in-process on Spark 3.5.0.
#   jobs/test.sh [mvn args for the full suite]
#   GENAI_BATCH_RUNTIMES=none jobs/test.sh         the full suite only
#   GENAI_BATCH_RUNTIMES=spark3.5 jobs/test.sh     the full suite and that runtime only
#   GENAI_BATCH_FULL_SUITE=0 jobs/test.sh          the extra runtimes only (needs a built Spark 4
#                                                  jar and test classes: mvn -DskipTests package)
# Ends with a table: runtime, jar, result, seconds; exits non-zero when any part failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SKIP_BUILD=1 jobs/setup.sh

RUNTIME_ITS="RuntimeJobIT,ClusterIT,NotebooksIT#scalaNotebookRunsInSparkShellAgainstTheRegistry+javaNotebookRunsThroughJShell"
rows=()
failed=0
# part NAME JAR COMMAND...: runs COMMAND, adds a row to the summary.
part() {
  local name="$1" jar="$2" start=$SECONDS result=ok
  shift 2
  echo "[test] === $name ($jar): $*"
  "$@" || { result=FAILED; failed=1; }
  rows+=("$(printf '%-32s %-32s %-7s %6d' "$name" "$jar" "$result" $((SECONDS - start)))")
}

if [[ "${GENAI_BATCH_FULL_SUITE:-1}" != 0 ]]; then
  part "spark4.0.4 (.venv): full suite" genai-batch-spark4_2.13.jar mvn -B verify "$@"
fi

runtimes="${GENAI_BATCH_RUNTIMES:-all}"
if [[ "$runtimes" != none ]]; then
  start=$SECONDS
  if SKIP_BUILD=1 jobs/setup.sh --runtimes "$runtimes"; then
    rows+=("$(printf '%-32s %-32s %-7s %6d' "runtime venvs ($runtimes)" - ok $((SECONDS - start)))")
    [[ "$runtimes" == all ]] && runtimes="$(grep -v '^[[:space:]]*\(#\|$\)' src/main/python/runtimes.txt | awk '{print $1}' | paste -sd,)"
    IFS=, read -ra names <<< "$runtimes"
    for name in "${names[@]}"; do
      home="$(".venv-$name/bin/python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')"
      core="$(cd "$home/jars" && ls spark-core_*.jar | head -n 1)"   # spark-core_2.12-3.5.9.jar
      version="${core#spark-core_*-}"; version="${version%.jar}"
      case "$core" in
        spark-core_2.12-3.5.*)
          # Builds the 3.5 jar (classes under target/spark3.5), then the ITs against it.
          part "$name ($version): ITs" genai-batch-spark3.5_2.12.jar \
            mvn -B -Pspark3.5 -Dtest=NotebookApiTest -Dsurefire.failIfNoSpecifiedTests=false \
              -Dit.test="$RUNTIME_ITS" -Dgenaibatch.spark.home="$home" verify ;;
        spark-core_2.13-4.*)
          # The Spark 4 jar the full suite built, on this runtime's Spark (test-compile: up to date).
          part "$name ($version): ITs" genai-batch-spark4_2.13.jar \
            mvn -B -Dit.test="$RUNTIME_ITS" -Dgenaibatch.spark.home="$home" test-compile \
              failsafe:integration-test failsafe:verify ;;
        *) echo "[test] $name: no jar for $core" >&2
           rows+=("$(printf '%-32s %-32s %-7s %6d' "$name" - FAILED 0)"); failed=1 ;;
      esac
    done
  else
    rows+=("$(printf '%-32s %-32s %-7s %6d' "runtime venvs ($runtimes)" - FAILED $((SECONDS - start)))")
    failed=1
  fi
fi

echo
printf '%-32s %-32s %-7s %6s\n' runtime jar result seconds
printf '%s\n' "${rows[@]}"
exit "$failed"
