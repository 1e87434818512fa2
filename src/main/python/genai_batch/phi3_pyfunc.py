"""MLflow pyfunc wrappers around an onnxruntime-genai model folder (Phi-3 and alike).

Two shapes, both loaded from the artifact ``phi3-mini-onnx`` (the folder that holds
``genai_config.json``, the ONNX decoder and the tokenizer files):

* :class:`Phi3Model` -- the tutorial's wrapper: input column ``prompt`` (string), output one
  string per row, the generated answer without its stop token. Unlike the tutorial, every row
  of the input is answered, not just row 0.
* :class:`Phi3ChatModel` -- OpenAI-style ``llm/v1/chat``: input column ``messages`` (a list of
  ``{"role", "content", "name"?}``) and optional ``temperature``, ``max_tokens``, ``stop``,
  ``n``, ``stream`` columns; output one ``chat.completion`` dict per row.

Search options come from the logged model's ``model_config`` (``context.model_config``), then a
call's ``params``: ``max_new_tokens`` (or ``max_tokens``), ``max_length``, ``min_length``,
``temperature``, ``top_p``, ``top_k``, ``do_sample``, ``repetition_penalty``, ``seed`` (or
``random_seed``). With neither length set, the tutorial's ``max_length`` of 300 applies, and
without ``do_sample``, greedy search. ``max_length`` counts prompt and answer together;
``max_new_tokens`` counts the generated tokens, the stop token included; with both, the tighter
one wins. Both are capped at the model's context length; temperature 0 means greedy. These rules
are the Java engine's too (docs/search-options.md, held to the cases in
src/test/resources/search-semantics.json).

Generation runs one prompt at a time (batch size 1), the same way the Java engine's reference
(src/test/python/reference_generate.py) does, so greedy answers match token for token.

This module must import without MLflow-specific side effects: it is shipped with the model via
``code_paths`` and imported again when the model is loaded in a fresh Python.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from typing import Any, Iterable

import mlflow.pyfunc
import pandas as pd

ARTIFACT_KEY = "phi3-mini-onnx"
DEFAULT_MAX_LENGTH = 300

# Search options under their canonical names, and the aliases read when the canonical key is
# unset. The rules (docs/search-options.md) are the Java engine's too: both are tested against
# the cases in src/test/resources/search-semantics.json. min_length is this wrapper's only.
_ALIASES = {"max_new_tokens": "max_tokens", "seed": "random_seed"}
_WHOLE_OPTIONS = ("max_new_tokens", "max_length", "top_k", "seed", "min_length")
_NUMBER_OPTIONS = ("temperature", "top_p", "repetition_penalty")
_BOOL_OPTIONS = ("do_sample",)
# Passed to og.GeneratorParams.set_search_options (seed as random_seed); the lengths are not,
# they make the budget.
_PASSTHROUGH_OPTIONS = (
    "min_length",
    "temperature",
    "top_p",
    "top_k",
    "do_sample",
    "repetition_penalty",
    "seed",
)


def _missing(v: Any) -> bool:
    """None, NaN, pandas NA: a cell a row left empty."""
    if v is None:
        return True
    if isinstance(v, (list, tuple, dict, str, bytes)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # arrays and the like
        return False


def _plain(v: Any) -> Any:
    """numpy scalars/arrays and pandas containers to plain Python values."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    return v


# A number written out as the Java engine reads one (Double.parseDouble, less its rarer forms):
# no digit-group underscores, no non-ASCII digits, "NaN" and "Infinity" spelled Java's way.
_NUMERIC = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|Infinity)|NaN")


def _parse_number(v: str) -> float | int | None:
    """A numeric string as an int (digits only) or a float; None when it is not one."""
    v = v.strip()
    if not _NUMERIC.fullmatch(v):
        return None
    return int(v) if v.lstrip("+-").isdigit() else float(v)


