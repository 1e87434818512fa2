"""mlflow.genai.evaluate over a finished genai-batch run, with the scorers its config names.

    python -m genai_batch.evaluate_run --config conf/nightly.yaml --output PATH [--experiment NAME]
    python -m genai_batch.evaluate_run --config conf/nightly.yaml --check

Run by jobs/nightly.sh after the job. It finds the job's run (the newest run of the experiment
whose tag genai_batch.output is PATH), evaluates the run's traces (the outputs are already
computed: no predict function) with the config's `scorers`, and logs the results into that same
run: the per-scorer metrics (`<scorer>/mean`) beside the job's own, and each scorer's feedback on
the row's trace, so nights compare in the run list and failing rows filter in the Traces tab. The
run keeps its status (a run that breached a threshold stays FAILED).

Scorers: the project's own code scorers (genai_batch.scorers) and, only when the config names a
`judge_model`, MLflow's LLM judges. Exit 0 when done or when the config names no scorer; 2 on a bad
config (jobs/nightly.sh checks it with --check before the job, so a misspelt scorer costs no night);
1 when MLflow fails.
"""
import argparse
import sys

import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.genai.scorers import Correctness, RelevanceToQuery, Safety

from genai_batch.scorers import CODE_SCORERS

OUTPUT_TAG = "genai_batch.output"
JUDGES = {"correctness": Correctness, "relevance_to_query": RelevanceToQuery, "safety": Safety}


def scorers_of(names, judge_model):
    """The scorer objects for the config's names; a bad name stops with what is known."""
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        if name in CODE_SCORERS:
            out.append(CODE_SCORERS[name])
        elif name in JUDGES:
            if not judge_model:
                raise ValueError(f"scorer '{name}' is an LLM judge: set judge_model in the config (e.g. "
                                 "openai:/gpt-4o-mini), or drop it from scorers")
            out.append(JUDGES[name](model=judge_model))
        else:
            raise ValueError(f"unknown scorer '{name}' in scorers; known: "
                             f"{sorted(CODE_SCORERS)} and, with judge_model, {sorted(JUDGES)}")
    return out


def find_run(client, experiment, output):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment '{experiment}': did the job log its run?")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{OUTPUT_TAG}` = '{output}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise LookupError(f"no run in experiment '{experiment}' wrote {output}: did the job log its run?")
    return runs[0]


def evaluation_data(run, needs_expectations):
    """The run's traces, their expectations left to the stored copy unless a judge needs them in the frame.

    MLflow re-logs every expectation of the frame on the trace (harness: get_expectation_assessments),
    which would put the job's reference on each trace twice.
    """
    traces = mlflow.search_traces(run_id=run.info.run_id, locations=[run.info.experiment_id],
                                  return_type="list", max_results=100000)
    expectations = []
    for t in traces:
        kept = [a for a in (t.info.assessments or []) if a.expectation is not None]
        expectations.append({a.name: a.expectation.value for a in kept} if needs_expectations else {})
        t.info.assessments = [a for a in (t.info.assessments or []) if a.expectation is None]
    return pd.DataFrame({"trace": traces, "expectations": expectations})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--output", help="the job's output path, as the job was given it")
    p.add_argument("--experiment", help="default: the config's experiment")
    p.add_argument("--check", action="store_true", help="only check the config's scorers (before the job)")
    args = p.parse_args(argv)
    with open(args.config) as f:
        cfg = yaml.safe_load(f) or {}
    try:
        scorers = scorers_of(cfg.get("scorers") or [], cfg.get("judge_model"))
    except ValueError as e:
        print(f"genai-batch evaluate: {args.config}: {e}", file=sys.stderr)
        return 2
    if args.check or not scorers:
        if not scorers:
            print("genai-batch evaluate: the config names no scorers: nothing to evaluate")
        return 0
    if not args.output:
        p.error("--output is required unless --check")
    client = MlflowClient()
    run = find_run(client, args.experiment or cfg.get("experiment") or "genai-batch", args.output)
    data = evaluation_data(run, any(name == "correctness" for name in cfg.get("scorers") or []))
    if data.empty:
        # trace_sample_rate 0, or a resume that found every row done: nothing to score, nothing broken.
        print(f"genai-batch evaluate: run {run.info.run_id} has no traces of its own (trace_sample_rate 0, or a "
              "resume with nothing left to score): nothing to evaluate", file=sys.stderr)
        return 0
    status = run.info.status
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    mlflow.start_run(run_id=run.info.run_id)
    try:
        result = mlflow.genai.evaluate(data=data, scorers=scorers)
    finally:
        # start_run reopened the run; it ends as the job ended it.
        mlflow.end_run(status=status if status in ("FINISHED", "FAILED", "KILLED") else "FINISHED")
    means = {k: round(float(v), 4) for k, v in result.metrics.items()}
    print(f"genai-batch evaluate: run {run.info.run_id}: {len(data)} traces scored, {means}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
