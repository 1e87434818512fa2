#!/usr/bin/env bash
# Runs every test: sets up .venv (pinned PyPI packages) and runs the Maven test suite, which
# starts what it needs itself (a local MLflow server, Spark local[2], and, in the integration
# tests after `package`, a standalone cluster running the shaded job jar). docs/testing.md says
# what each leg and each expensive test proves, and what was measured.
#
#   jobs/test.sh [mvn args]          everything (the README's test command; .ci/run runs this)
#   jobs/test.sh --fast [mvn args]   the inner loop: the tests not tagged slow (@Slow), then one
#                                    job end to end through jobs/run-local.sh (a few minutes)
#   GENAI_BATCH_RUNTIMES=none jobs/test.sh       the full suite only
#   GENAI_BATCH_RUNTIMES=spark3.5 jobs/test.sh   the full suite and that runtime only
#   GENAI_BATCH_OLD_SERVERS=none jobs/test.sh    without the older MLflow servers' leg (or =mlflow2: that one)
#   GENAI_BATCH_FULL_SUITE=0 jobs/test.sh        the extra runtimes only (needs a built Spark 4
#                                                jar and test classes: mvn -DskipTests package)
#
# The legs: the full suite on the Spark of .venv (4.0.4, the Spark 4 jar; two test JVMs at once);
# then every other runtime of src/main/python/runtimes.txt (its own .venv-NAME, installed here), all
# at once, each running only what differs there: the jar of its Spark line through that runtime's
# spark-submit (RuntimeJobIT) and spark-shell (the Scala notebook), and, once per Spark line the full
# suite did not cover, the two-worker cluster (ClusterIT). On Spark 3.5 the 3.5 jar is built first
# and NotebookApiTest (Transformer, Pipeline save/load, SQL function) runs in-process on Spark 3.5.0.
# Beside them, the older MLflow servers of src/main/python/old-servers.txt (each its own .venv-NAME):
# OldServersIT runs a nightly job against each with the Spark 4 jar. The runtimes' and old servers'
# venvs install in the background while the full suite runs.
# Ends with a table per leg (result, wall seconds) and the slowest test classes (from the JUnit
# reports kept under target/test-times); exits non-zero when any part failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
fast=0
if [[ "${1:-}" == "--fast" ]]; then
  fast=1; shift
fi
if [[ "$fast" == 1 ]]; then
  SKIP_BUILD=1 jobs/setup.sh
else
  SKIP_BUILD=1 jobs/setup.sh --browser   # BrowserTest's headless chromium, installed when missing
fi
# Every JVM of a test run is short-lived (Maven, javac, test JVMs, spark-submit drivers, executors,
# standalone masters and workers): compiled by C1 alone they spend about 40% less CPU than with C2
# on this 2-core machine (docs/testing.md). Tests prove behaviour, never speed; the job's own
# defaults and the benchmarks keep the JVM's defaults.
export JAVA_TOOL_OPTIONS="${JAVA_TOOL_OPTIONS:+$JAVA_TOOL_OPTIONS }-XX:TieredStopAtLevel=1"
# The driver's class archive (jobs/spark-submit.sh) pays for itself from a Spark install's second job:
# a test run makes few per install, so it is off here but for ClassArchiveIT, which turns it on.
export GENAI_BATCH_CLASS_ARCHIVE="${GENAI_BATCH_CLASS_ARCHIVE:-off}"

TIMES="$ROOT/target/test-times"
rm -rf "$TIMES"
mkdir -p "$TIMES"
legs=0

# next_leg NAME: sets LEG to the folder of the next leg, target/test-times/NN-NAME.
next_leg() {
  legs=$((legs + 1))
  LEG="$TIMES/$(printf '%02d' "$legs")-${1//[^A-Za-z0-9.]/_}"
  mkdir -p "$LEG"
}

# row DIR NAME JAR RESULT SECONDS: the leg's line of the closing table.
row() {
  echo "$5" > "$1/wall"
  echo "$2" > "$1/name"
  printf '%-34s %-32s %-7s %6d\n' "$2" "$3" "$4" "$5" > "$1/row"
}

# part DIR NAME JAR REPORT_DIRS COMMAND...: runs COMMAND as leg NAME; keeps its wall time, result and
# the JUnit reports it wrote under REPORT_DIRS (space-separated) in DIR.
part() {
  local dir="$1" name="$2" jar="$3" reports="$4" start=$SECONDS result=ok
  shift 4
  touch "$dir/started"
  echo "[test] === $name ($jar): $*"
  "$@" || result=FAILED
  row "$dir" "$name" "$jar" "$result" $((SECONDS - start))
  for r in $reports; do
    if [[ -d "$r" ]]; then
      find "$r" -maxdepth 1 -name 'TEST-*.xml' -newer "$dir/started" -exec cp {} "$dir/" \;
    fi
  done
  [[ "$result" == ok ]]
}

# in_background NAME JAR REPORT_DIRS COMMAND...: part, in the background (its pid in $!), with its
# output in its leg's folder, shown whole when it ends: legs that run at once never interleave lines.
in_background() {
  next_leg "$1"
  local dir="$LEG"
  ( if part "$dir" "$@" > "$dir/output.log" 2>&1; then code=0; else code=1; fi
    cat "$dir/output.log"; exit $code ) &
}

# spark35_leg SPARK_HOME ITS: the 3.5 jar (jar-3.5.done or jar-3.5.failed in target/test-times when
# built), NotebookApiTest in-process on Spark 3.5.0, then ITS on the runtime at SPARK_HOME.
spark35_leg() {
  if mvn -B -Pspark3.5 -DskipTests package; then
    touch "$TIMES/jar-3.5.done"
  else
    touch "$TIMES/jar-3.5.failed"; return 1
  fi
  mvn -B -Pspark3.5 -Dtest=NotebookApiTest -Dsurefire.failIfNoSpecifiedTests=false -Dit.test="$2" \
    -Dgenaibatch.spark.home="$1" verify
}

