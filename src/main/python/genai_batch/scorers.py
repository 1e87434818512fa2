"""The project's own code scorers for mlflow.genai.evaluate, over the traces a genai-batch job logged.

Each reads what the job put on a row's trace: the span's outputs ({"response": ...}, or the chat
completion in chat mode) and the reference the job logged as the expectation "expected_response".
They check what the job's own per-row feedback (exact_match, token_f1, rouge_l, computed in Java by
io.genaibatch.eval.TextMetrics) does not, so nothing is scored twice by two implementations.
MLflow 3.6 ships no built-in scorer that needs no LLM: its built-ins (Correctness, Safety,
RelevanceToQuery, ...) are judges, offered by evaluate_run.py only with a judge model.
"""
import json

import mlflow
from mlflow.genai.scorers import scorer

EXPECTED = "expected_response"


def answer_text(outputs):
    """The answer's text from a trace's outputs: prompt mode's response, or chat mode's first choice."""
    if not isinstance(outputs, dict):
        return outputs if isinstance(outputs, str) else None
    if "response" in outputs:
        return outputs["response"]
    choices = outputs.get("choices") or []
    if choices and isinstance(choices[0], dict):
        return (choices[0].get("message") or {}).get("content")
    return None


def expected_of(trace):
    """The reference the job logged on the trace as the expectation "expected_response", or None.

    evaluate_run.py hands evaluate the traces without their expectations (so MLflow does not log
    them a second time): the stored trace, read back here, still has them.
    """
    for t in (trace, mlflow.get_trace(trace.info.trace_id)):
        for a in (t.info.assessments if t else None) or []:
            if a.expectation is not None and a.name == EXPECTED:
                return a.expectation.value
    return None


@scorer
def answered(outputs):
    """Whether the row has a non-blank answer (an error row or an empty generation has none)."""
    text = answer_text(outputs)
    return text is not None and text.strip() != ""


@scorer
def reference_in_answer(outputs, trace):
    """Whether the expected answer appears in the answer, ignoring case and surrounding space."""
    text, expected = answer_text(outputs), expected_of(trace)
    if expected is None:
        return None  # no reference: no feedback, as the job's own scores leave such a row out
    return text is not None and str(expected).strip().lower() in text.lower()


@scorer
def answer_is_json(outputs):
    """Whether the answer parses as JSON (for prompt sets that ask for structured answers)."""
    text = answer_text(outputs)
    if text is None:
        return False
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


CODE_SCORERS = {s.name: s for s in (answered, reference_in_answer, answer_is_json)}