def _whole(key: str, v: Any) -> int:
    """An int, a float with no fraction, or a string of either; never a bool."""
    n = _parse_number(v) if isinstance(v, str) else v
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    if isinstance(n, float) and n.is_integer():
        return int(n)
    raise ValueError(f"{key} must be a whole number, got '{v}'")


def _number(key: str, v: Any) -> float:
    """An int, a float or a numeric string; never a bool."""
    n = _parse_number(v) if isinstance(v, str) else v
    if isinstance(n, (int, float)) and not isinstance(n, bool):
        return float(n)
    raise ValueError(f"{key} must be a number, got '{v}'")


def _bool(key: str, v: Any) -> bool:
    """A bool, or the string true or false in any case."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError(f"{key} must be true or false, got '{v}'")


def _check_range(out: dict) -> None:
    for key in ("max_new_tokens", "max_length", "top_k"):
        if key in out and out[key] < 1:
            raise ValueError(f"{key} must be >= 1, got {out[key]}")
    if "min_length" in out and out["min_length"] < 0:
        raise ValueError(f"min_length must be >= 0, got {out['min_length']}")
    if "temperature" in out and not out["temperature"] >= 0:
        raise ValueError(f"temperature must be >= 0, got {out['temperature']}")
    if "top_p" in out and not 0 < out["top_p"] <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {out['top_p']}")
    if "repetition_penalty" in out and not out["repetition_penalty"] > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {out['repetition_penalty']}")


def parse_search_options(config: dict | None) -> dict:
    """The search options of one layer (a model_config, a request's params), typed, under their
    canonical names; unset, null and unknown keys are left out. A bad value raises ValueError
    naming the canonical key."""
    config = config or {}
    out: dict[str, Any] = {}
    for key in _WHOLE_OPTIONS + _NUMBER_OPTIONS + _BOOL_OPTIONS:
        value = None
        for name in (key, _ALIASES.get(key)):
            if name is not None and name in config:
                value = _plain(config[name])
                if not _missing(value):
                    break
                value = None
        if value is None:
            continue
        if key in _WHOLE_OPTIONS:
            out[key] = _whole(key, value)
        elif key in _NUMBER_OPTIONS:
            out[key] = _number(key, value)
        else:
            out[key] = _bool(key, value)
    _check_range(out)
    return out


def merge_search_options(*layers: dict | None) -> dict:
    """Parsed layers, lowest precedence first, merged (a later layer's set value wins), then
    normalized: a temperature of 0 means greedy search (no temperature, do_sample false)."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer or {})
    if out.get("temperature") == 0.0:  # OpenAI's "temperature 0" means greedy
        del out["temperature"]
        out["do_sample"] = False
    return out


def token_budget(
    prompt_len: int,
    context_length: int,
    max_length: int | None = None,
    max_new_tokens: int | None = None,
    default_max_length: int = DEFAULT_MAX_LENGTH,
) -> tuple[int, int]:
    """(max_length for the generator, most new tokens) for a prompt of prompt_len tokens, from the
    merged options: the total limit is min(max_length, context) when max_length is set, else the
    context when max_new_tokens is set, else min(default_max_length, context); max_new_tokens caps
    the new tokens. A prompt that leaves no room raises ValueError."""
    if max_length is not None:
        limit = min(max_length, context_length)
    elif max_new_tokens is not None:
        limit = context_length
    else:
        limit = min(default_max_length, context_length)
    if prompt_len >= limit:
        raise ValueError(
            f"The prompt has {prompt_len} tokens, which leaves no room to generate: the limit is "
            f"{limit - 1} prompt tokens (context length {context_length}"
            + (f", max_length {max_length}" if max_length is not None else "")
            + ")"
        )
    new = limit - prompt_len
    if max_new_tokens is not None:
        new = min(new, max_new_tokens)
    return prompt_len + new, new


class _GenAiRunner:
    """One loaded onnxruntime-genai model and tokenizer, generating one prompt at a time."""

    def __init__(self, model_dir: str, model_config: dict | None):
        import onnxruntime_genai as og

        self.og = og
        self.model_dir = model_dir
        with open(os.path.join(model_dir, "genai_config.json"), encoding="utf-8") as f:
            genai_config = json.load(f)
        model_section = genai_config.get("model", {})
        self.context_length = int(model_section.get("context_length") or 0) or None
        # The folder's own search.max_length is the default total length, as in the Java engine;
        # without one, the tutorial's 300 (docs/search-options.md, "Token budget").
        folder_max_length = genai_config.get("search", {}).get("max_length")
        self.default_max_length = int(folder_max_length) if folder_max_length else DEFAULT_MAX_LENGTH
        eos = model_section.get("eos_token_id", [])
        self.eos_ids = {int(e) for e in (eos if isinstance(eos, list) else [eos])}
        self.model = og.Model(model_dir)
        self.tokenizer = og.Tokenizer(self.model)
        try:  # the tokenizer's own EOS ids, as the Java engine also counts them
            self.eos_ids.update(int(e) for e in self.tokenizer.eos_token_ids)
        except Exception:  # noqa: BLE001 - genai_config.json's list is enough
            pass
        self.search = parse_search_options(model_config)

    def budget(self, prompt_len: int, overrides: dict | None = None) -> tuple[int, int]:
        """(max_length for the generator, most new tokens) for a prompt of prompt_len tokens."""
        opts = merge_search_options(self.search, overrides)
        return token_budget(
            prompt_len,
            self.context_length or 1 << 30,
            opts.get("max_length"),
            opts.get("max_new_tokens"),
            self.default_max_length,
        )

    def generate(
        self,
        prompt: str,
        overrides: dict | None = None,
        stop: Iterable[str] | None = None,
    ) -> dict:
        """Generates for one prompt.

        Returns {"text", "tokens" (generated ids, the stop token included), "prompt_tokens",
        "finish_reason": "stop"|"length"}.
        """
        og = self.og
        if prompt is None or not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"Every prompt must be a non-empty string, got {prompt!r}")
        ids = self.tokenizer.encode(prompt)
        prompt_len = len(ids)
        max_length, max_new = self.budget(prompt_len, overrides)
        opts = merge_search_options(self.search, overrides)
        search = {k: opts[k] for k in _PASSTHROUGH_OPTIONS if k in opts}
        if "seed" in search:
            search["random_seed"] = search.pop("seed")
        search.setdefault("do_sample", False)
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length, batch_size=1, **search)
        generator = og.Generator(self.model, params)
        generator.append_tokens(ids)
        stops = [s for s in (stop or []) if s]
        stream = self.tokenizer.create_stream() if stops else None
        streamed = ""
        # Tokens are collected from get_next_tokens() step by step: onnxruntime-genai 0.12 does
        # not append the EOS token that ends a batch-size-1 search to get_sequence(0), so the
        # sequence alone cannot tell "stopped" from "ran out of length".
        new: list[int] = []
        finish = "length"
        while not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            new.append(token)
            if token in self.eos_ids:
                finish = "stop"
                break
            if stream is not None:
                streamed += stream.decode(token)
                if any(s in streamed for s in stops):
                    break
            if len(new) >= max_new:
                break
        answer = new[:-1] if finish == "stop" else new
        # decode([]) kills the process with SIGFPE in onnxruntime-genai 0.12.
        text = self.tokenizer.decode(answer) if answer else ""
        if stops:
            cut = min((text.find(s) for s in stops if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                finish = "stop"
        return {
            "text": text,
            "tokens": new,
            "prompt_tokens": prompt_len,
            "finish_reason": finish,
        }


def _prompts(model_input: Any) -> list[str]:
    """The prompts of a pyfunc input: a DataFrame's ``prompt`` column (or its only column), a
    dict with ``prompt``, a list of strings, or one string."""
    if isinstance(model_input, pd.DataFrame):
        if "prompt" in model_input.columns:
            col = model_input["prompt"]
        elif len(model_input.columns) == 1:
            col = model_input.iloc[:, 0]
        else:
            raise ValueError(
                f"Expected a 'prompt' column, got columns {list(model_input.columns)}"
            )
        return [_plain(v) for v in col.tolist()]
    if isinstance(model_input, pd.Series):
        return [_plain(v) for v in model_input.tolist()]
    if isinstance(model_input, dict):
        v = model_input.get("prompt", model_input.get("prompts"))
        return [v] if isinstance(v, str) else list(v)
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "tolist"):
        model_input = model_input.tolist()
    return [p if isinstance(p, str) else (p.get("prompt") if isinstance(p, dict) else p) for p in model_input]


class Phi3Model(mlflow.pyfunc.PythonModel):
    """prompt (string) -> generated answer (string), one per input row."""

    def load_context(self, context):
        model_path = context.artifacts[ARTIFACT_KEY]
        self.runner = _GenAiRunner(model_path, getattr(context, "model_config", None))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        overrides = parse_search_options(params) if params else None
        return [self.runner.generate(p, overrides)["text"] for p in _prompts(model_input)]


def _records(model_input: Any) -> list[dict]:
    """The chat requests of a pyfunc input, one dict per row."""
    if isinstance(model_input, pd.DataFrame):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        msgs = model_input.get("messages")
        # {"messages": [..]} is one request; {"messages": [[..], [..]]} is one per row.
        if msgs and isinstance(_plain(msgs)[0], (list, tuple)):
            rows = [{**model_input, "messages": m} for m in _plain(msgs)]
        else:
            rows = [model_input]
    elif isinstance(model_input, list):
        rows = [r if isinstance(r, dict) else {"messages": r} for r in model_input]
    else:
        raise ValueError(f"Unsupported input for llm/v1/chat: {type(model_input).__name__}")
    out = []
    for row in rows:
        clean = {}
        for k, v in row.items():
            v = _plain(v)
            if not isinstance(v, (list, dict, str)) and _missing(v):
                continue
            clean[k] = v
        out.append(clean)
    return out


def _messages(raw: Any) -> list[dict]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"'messages' must be a non-empty list of {{role, content}}, got {raw!r}")
    out = []
    for m in raw:
        m = _plain(m)
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"Every message needs a 'role' and a 'content', got {m!r}")
        msg = {"role": str(m["role"]), "content": "" if _missing(m.get("content")) else str(m.get("content"))}
        if not _missing(m.get("name")) and m.get("name") is not None:
            msg["name"] = str(m["name"])
        out.append(msg)
    return out


