"""Helpers for the dialect tests: scripted streams of chat-completion deltas (what a provider
sends), and the named events of an Anthropic or Responses stream (what the client reads)."""
import json
import time
from pathlib import Path

import freeride
from tests.fakes import Reply

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def chunk(delta, finish=None, model="fake-model", **extra):
    body = {"id": "chatcmpl-dialects", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return "data: " + json.dumps(body)


def delta_stream(*deltas, finish="stop", usage=None, done=True, model="fake-model"):
    """A provider's SSE answer: a role chunk, one chunk per delta, a finishing chunk, a usage
    chunk (``"choices": []``) if given, then ``data: [DONE]``."""
    events = [chunk({"role": "assistant"}, model=model)]
    events += [chunk(delta, model=model) for delta in deltas]
    events.append(chunk({}, finish, model=model))
    if usage:
        events.append("data: " + json.dumps({"id": "chatcmpl-dialects", "model": model,
                                             "object": "chat.completion.chunk", "choices": [],
                                             "usage": usage}))
    if done:
        events.append("data: [DONE]")
    return Reply(events=events)


def tool_delta(index, arguments="", call_id=None, name=None):
    """A tool_calls delta: the first of a call carries its id and name, later ones only
    pieces of its arguments."""
    call = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def usage(prompt, completion):
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def encode(encoder, reply, model="fake-model"):
    """Run an encoder over a scripted provider stream, as the relay loop does: the events of
    the client's stream, as (name, data) pairs."""
    out = encoder.start(model)
    for raw in reply.events:
        event = freeride.read_event(raw.encode())
        out += encoder.chunk(event)
        if event.kind == "done":
            break
    return named_events(b"\n\n".join(out) + b"\n\n")


def named_events(body):
    """(event name, data JSON) for each event of a stream body."""
    out = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        out.append((name, json.loads("\n".join(data)) if data else None))
    return out