# spark4_leg SPARK_HOME ITS: ITS with the Spark 4 jar on the runtime at SPARK_HOME, once the 3.5 leg
# has built its jar (or failed to, or no 3.5 runtime is tested).
spark4_leg() {
  if [[ ",$runtimes," == *,spark3.5,* ]]; then
    for _ in $(seq 1 600); do
      [[ -e "$TIMES/jar-3.5.done" || -e "$TIMES/jar-3.5.failed" ]] && break
      sleep 1
    done
  fi
  mvn -B -Dit.test="$2" -Dgenaibatch.spark.home="$1" test-compile failsafe:integration-test failsafe:verify
}

# old_servers_leg NAMES: the older MLflow servers' venvs, then OldServersIT against them, its reports
# under target/old-servers (failsafe's default folder is the Spark 4 runtime leg's, running at once).
old_servers_leg() {
  SKIP_BUILD=1 jobs/setup.sh --old-servers "$1"
  mvn -B -Dit.test=OldServersIT -Dgenaibatch.old.servers="$1" \
    -Dfailsafe.reports="$ROOT/target/old-servers/failsafe-reports" test-compile \
    failsafe:integration-test failsafe:verify
}

summary() {
  echo
  printf '%-34s %-32s %-7s %6s\n' leg jar result seconds
  cat "$TIMES"/*/row
  echo
  .venv/bin/python src/test/python/test_times.py "$TIMES"
}

if [[ "$fast" == 1 ]]; then
  failed=0
  next_leg fast-tests
  part "$LEG" "fast: tests not tagged slow" target/classes target/surefire-reports \
    mvn -B test -DexcludedGroups=slow "$@" || failed=1
  next_leg fast-job
  part "$LEG" "fast: one job end to end" genai-batch-spark4_2.13.jar "" jobs/run-local.sh --max-tokens 8 || failed=1
  summary
  exit "$failed"
fi

failed=0
runtimes="${GENAI_BATCH_RUNTIMES:-all}"
old_servers="${GENAI_BATCH_OLD_SERVERS:-all}"
# The extra venvs (the runtimes' and the old servers') install in the background while the full suite
# runs: pip mostly waits on the network and the disk, and a fresh machine spends minutes there.
next_leg extra-venvs
venvs_dir="$LEG"
( start=$SECONDS
  if SKIP_BUILD=1 jobs/setup.sh --runtimes "$runtimes" --old-servers "$old_servers" > "$venvs_dir/output.log" 2>&1; then
    result=ok
  else
    result=FAILED
  fi
  row "$venvs_dir" "extra venvs (runtimes $runtimes; old servers $old_servers)" - "$result" $((SECONDS - start))
  [[ "$result" == ok ]] ) &
venvs_pid=$!

if [[ "${GENAI_BATCH_FULL_SUITE:-1}" != 0 ]]; then
  next_leg full-suite
  part "$LEG" "spark4.0.4 (.venv): full suite" genai-batch-spark4_2.13.jar "target/surefire-reports target/failsafe-reports" \
    mvn -B verify "$@" || failed=1
fi

venvs_ok=1
wait "$venvs_pid" || { venvs_ok=0; failed=1; }
cat "$venvs_dir/output.log"

old_pid=""
if [[ "$old_servers" != none && "$venvs_ok" == 1 ]]; then
  in_background "old MLflow servers ($old_servers)" genai-batch-spark4_2.13.jar target/old-servers/failsafe-reports \
    old_servers_leg "$old_servers"
  old_pid=$!
fi

if [[ "$runtimes" != none && "$venvs_ok" == 1 ]]; then
  [[ "$runtimes" == all ]] && runtimes="$(grep -v '^[[:space:]]*\(#\|$\)' src/main/python/runtimes.txt | awk '{print $1}' | paste -sd,)"
  IFS=, read -ra names <<< "$runtimes"
  pids=()
  for name in "${names[@]}"; do
    home="$(".venv-$name/bin/python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')"
    core="$(cd "$home/jars" && ls spark-core_*.jar | head -n 1)"   # spark-core_2.12-3.5.9.jar
    version="${core#spark-core_*-}"; version="${version%.jar}"
    its="RuntimeJobIT,NotebooksIT#scalaNotebookRunsInSparkShellAgainstTheRegistry"
    case "$core" in
      spark-core_2.12-3.5.*)
        # The 3.5 jar first (classes under target/spark3.5; the Spark 4 legs wait for it: their
        # RuntimeJobIT offers it to their spark-submit), then the ITs against it, the cluster too:
        # the full suite ran the Spark 4 line only.
        in_background "$name ($version): ITs" genai-batch-spark3.5_2.12.jar \
          "target/spark3.5/surefire-reports target/spark3.5/failsafe-reports" \
          spark35_leg "$home" "$its,ClusterIT" ;;
      spark-core_2.13-4.*)
        # The Spark 4 jar the full suite built, on this runtime's Spark (test-compile: up to date).
        in_background "$name ($version): ITs" genai-batch-spark4_2.13.jar "target/failsafe-reports" \
          spark4_leg "$home" "$its" ;;
      *) echo "[test] $name: no jar for $core" >&2
         next_leg "$name"; row "$LEG" "$name" - FAILED 0; failed=1; continue ;;
    esac
    pids+=($!)
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do
    wait "$pid" || failed=1
  done
fi

if [[ -n "$old_pid" ]]; then
  wait "$old_pid" || failed=1
fi

summary
exit "$failed"