class Phi3ChatModel(mlflow.pyfunc.PythonModel):
    """llm/v1/chat: messages (+ optional temperature, max_tokens, stop, n, stream) ->
    chat.completion dict, one per input row. ``stream`` is accepted and ignored."""

    def load_context(self, context):
        model_path = context.artifacts[ARTIFACT_KEY]
        config = dict(getattr(context, "model_config", None) or {})
        self.runner = _GenAiRunner(model_path, config)
        self.model_name = str(config.get("model_name") or os.path.basename(os.path.normpath(model_path)))

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.runner.tokenizer.apply_chat_template(
            json.dumps(messages), add_generation_prompt=True
        )

    def complete(self, request: dict, params: dict | None = None) -> dict:
        messages = _messages(request.get("messages"))
        prompt = self.chat_prompt(messages)
        overrides = parse_search_options(params) if params else {}
        # The request's own options, read by the same rules, win over the call's params.
        overrides.update(
            parse_search_options(
                {"max_tokens": request.get("max_tokens"), "temperature": request.get("temperature")}
            )
        )
        stop = request.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        n = int(request.get("n") or 1)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        choices = []
        prompt_tokens = 0
        completion_tokens = 0
        for index in range(n):
            g = self.runner.generate(prompt, overrides, stop=stop)
            prompt_tokens = g["prompt_tokens"]
            completion_tokens += len(g["tokens"])
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": g["text"]},
                    "finish_reason": g["finish_reason"],
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return [self.complete(r, params) for r in _records(model_input)]
