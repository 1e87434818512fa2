#!/usr/bin/env bash
# Runs the job on a local standalone Spark cluster: a master and N workers (one executor JVM
# each) on 127.0.0.1, started here and stopped on exit, whatever happens.
#   jobs/run-cluster.sh [genai-batch flags]        e.g. --config conf/cluster.yaml --model-uri ...
# Environment: GENAI_BATCH_WORKERS (2), GENAI_BATCH_WORKER_CORES (2), GENAI_BATCH_EXECUTOR_MEMORY
# (1g), GENAI_BATCH_CLUSTER_DIR (target/cluster: logs, work dirs). Spark from SPARK_HOME or .venv.
# GENAI_BATCH_WORKER_HOSTS=distinct starts worker i on 127.0.0.i, so that each executor is on a host of
# its own, as on a real cluster (Spark never runs a speculative copy of a task on a host that already
# runs an attempt of it); the default puts every worker on 127.0.0.1.
# GENAI_BATCH_WORKER_GPUS=N gives each worker N GPUs by a discovery script, with one task per GPU:
# real ones where nvidia-smi lists them, else N made-up addresses (Spark's GPU scheduling without a
# GPU: tasks are given addresses, nothing runs on them; for tests of the assignment).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SKIP_BUILD="${SKIP_BUILD:-0}" jobs/setup.sh >&2
if [[ -z "${SPARK_HOME:-}" ]]; then
  SPARK_HOME="$(.venv/bin/python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')"
fi
export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1
workers="${GENAI_BATCH_WORKERS:-2}"; cores="${GENAI_BATCH_WORKER_CORES:-2}"; mem="${GENAI_BATCH_EXECUTOR_MEMORY:-1g}"
dir="${GENAI_BATCH_CLUSTER_DIR:-$ROOT/target/cluster}"
mkdir -p "$dir"
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
pids=()
stop_cluster() {
  for pid in "${pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_cluster EXIT

gpus="${GENAI_BATCH_WORKER_GPUS:-0}" gpu_conf=()
if [[ "$gpus" -gt 0 ]]; then
  script="$dir/gpus.sh"
  cat > "$script" <<EOF
#!/usr/bin/env bash
# Spark resource discovery: the GPUs of this worker, as JSON.
if ids="\$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | head -n $gpus)" && [[ -n "\$ids" ]]; then
  echo "{\"name\": \"gpu\", \"addresses\": [\$(echo "\$ids" | sed 's/.*/"&"/' | paste -sd,)]}"
else
  echo '{"name": "gpu", "addresses": [$(seq 0 $((gpus - 1)) | sed 's/.*/"&"/' | paste -sd,)]}'
fi
EOF
  chmod 700 "$script"
  export SPARK_WORKER_OPTS="${SPARK_WORKER_OPTS:-} -Dspark.worker.resource.gpu.amount=$gpus -Dspark.worker.resource.gpu.discoveryScript=$script"
  gpu_conf=(--conf spark.executor.resource.gpu.amount="$gpus" --conf spark.task.resource.gpu.amount=1)
fi

"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" \
  --webui-port "$(free_port)" > "$dir/master.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$workers"); do
  mkdir -p "$dir/worker-$i"
  host=127.0.0.1
  [[ "${GENAI_BATCH_WORKER_HOSTS:-}" == distinct ]] && host="127.0.0.$i"
  SPARK_LOCAL_IP="$host" "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker --host "$host" --cores "$cores" \
    --memory 4g --work-dir "$dir/worker-$i" --webui-port "$(free_port)" "spark://127.0.0.1:$port" \
    > "$dir/worker-$i.log" 2>&1 &
  pids+=($!)
done
# Wait until every worker has registered with the master.
for _ in $(seq 1 120); do
  n="$(grep -c "Registering worker" "$dir/master.log" 2>/dev/null || true)"
  [[ "${n:-0}" -ge "$workers" ]] && break
  sleep 0.5
done
echo "[run-cluster] master spark://127.0.0.1:$port with $workers workers ($cores cores each)" >&2

set +e
jobs/spark-submit.sh --master "spark://127.0.0.1:$port" \
  --conf spark.executor.cores="$cores" --conf spark.executor.memory="$mem" \
  --conf spark.cores.max="$((workers * cores))" \
  --conf spark.executorEnv.VIRTUAL_ENV="$ROOT/.venv" ${gpu_conf[@]+"${gpu_conf[@]}"} \
  ${GENAI_BATCH_SPARK_CONF:-} -- "$@"
code=$?
set -e
exit $code
