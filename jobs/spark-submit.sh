#!/usr/bin/env bash
# spark-submit for genai-batch: finds Spark (SPARK_HOME, else the pinned pyspark in .venv) and the
# job jar, then passes everything through:
#   jobs/spark-submit.sh [spark-submit options] -- [genai-batch flags]
# e.g. jobs/spark-submit.sh --master local[2] -- --config conf/local.yaml --model-uri models:/m@champion
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JAR="${GENAI_BATCH_JAR:-$ROOT/target/genai-batch.jar}"
if [[ -z "${SPARK_HOME:-}" ]]; then
  SPARK_HOME="$("$ROOT/.venv/bin/python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))' 2>/dev/null || true)"
fi
if [[ -z "$SPARK_HOME" || ! -x "$SPARK_HOME/bin/spark-submit" ]]; then
  echo "No Spark found: set SPARK_HOME or run jobs/setup.sh (it installs pyspark into .venv)" >&2
  exit 2
fi
if [[ ! -f "$JAR" ]]; then
  echo "No job jar at $JAR: run jobs/setup.sh (or mvn -DskipTests package)" >&2
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
