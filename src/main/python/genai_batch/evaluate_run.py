"""mlflow.genai.evaluate over a finished genai-batch run, with the scorers its config names.

    python -m genai_batch.evaluate_run --config conf/nightly.yaml --output PATH [--experiment NAME]
        [--max-metric-drop SCORER/mean=X ...]
    python -m genai_batch.evaluate_run --config conf/nightly.yaml --check [--max-metric-drop ...]

Run by jobs/nightly.sh after the job. It finds the job's run (the newest run of the experiment
whose tag genai_batch.output is PATH), evaluates the run's traces (the outputs are already
computed: no predict function) with the config's `scorers`, and logs the results into that same
run: the per-scorer metrics (`<scorer>/mean`) beside the job's own, and each scorer's feedback on
the row's trace, so nights compare in the run list and failing rows filter in the Traces tab. The
run keeps its status (a run that breached a threshold stays FAILED).

Thresholds: the `max_metric_drop` entries that name a scorer's metric (a name with '/', e.g.
`answered/mean: 0.1`; the job checks the others, io.genaibatch.eval.Thresholds) are checked here,
against the same metric of the run the job compared this one with (its tag genai_batch.compared_with:
the previous successful run of the same prompt set). A drop beyond the limit marks the run FAILED,
adds to its genai_batch.threshold_breaches tag and exits 5, as the job does for its own metrics.

Scorers: the project's own code scorers (genai_batch.scorers) and, only when the config names a
`judge_model`, MLflow's LLM judges. Exit 0 when done or when the config names no scorer; 2 on a bad
config (jobs/nightly.sh checks it with --check before the job, so a misspelt scorer costs no night);
5 when a scorer metric fell by more than its limit; 1 when MLflow fails.
"""
import argparse
import json
import math
import sys

import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.genai.scorers import Correctness, RelevanceToQuery, Safety

from genai_batch.scorers import CODE_SCORERS

OUTPUT_TAG = "genai_batch.output"
# Tags the job sets (io.genaibatch.job.NightlyEvaluation, JobRunner), read and extended here.
COMPARED_WITH_TAG = "genai_batch.compared_with"
BREACHES_TAG = "genai_batch.threshold_breaches"
ERROR_TAG = "genai_batch.error"
# As io.genaibatch.eval.Thresholds: a drop of exactly the limit passes despite floating point.
EPSILON = 1e-9
THRESHOLDS_EXIT = 5
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


def is_scorer_metric(name):
    """Whether a max_metric_drop name is a scorer's metric (`answered/mean`), checked here rather than
    by the job: the rule of io.genaibatch.eval.Thresholds.isScorerMetric."""
    return "/" in name


def scorer_limits(cfg, overrides, scorer_names):
    """The max_metric_drop limits on scorers' metrics (the config's, then --max-metric-drop NAME=X);
    a limit on a scorer the config does not run, or not a number >= 0, stops with the fix."""
    limits = dict(cfg.get("max_metric_drop") or {}) if isinstance(cfg.get("max_metric_drop"), dict) else {}
    for item in overrides or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--max-metric-drop {item}: give NAME=X, e.g. answered/mean=0.1")
        limits[name] = value
    out = {}
    for name, limit in limits.items():
        name = str(name)
        if not is_scorer_metric(name):
            continue  # the job's own metric: io.genaibatch.eval.Thresholds checks it
        scorer_name = name.split("/", 1)[0]
        if scorer_name not in scorer_names:
            raise ValueError(f"max_metric_drop names '{name}', a metric of scorer '{scorer_name}', which is not "
                             f"among scorers {list(scorer_names)}: add it to scorers, or drop the limit")
        try:
            value = float(limit)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(limit, bool) or math.isnan(value) or math.isinf(value) or value < 0:
            raise ValueError(f"max_metric_drop.{name} is {limit!r}; it must be a number >= 0 (the most the "
                             "metric may fall)")
        out[name] = value
    return out


