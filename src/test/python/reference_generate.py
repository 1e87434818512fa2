"""Reference answers from the Python onnxruntime_genai package, one prompt at a time.

The Java tests run this with the project's .venv to compare token for token. Reads a JSON
request on stdin, writes a JSON answer on stdout:
  request:  {"model": DIR, "prompts": [...], "max_new_tokens": N,
             "chats": [[{"role":..,"content":..}, ...], ...]}
  answer:   {"generations": [{"prompt_tokens": n, "tokens": [...], "text": str,
                              "finish_reason": "stop"|"length"}],
             "chat_templates": [str, ...], "eos": [...]}
"""
import json
import sys

import onnxruntime_genai as og


def main():
    req = json.load(sys.stdin)
    model = og.Model(req["model"])
    tok = og.Tokenizer(model)
    with open(f"{req['model']}/genai_config.json") as f:
        eos = set(json.load(f)["model"]["eos_token_id"])
    out = {"generations": [], "chat_templates": [], "eos": sorted(eos)}
    for prompt in req.get("prompts", []):
        ids = tok.encode(prompt)
        params = og.GeneratorParams(model)
        params.set_search_options(
            max_length=len(ids) + req["max_new_tokens"], do_sample=False, batch_size=1
        )
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        # get_next_tokens, not get_sequence: 0.12 leaves the last token out of the sequence
        # when the step that produced it finished the whole batch.
        new = []
        while not gen.is_done():
            gen.generate_next_token()
            new.append(int(gen.get_next_tokens()[0]))
        reason = "length"
        for k, t in enumerate(new):
            if t in eos:
                new = new[: k + 1]
                reason = "stop"
                break
        text_ids = new[:-1] if reason == "stop" else new
        out["generations"].append(
            {
                "prompt_tokens": len(ids),
                "tokens": new,
                # onnxruntime-genai 0.12's BPE decoder divides by zero on an empty list.
                "text": tok.decode(text_ids) if text_ids else "",
                "finish_reason": reason,
            }
        )
    for chat in req.get("chats", []):
        out["chat_templates"].append(
            tok.apply_chat_template(json.dumps(chat), add_generation_prompt=True)
        )
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
