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

# The driver JVM's options: the project's log config, the user's own --driver-java-options, and the
# class archive (below). spark-submit keeps only the last --driver-java-options, so they are merged.
driver_opts=()
if [[ -z "${GENAI_BATCH_NO_LOG_CONF:-}" ]]; then
  driver_opts+=("-Dlog4j2.configurationFile=$ROOT/conf/log4j2.properties")
fi
rest=() cluster_mode=""
for ((i = 0; i < ${#spark_args[@]}; i++)); do
  case "${spark_args[i]}" in
    --driver-java-options) driver_opts+=("${spark_args[i+1]:-}"); i=$((i + 1)) ;;
    --driver-java-options=*) driver_opts+=("${spark_args[i]#*=}") ;;
    --deploy-mode) [[ "${spark_args[i+1]:-}" == cluster ]] && cluster_mode=1; rest+=("${spark_args[i]}") ;;
    --deploy-mode=cluster) cluster_mode=1; rest+=("${spark_args[i]}") ;;
    *) rest+=("${spark_args[i]}") ;;
  esac
done

# Class archive (JDK class-data sharing): about half of the driver's start and first Spark jobs is
# loading and verifying Spark's classes; a dynamic archive recorded at the end of a first run maps
# them ready-made in later runs (docs/design-notes.md, "Job"). One per Java and Spark install,
# named by a digest of both; the JVM checks the jars it names too and ignores an archive that no
# longer matches. Kept in a private folder (it is code the JVM loads). Not in cluster deploy mode: the
# driver runs elsewhere. GENAI_BATCH_CLASS_ARCHIVE=off skips it; GENAI_BATCH_CLASS_ARCHIVE_DIR moves it.
archive_mode="${GENAI_BATCH_CLASS_ARCHIVE:-auto}" archive="" archive_tmp="" informational=""
for a in "$@"; do
  case "$a" in -h|--help|-V|--version) informational=1 ;; esac
done
if [[ "$archive_mode" != off && -z "$cluster_mode" ]]; then
  java="${JAVA_HOME:+$JAVA_HOME/bin/java}"
  java="${java:-$(command -v java || true)}"
  dir="${GENAI_BATCH_CLASS_ARCHIVE_DIR:-$ROOT/target/class-archive}"
  if [[ -n "$java" ]] && mkdir -p "$dir" && chmod 700 "$dir" \
      && [[ ! -L "$dir" && "$(stat -c %u "$dir")" == "$(id -u)" && "$(stat -c %a "$dir")" == 700 ]]; then
    key="$( { "$java" -version 2>&1; readlink -f "$java" "$SPARK_HOME"; ls -l --time-style=+%s "$SPARK_HOME/jars"; } \
      | sha256sum | cut -c1-16)"
    archive="$dir/driver-$key.jsa"
    if [[ -f "$archive" && ! -L "$archive" && "$(stat -c %u "$archive")" == "$(id -u)" ]]; then
      echo "[genai-batch] class archive: $archive" >&2
      driver_opts+=("-XX:SharedArchiveFile=$archive")
    elif [[ -z "$informational" ]]; then  # a --help run loads too few classes to be worth recording
      archive_tmp="$(mktemp "$dir/.driver-$key.XXXXXX")"
      rm -f "$archive_tmp"
      echo "[genai-batch] class archive: none yet for this Java and Spark; this run records one for the next" \
        "runs (once, 10-30 s more; GENAI_BATCH_CLASS_ARCHIVE=off to skip)" >&2
      # The JDK warns once per class it cannot archive (signed jars, JFR): not the user's concern.
      driver_opts+=("-XX:ArchiveClassesAtExit=$archive_tmp" "-Xlog:cds=off" "-Xlog:cds+dynamic=off")
    fi
  else
    echo "[genai-batch] class archive: not used ($dir is not a private folder of this user, or no java found)" >&2
  fi
fi

set +e
"$SPARK_HOME/bin/spark-submit" --class io.genaibatch.job.BatchScoringJob \
  --conf spark.ui.showConsoleProgress=false \
  ${driver_opts[@]+--driver-java-options "${driver_opts[*]}"} \
  "${rest[@]}" "$JAR" "$@"
rc=$?
set -e
if [[ -n "$archive_tmp" ]]; then
  if [[ $rc -eq 0 && -s "$archive_tmp" ]]; then
    mv -f "$archive_tmp" "$archive"
  else
    rm -f "$archive_tmp"
  fi
fi
exit $rc
