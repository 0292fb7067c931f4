"""The offline demo provider (`freeride serve --demo` only): two simulated keys, the first of
which always answers a rate limit, so a newcomer with no key and no network sees failover in
`freeride watch` and can wire an agent before spending any quota. Answers are a clearly
labelled echo of the last user message; nothing leaves the machine.
"""
import json
import time

from providers import Model, Provider

LABEL = "[FreeRide demo: offline echo, no model was called]"


class Demo(Provider):
    name = "demo"
    title = "Demo (offline)"
    base_url = "demo://local"
    key_vars = ("FREERIDE_DEMO",)
    models = (Model("demo-echo", 131072, tools=True, vision=True),)
    embedding_models = {"demo-embed": 8}
    local = True
    stream_plain = False  # its plain answer is made whole in-process: nothing to assemble
    keys = ("demo-key-0-rate-limited", "demo-key-1")

    def respond(self, key, path, payload):
        """Answer like an OpenAI upstream: (status, headers, body bytes)."""
        if key == self.keys[0]:
            body = {"error": {"message": "demo: simulated rate limit on key 0",
                              "type": "rate_limit", "code": "rate_limit_exceeded"}}
            return 429, {"retry-after": "5"}, json.dumps(body).encode()
        model = payload.get("model", "demo-echo")
        if path == "/embeddings":
            return 200, {}, json.dumps(_embeddings(payload.get("input"), model)).encode()
        text = f"{LABEL} You said: {_last_user_text(payload.get('messages'))}"
        created = int(time.time())
        if payload.get("stream"):
            return 200, {"content-type": "text/event-stream"}, _stream(text, model, created)
        body = {"id": "chatcmpl-demo", "object": "chat.completion", "created": created,
                "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": text}}],
                "usage": _usage(payload, text)}
        return 200, {"content-type": "application/json"}, json.dumps(body).encode()


def _last_user_text(messages):
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            # A short line, never code: an agent reading the echo as an edit must find none.
            text = " ".join(str(content or "").replace("`", "'").split())
            return text[:80] + ("..." if len(text) > 80 else "")
    return ""


def _usage(payload, text):
    prompt = len(json.dumps(payload.get("messages", ""))) // 4
    completion = len(text) // 4
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _stream(text, model, created):
    def chunk(delta, finish=None):
        data = {"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]}
        return "data: " + json.dumps(data) + "\n\n"
    words = text.split(" ")
    events = [chunk({"role": "assistant"})]
    events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    events.append(chunk({}, "stop"))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def _embeddings(inputs, model):
    inputs = inputs if isinstance(inputs, list) else [inputs]
    data = []
    for i, item in enumerate(inputs):
        seed = sum(str(item).encode()) or 1
        data.append({"object": "embedding", "index": i,
                     "embedding": [((seed * 31 + k * 17) % 97) / 97 for k in range(8)]})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}}