def breaches(client, run, metrics, limits):
    """The scorer metrics that fell by more than their limit since the run the job compared this one
    with, in io.genaibatch.eval.Thresholds' words; a limited metric this run lacks is a breach too."""
    previous_id = run.data.tags.get(COMPARED_WITH_TAG)
    previous = client.get_run(previous_id).data.metrics if previous_id and limits else {}
    out = []
    for name, limit in limits.items():
        now, before = metrics.get(name), previous.get(name)
        if now is None or math.isnan(now):
            out.append(f"{name} is not among this run's metrics {sorted(metrics)}, so its allowed drop of "
                       f"{limit:.3f} cannot be checked")
        elif before is not None and not math.isnan(before) and before - now > limit + EPSILON:
            out.append(f"{name} fell by {before - now:.3f} ({before:.3f} -> {now:.3f}), more than the "
                       f"allowed {limit:.3f}")
    return out


def fail_run(client, run, found):
    """Marks the run FAILED with the breaches added to the job's own (tag genai_batch.threshold_breaches)."""
    text = "; ".join(found)
    tags = run.data.tags
    client.set_tag(run.info.run_id, BREACHES_TAG, "; ".join(t for t in (tags.get(BREACHES_TAG), text) if t))
    if ERROR_TAG not in tags:
        client.set_tag(run.info.run_id, ERROR_TAG, "evaluation thresholds breached: " + text)
    client.set_terminated(run.info.run_id, status="FAILED")


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


def names_of(value):
    """Scorer names as the job's `scorers` setting takes them (io.genaibatch.settings.ValueType.textList):
    a list, one name, or a JSON array of names as text (the command line's form)."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"scorers is '{value}': give one name or a JSON array of names, "
                                 'e.g. ["answered","reference_in_answer"]') from None
        else:
            return [text] if text else []
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise ValueError(f"scorers is {value!r}: give a list of scorer names")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--output", help="the job's output path, as the job was given it")
    p.add_argument("--experiment", help="default: the config's experiment")
    p.add_argument("--max-metric-drop", action="append", metavar="NAME=X",
                   help="a limit on a scorer metric's fall (as the job's flag; the job's own metrics are left to it)")
    p.add_argument("--scorers", help="as the job's flag: one name or a JSON array of names; overrides the config's")
    p.add_argument("--judge-model", help="as the job's flag; overrides the config's judge_model")
    p.add_argument("--check", action="store_true", help="only check the config's scorers (before the job)")
    args = p.parse_args(argv)
    if not args.check and not args.output:
        p.error("--output is required unless --check")
    return args


def main(argv=None):
    args = parse_args(argv)
    with open(args.config) as f:
        cfg = yaml.safe_load(f) or {}
    try:
        names = names_of(args.scorers if args.scorers is not None else cfg.get("scorers"))
        scorers = scorers_of(names, args.judge_model or cfg.get("judge_model"))
        limits = scorer_limits(cfg, args.max_metric_drop, [s.name for s in scorers])
    except ValueError as e:
        print(f"genai-batch evaluate: {args.config}: {e}", file=sys.stderr)
        return 2
    if args.check or not scorers:
        if not scorers:
            print("genai-batch evaluate: the config names no scorers: nothing to evaluate")
        return 0
    client = MlflowClient()
    run = find_run(client, args.experiment or cfg.get("experiment") or "genai-batch", args.output)
    data = evaluation_data(run, "correctness" in names)
    if data.empty:
        # trace_sample_rate 0, a resume that found every row done, or a server that takes no traces (MLflow 2.x,
        # where the job warned once): nothing to score, nothing broken.
        print(f"genai-batch evaluate: run {run.info.run_id} has no traces of its own (trace_sample_rate 0, a "
              "resume with nothing left to score, or a server that takes no traces): nothing to evaluate, no "
              "scorer limit checked", file=sys.stderr)
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
    found = breaches(client, run, {k: float(v) for k, v in result.metrics.items()}, limits)
    if found:
        fail_run(client, run, found)
        print("genai-batch evaluate: scorer thresholds breached: " + "; ".join(found), file=sys.stderr)
        return THRESHOLDS_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
