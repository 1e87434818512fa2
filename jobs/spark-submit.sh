#!/usr/bin/env bash
# spark-submit for genai-batch: finds Spark (SPARK_HOME, else the pinned pyspark in .venv) and the
# job jar, then passes everything through:
#   jobs/spark-submit.sh [spark-submit options] -- [genai-batch flags]
# e.g. jobs/spark-submit.sh --master local[2] -- --config conf/local.yaml --model-uri models:/m@champion
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${SPARK_HOME:-}" ]]; then
  SPARK_HOME="$("$ROOT/.venv/bin/python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))' 2>/dev/null || true)"
fi
if [[ -z "$SPARK_HOME" || ! -x "$SPARK_HOME/bin/spark-submit" ]]; then
  echo "No Spark found: set SPARK_HOME or run jobs/setup.sh (it installs pyspark into .venv)" >&2
  exit 2
fi
# The jar of the runtime's Spark line, from its spark-core jar's name (spark-core_2.13-4.0.4.jar):
# genai-batch-spark3.5_2.12.jar for Spark 3.5 / Scala 2.12, genai-batch-spark4_2.13.jar for 4.x / 2.13.
core="$(cd "$SPARK_HOME/jars" 2>/dev/null && ls spark-core_*.jar 2>/dev/null | head -n 1)"
if [[ "$core" =~ ^spark-core_([0-9]+\.[0-9]+)-([0-9]+\.[0-9]+)\. ]]; then
  scala="${BASH_REMATCH[1]}" spark="${BASH_REMATCH[2]}"
else
  echo "Cannot tell the Spark and Scala versions of $SPARK_HOME (no jars/spark-core_*.jar)" >&2
  exit 2
fi
case "$spark/$scala" in
  3.5/2.12) want="genai-batch-spark3.5_2.12.jar" build="mvn -DskipTests -Pspark3.5 package" ;;
  4.*/2.13) want="genai-batch-spark4_2.13.jar" build="mvn -DskipTests package" ;;
  *) echo "Spark $spark with Scala $scala at $SPARK_HOME is not supported: genai-batch has jars for Spark 3.5 / Scala 2.12 and Spark 4.x / Scala 2.13" >&2
     exit 2 ;;
esac
JAR="${GENAI_BATCH_JAR:-$ROOT/target/$want}"
if [[ ! -f "$JAR" ]]; then
  echo "No job jar at $JAR for Spark $spark / Scala $scala: run $build (jobs/setup.sh builds the Spark 4 one)" >&2
  exit 2
fi
if [[ "$(basename "$JAR")" =~ ^genai-batch-spark([0-9.]+)_([0-9.]+)\.jar$ && "$(basename "$JAR")" != "$want" ]]; then
  echo "$(basename "$JAR") is for Spark ${BASH_REMATCH[1]} / Scala ${BASH_REMATCH[2]}, but $SPARK_HOME is Spark $spark / Scala $scala: use $want" >&2
  exit 2
fi
export SPARK_HOME
spark_args=()
while [[ $# -gt 0 && "$1" != "--" ]]; do spark_args+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
log_opts=()
if [[ -z "${GENAI_BATCH_NO_LOG_CONF:-}" ]]; then
  log_opts=(--driver-java-options "-Dlog4j2.configurationFile=$ROOT/conf/log4j2.properties")
fi
exec "$SPARK_HOME/bin/spark-submit" --class io.genaibatch.job.BatchScoringJob \
  --conf spark.ui.showConsoleProgress=false "${log_opts[@]}" \
  "${spark_args[@]}" "$JAR" "$@"
