"""Fake free-tier LLM providers on loopback, for FreeRide's tests.

A test scripts what "the provider" answers, points the gateway at ``FakeUpstream.url``
(through ``<NAME>_BASE_URL``), then asserts on what the gateway did and on what the fake
received. The answers reproduce the wire behaviour recorded in ``shared/providers.md``:
status codes, header formats (Go durations, epoch milliseconds, integer seconds), each
provider's error envelope (OpenAI, NVIDIA problem+json, Cloudflare v4, HF plain string,
HTML edge pages) and SSE framing.

Three layers, in the order a test meets them:

* ``Reply`` is one scripted answer: a plain body or a list of SSE events, plus timing
  faults (slow first byte, slow events, a cut connection, a stalled stream, a hung request).
* Builders make real-shaped replies: ``chat_ok``, ``chat_stream``, ``embeddings_ok``,
  ``models_ok``, ``error(provider, case)`` (cases listed in ``ERROR_CASES`` and
  ``recorded_cases``) and ``stream_error_event``.
* ``FakeUpstream`` is a ThreadingHTTPServer on 127.0.0.1 that matches each request against
  the rules added with ``on()`` (bearer key, model, path), falls back to a default answer,
  and records every request first. ``close()`` wakes every hung or stalled handler, so a
  test never waits on a fake.

Every provider in ``providers.REGISTRY`` has a fake. The five first ones (``HAND_WRITTEN``)
have the hand-written builders below; every provider, those five included, also replays the
answers recorded in its fixture file, tests/fixtures/providers/<name>.json (``fixture``), and a
provider without builders answers GET /models with the catalog recorded there.

Standard library only, Python 3.10+.
"""

import datetime
import http.server
import json
import selectors
import socket
import ssl
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import providers

PROVIDERS = tuple(providers.REGISTRY)  # every provider has a fake
HAND_WRITTEN = ("openrouter", "groq", "nvidia", "cloudflare", "huggingface")  # builders below
FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "providers"
POLL_SECONDS = 0.01         # how often a waiting handler looks at its client and at close()
HANG_LIMIT_SECONDS = 300.0  # a forgotten hang or stall still ends on its own
JOIN_SECONDS = 2.0          # close() waits this long, in total, for handler threads


# ----------------------------------------------------------------------------- scripted answers

def _has_header(headers, name):
    return any(key.lower() == name.lower() for key in headers)


class Reply:
    """One scripted upstream answer.

    ``body`` may be bytes, str, or a dict/list (sent as JSON with Content-Type
    application/json). With ``events`` the answer is an SSE stream instead, each event
    written and flushed as ``<event>\\n\\n``, ``event_delay`` seconds apart.

    Faults: ``delay`` waits before the status line; ``hang`` reads the request and never
    answers; ``cut_after=N`` closes the socket after N events (for a plain body: after N
    bytes, while Content-Length announces the whole body); ``stall_after=N`` sends N events
    (or bytes) and then nothing, keeping the connection open. Waits end early when the fake
    closes or the client goes away.
    """

    def __init__(self, status=200, headers=None, body=b"", events=None, delay=0.0,
                 event_delay=0.0, cut_after=None, hang=False, stall_after=None):
        self.status = status
        self.headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            if not _has_header(self.headers, "Content-Type"):
                self.headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
            if not _has_header(self.headers, "Content-Type"):
                self.headers["Content-Type"] = "text/plain; charset=utf-8"
        self.body = body
        self.events = None if events is None else [str(event) for event in events]
        self.delay, self.event_delay = delay, event_delay
        self.cut_after, self.stall_after, self.hang = cut_after, stall_after, hang

    def json(self):
        """The body parsed as JSON (handy for comparing what the gateway relayed)."""
        return json.loads(self.body)

    def __repr__(self):
        shape = f"{len(self.events)} events" if self.events is not None else f"{len(self.body)} bytes"
        return f"<Reply {self.status} {shape}>"


# ----------------------------------------------------------------------------- success bodies

# What the hand-written fakes list in GET /models besides their module's own models (see
# default_model_ids): a paid model (OpenRouter), an id the module does not use and an
# embedding model (Cloudflare).
LISTED_TOO = {
    "openrouter": ["meta-llama/llama-3.3-70b-instruct:free", "openrouter/free", "openai/gpt-4o-mini"],
    "groq": ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
    "nvidia": ["meta/llama-3.1-8b-instruct", "meta/llama-3.3-70b-instruct"],
    "cloudflare": ["@cf/meta/llama-3.1-8b-instruct", "@cf/baai/bge-large-en-v1.5"],
    "huggingface": ["meta-llama/Llama-3.1-8B-Instruct"],
}
_GROQ_HEALTHY_HEADERS = {
    "x-ratelimit-limit-requests": "1000", "x-ratelimit-limit-tokens": "12000",
    "x-ratelimit-remaining-requests": "987", "x-ratelimit-remaining-tokens": "11800",
    "x-ratelimit-reset-requests": "1m26.4s", "x-ratelimit-reset-tokens": "825ms",
}


def _usage(prompt, completion):
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _completion_id():
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chat_ok(text="Hello from the fake", model="fake-model", usage=None):
    """A plain OpenAI ``chat.completion`` answer."""
    return Reply(body={
        "id": _completion_id(), "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage or _usage(7, max(1, len(text.split()))),
    })


def chat_stream(pieces=("Hel", "lo"), model="fake-model", role_chunk=True, keepalive=0,
                include_usage=False, done=True, event_delay=0.0, tool_call=False,
                provider=None):
    """An SSE stream of ``chat.completion.chunk`` events.

    Order: ``keepalive`` OpenRouter comment lines, an optional role-only chunk, one chunk
    per piece (content, or tool-call argument deltas with ``tool_call``), a finishing chunk,
    an optional usage chunk with ``"choices": []``, then ``data: [DONE]``. ``provider``
    adds that provider's extras: OpenRouter's ``provider``/``native_finish_reason``,
    Groq's ``x_groq.usage`` on the finishing chunk.
    """
    stream_id, created = _completion_id(), int(time.time())
    if tool_call and tuple(pieces) == ("Hel", "lo"):
        pieces = ('{"city": ', '"Paris"}')
    usage = _usage(7, len(pieces))

    def chunk(delta, finish=None, choices=True, **extra):
        body = {"id": stream_id, "object": "chat.completion.chunk", "created": created,
                "model": model}
        if provider == "openrouter":
            body["provider"] = "FakeProvider"
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        if provider == "openrouter":
            choice["native_finish_reason"] = finish
        body["choices"] = [choice] if choices else []
        body.update(extra)
        return "data: " + json.dumps(body)

    events = [": OPENROUTER PROCESSING"] * keepalive
    if role_chunk:
        events.append(chunk({"role": "assistant"}))
    for index, piece in enumerate(pieces):
        if not tool_call:
            events.append(chunk({"content": piece}))
        elif index == 0:
            events.append(chunk({"tool_calls": [{"index": 0, "id": "call_fake_0", "type": "function",
                                                 "function": {"name": "get_weather", "arguments": piece}}]}))
        else:
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    extra = {}
    if provider == "groq":
        extra["x_groq"] = {"id": "req_fake", "usage": {
            "queue_time": 0.01, "prompt_time": 0.002, "completion_time": 0.004, "total_time": 0.006,
            **usage}}
    events.append(chunk({}, "tool_calls" if tool_call else "stop", **extra))
    if include_usage:
        events.append(chunk(None, choices=False, usage=usage))
    if done:
        events.append("data: [DONE]")
    return Reply(events=events, event_delay=event_delay)


def embeddings_ok(count=1, dim=8, model="fake-embed"):
    """An OpenAI embeddings list with ``count`` deterministic vectors of ``dim`` floats."""
    data = [{"object": "embedding", "index": row,
             "embedding": [round(((row + 1) * (col + 3) % 17) / 17 - 0.5, 6) for col in range(dim)]}
            for row in range(count)]
    return Reply(body={"object": "list", "data": data, "model": model,
                       "usage": {"prompt_tokens": 4 * count, "total_tokens": 4 * count}})


def _is_free_openrouter(model_id):
    return model_id.endswith(":free") or model_id == "openrouter/free"


def _model_entry(provider, model_id):
    created = 1735689600
    if provider == "openrouter":
        price = "0" if _is_free_openrouter(model_id) else "0.00000015"
        return {"id": model_id, "canonical_slug": model_id.split(":")[0], "name": model_id,
                "created": created, "description": "A fake model.", "context_length": 131072,
                "architecture": {"input_modalities": ["text"], "output_modalities": ["text"],
                                 "modality": "text->text", "tokenizer": "Llama3", "instruct_type": None},
                "pricing": {"prompt": price, "completion": price, "request": "0", "image": "0"},
                "top_provider": {"context_length": 131072, "max_completion_tokens": 8192,
                                 "is_moderated": False},
                "per_request_limits": None,
                "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice", "stream"]}
    if provider == "groq":
        return {"id": model_id, "object": "model", "created": created, "owned_by": "Meta",
                "active": True, "context_window": 131072, "public_apps": None,
                "max_completion_tokens": 32768}
    if provider == "nvidia":
        return {"id": model_id, "object": "model", "created": created,
                "owned_by": model_id.split("/")[0]}
    if provider == "huggingface":
        return {"id": model_id, "object": "model", "created": created,
                "owned_by": model_id.split("/")[0],
                "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
                "providers": [{"provider": "groq", "status": "live", "context_length": 131072,
                               "pricing": {"input": 0.05, "output": 0.08}, "supports_tools": True,
                               "supports_structured_output": False, "is_model_author": False}]}
    if provider != "cloudflare":  # the plain OpenAI entry every other provider answers
        return {"id": model_id, "object": "model", "created": created,
                "owned_by": model_id.split("/")[0] if "/" in model_id else provider}
    embedding = "bge" in model_id or "embed" in model_id
    task = ("Text Embeddings", "Feature extraction models transform text into vectors.") if embedding \
        else ("Text Generation", "Family of generative text models.")
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, model_id)), "name": model_id,
            "description": "A fake model.",
            "task": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, task[0])), "name": task[0],
                     "description": task[1]},
            "properties": [{"property_id": "context_window", "value": "128000"}]}


def models_ok(provider, ids):
    """The provider's real model-list shape for ``ids``.

    An item of ``ids`` may be a dict with an ``id``; its other keys override the generated
    entry (e.g. ``{"id": "x:free", "context_length": 8192}``). Cloudflare answers its v4
    envelope, as ``/ai/models/search`` does.
    """
    data = []
    for item in ids:
        fields = dict(item) if isinstance(item, dict) else {"id": item}
        entry = _model_entry(provider, fields["id"])
        if provider == "cloudflare":
            fields["name"] = fields.pop("id")
        entry.update(fields)
        data.append(entry)
    if provider == "openrouter":
        return Reply(body={"data": data})
    if provider == "cloudflare":
        return Reply(body={"success": True, "errors": [], "messages": [], "result": data,
                           "result_info": {"count": len(data), "page": 1, "per_page": 100,
                                           "total_count": len(data)}})
    return Reply(body={"object": "list", "data": data})


def _as_listed(provider, model):
    """A ``models_ok`` item for a module's Model that states the module's own context window
    (and for OpenRouter, whose catalog says so, its tool and image support), so that the live
    catalog does not contradict the module."""
    item, context = {"id": model.id}, model.context
    if provider == "openrouter":
        entry = _model_entry(provider, model.id)
        if context:
            item["context_length"] = context
            item["top_provider"] = dict(entry["top_provider"], context_length=context)
        item["architecture"] = dict(entry["architecture"], input_modalities=["text", "image"]
                                    if model.vision else ["text"])
        item["supported_parameters"] = [name for name in entry["supported_parameters"]
                                         if model.tools or name not in ("tools", "tool_choice")]
    elif context and provider == "groq":
        item["context_window"] = context
    elif context and provider == "huggingface":
        [route] = _model_entry(provider, model.id)["providers"]
        item["providers"] = [dict(route, context_length=context)]
    elif context and provider == "cloudflare":
        item["properties"] = [{"property_id": "context_window", "value": str(context)}]
    return item


def default_model_ids(provider):
    """What a hand-written fake lists in GET /models: the ``LISTED_TOO`` ids, then every model
    of the provider's module not already there (read from the module at each call, so the
    gateway's live-catalog filter keeps whatever the module lists), as ``models_ok`` items."""
    listed = list(LISTED_TOO[provider])
    listed += [_as_listed(provider, model) for model in providers.REGISTRY[provider].models
               if model.id not in LISTED_TOO[provider]]
    return listed


def models_reply(provider):
    """The fake's default GET /models answer: ``models_ok`` of ``default_model_ids`` for a
    hand-written provider; for the others the catalog answer recorded in the fixture file
    (without one yet, an OpenAI model list of the module's models)."""
    if provider in HAND_WRITTEN:
        return models_ok(provider, default_model_ids(provider))
    try:
        return Reply(body=fixture(provider)["catalog"]["answer"])
    except (FileNotFoundError, KeyError, TypeError):
        return models_ok(provider, [model.id for model in providers.REGISTRY[provider].models])


# ----------------------------------------------------------------------------- recorded answers

def fixture(provider):
    """The recorded answers of ``provider``, parsed from tests/fixtures/providers/<name>.json
    (a fresh copy each call; the format is in CONTRIBUTING.md). FileNotFoundError when the
    provider has none yet, ValueError when it is not valid JSON."""
    return json.loads((FIXTURE_DIR / f"{provider}.json").read_text(encoding="utf-8"))


def recorded_cases(provider):
    """The error cases recorded in ``provider``'s fixture file (none without one)."""
    try:
        return tuple(fixture(provider).get("errors") or ())
    except FileNotFoundError:
        return ()


def _recorded_error(provider, case, kw):
    """A recorded error answer replayed as it is: status, headers, body (JSON unless a string)."""
    try:
        recorded = fixture(provider).get("errors") or {}
    except FileNotFoundError:
        recorded = {}
    if case not in recorded:
        known = ERROR_CASES[provider] + tuple(recorded)
        raise ValueError(f"unknown {provider} error case {case!r}; known: {known}")
    unusable = set(kw) - {"status", "headers"}
    if unusable:
        raise TypeError(f"the recorded {provider} case {case!r} takes only status and headers, "
                        f"not {sorted(unusable)}")
    answer = recorded[case]
    body, headers = answer.get("body", ""), dict(answer.get("headers") or {})
    if not isinstance(body, (str, dict, list)):  # a JSON number, true or null, sent as JSON
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    return Reply(answer["status"], headers, body)


# ----------------------------------------------------------------------------- failure bodies

def next_utc_midnight_ms(now=None):
    """Epoch milliseconds of the next 00:00 UTC after ``now`` (a datetime, naive = UTC, or epoch seconds)."""
    utc = datetime.timezone.utc
    if now is None:
        now = datetime.datetime.now(utc)
    elif isinstance(now, (int, float)):
        now = datetime.datetime.fromtimestamp(now, utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=utc)
    tomorrow = now.astimezone(utc).date() + datetime.timedelta(days=1)
    return int(datetime.datetime.combine(tomorrow, datetime.time(), tzinfo=utc).timestamp() * 1000)


class _Options:
    """The keyword overrides given to error(); ``options(name, default)`` reads one."""

    def __init__(self, kw):
        self.kw = kw

    def __call__(self, name, default=None):
        return self.kw.get(name, default)


_OR_MODEL = "meta-llama/llama-3.3-70b-instruct:free"


def _openrouter(status, message, o, metadata=None, headers=None, user=True):
    error = {"message": o("message", message), "code": status}
    if metadata is not None:
        error["metadata"] = metadata
    body = {"error": error}
    if user:
        body["user_id"] = o("user_id", "user_2fakeFreeRideTests")
    return Reply(status, headers, body)


def _openrouter_429(o, message, limit, reset_ms, retry_after, **metadata):
    rate = {"X-RateLimit-Limit": str(o("limit", limit)), "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_ms)}
    headers = dict(rate) if retry_after is None else {"Retry-After": str(retry_after), **rate}
    return _openrouter(429, message, o, {"headers": rate, **metadata}, headers)


def _openrouter_rate_minute(o):
    retry = o("retry_after", 30)
    return _openrouter_429(o, "Rate limit exceeded: free-models-per-min.", 20,
                           o("reset_ms", int(time.time() * 1000) + retry * 1000), retry)


def _openrouter_daily(o, message, limit):
    return _openrouter_429(o, message, limit, o("reset_ms", next_utc_midnight_ms()), o("retry_after"),
                           limit_source="openrouter_free_tier_daily",
                           remedy_hint="Add credits to unlock more free model requests per day, "
                                       "or wait for the daily reset at 00:00 UTC.")


def _openrouter_upstream_rate(o):
    retry, model = o("retry_after", 17), o("model", _OR_MODEL)
    raw = (f"{model} is temporarily rate-limited upstream. Please retry shortly, or add your own key "
           "to accumulate your rate limits: https://openrouter.ai/settings/integrations")
    return _openrouter(429, "Provider returned error", o, {
        "raw": raw, "provider_name": "Venice", "is_byok": False, "retry_after_seconds": retry,
        "retry_after_seconds_raw": round(retry - 0.993, 3), "headers": {"Retry-After": str(retry)}},
        {"Retry-After": str(retry)})


_OPENROUTER_ERRORS = {
    "rate_minute": _openrouter_rate_minute,
    "daily_cap": lambda o: _openrouter_daily(o, "Rate limit exceeded: free-models-per-day. Add 10 credits "
                                                "to unlock 1000 free model requests per day", 50),
    "daily_cap_high": lambda o: _openrouter_daily(o, "Rate limit exceeded: free-models-per-day-high-balance.",
                                                  1000),
    "upstream_rate": _openrouter_upstream_rate,
    "auth_missing": lambda o: _openrouter(401, "No auth credentials found", o, user=False),
    "auth_invalid": lambda o: _openrouter(401, "User not found.", o, user=False),
    "credits": lambda o: _openrouter(402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
                                     o, {"limit_source": "openrouter_credits",
                                         "remedy_hint": "Add credits at https://openrouter.ai/settings/credits."}),
    "bad_model": lambda o: _openrouter(400, f"{o('model', 'foo/bar:free')} is not a valid model ID", o),
    "no_endpoints": lambda o: _openrouter(404, f"No endpoints found for {o('model', _OR_MODEL)}.", o),
    "context": lambda o: _openrouter(
        400, "This endpoint's maximum context length is 131072 tokens. However, you requested about 138956 "
             "tokens (7884 of text input, 131072 in the output). Please reduce the length of either one, or "
             "use the \"middle-out\" transform to compress your prompt automatically.", o),
    "context_502": lambda o: _openrouter(502, "Provider returned error", o, {
        "provider_name": "DeepInfra", "is_byok": False, "raw": {
            "object": "error", "type": "BadRequestError", "param": None, "code": 400,
            "message": "This model's maximum context length is 16000 tokens. However, you requested 17254 "
                       "tokens (1254 in the messages, 16000 in the completion). Please reduce the length "
                       "of the messages or completion."}}),
    "moderation": lambda o: _openrouter(
        403, f"{o('model', 'openai/gpt-4o-mini')} requires moderation on OpenAI. Your input was flagged for "
             "\"harassment\". No credits were charged.", o,
        {"reasons": ["harassment"], "flagged_input": "tell me how to hurt…my neighbour tonight",
         "provider_name": "OpenAI", "model_slug": o("model", "openai/gpt-4o-mini")}),
    "provider_error": lambda o: _openrouter(502, "Provider returned error", o, {
        "provider_name": "Chutes", "is_byok": False,
        "raw": "upstream connect error or disconnect/reset before headers. reset reason: connection termination"}),
    "no_provider": lambda o: _openrouter(
        503, "No available model provider that meets your routing requirements.", o,
        headers=None if o("retry_after") is None else {"Retry-After": str(o("retry_after"))}),
    "timeout": lambda o: _openrouter(408, "Request timed out. Please try again later.", o),
    "bad_request": lambda o: _openrouter(400, "messages: Input should be a valid list", o),
}

_GROQ_ORG = "org_01fakefreeride0000000000"


def _groq(status, message, o, type_="invalid_request_error", code=None, headers=None, **extra):
    error = {"message": o("message", message), "type": type_}
    if code is not None:
        error["code"] = code
    error.update(extra)
    return Reply(status, headers, {"error": error})


def _groq_limits(o, retry_after=None, **values):
    """Groq's rate-limit headers (on every response; retry-after only on 429)."""
    headers = {} if retry_after is None else {"retry-after": str(o("retry_after", retry_after))}
    headers.update(_GROQ_HEALTHY_HEADERS)
    headers.update({f"x-ratelimit-{name.replace('_', '-')}": value for name, value in values.items()})
    for name in ("reset_requests", "reset_tokens"):
        header = "x-ratelimit-" + name.replace("_", "-")
        headers[header] = o(name, headers[header])
    return headers


def _groq_429(o, dimension, figures, wait, retry_after, type_, **header_values):
    wait = f"{o('retry_after')}s" if o("retry_after") is not None else wait
    tail = ("Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing"
            if type_ == "tokens" else "Visit https://console.groq.com/docs/rate-limits for more information.")
    message = (f"Rate limit reached for model `{o('model', 'llama-3.3-70b-versatile')}` in organization "
               f"`{_GROQ_ORG}` service tier `on_demand` on {dimension}: {figures}. "
               f"Please try again in {wait}. {tail}")
    return _groq(429, message, o, type_, "rate_limit_exceeded",
                 _groq_limits(o, retry_after, **header_values))


_GROQ_ERRORS = {
    "rate_tpm": lambda o: _groq_429(o, "tokens per minute (TPM)", "Limit 12000, Used 2542, Requested 9855",
                                    "1.984999999s", 2, "tokens", remaining_tokens="0",
                                    reset_requests="2m59.56s", reset_tokens="7.66s"),
    "rate_rpm": lambda o: _groq_429(o, "requests per minute (RPM)", "Limit 30, Used 30, Requested 1",
                                    "1.5s", 2, "requests"),
    "daily_tpd": lambda o: _groq_429(o, "tokens per day (TPD)", "Limit 100000, Used 97050, Requested 3619",
                                     "9m38.016s", 579, "tokens"),
    "daily_rpd": lambda o: _groq_429(o, "requests per day (RPD)", "Limit 1000, Used 1000, Requested 1",
                                     "1h2m3s", 3723, "requests", remaining_requests="0",
                                     reset_requests="1h2m3s"),
    "too_large": lambda o: _groq(
        413, f"Request too large for model `{o('model', 'llama-3.1-8b-instant')}` in organization `{_GROQ_ORG}` "
             "service tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 12328, please reduce "
             "your message size and try again. Need more tokens? Upgrade to Dev Tier today at "
             "https://console.groq.com/settings/billing", o, "tokens", "rate_limit_exceeded", _groq_limits(o)),
    "auth": lambda o: _groq(401, "Invalid API Key", o, code="invalid_api_key"),
    "model_not_found": lambda o: _groq(
        404, f"The model `{o('model', 'llama3-70b-8192')}` does not exist or you do not have access to it.",
        o, code="model_not_found"),
    "context": lambda o: _groq(400, "Please reduce the length of the messages or completion.", o,
                               param="messages", code="context_length_exceeded"),
    "flex": lambda o: _groq(498, "`flex` tier capacity exceeded. Please try again later, or use the "
                                 "`on_demand` service tier.", o, "internal_server_error", "capacity_exceeded"),
    "tool_use_failed": lambda o: _groq(
        400, "Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details.",
        o, code="tool_use_failed", failed_generation='<function=get_weather{"city": "Paris"}</function>'),
    "server": lambda o: _groq(500, "Internal server error", o, "internal_server_error"),
    "unavailable": lambda o: _groq(
        503, f"{o('model', 'llama-3.3-70b-versatile')} is currently over capacity. Please try again and back "
             "off exponentially. Visit https://groqstatus.com to see if there is an active incident.",
        o, "internal_server_error", "service_unavailable"),
}


def _problem(status, title, o, detail=None):
    """NVIDIA's problem+json body: no "error" key at all."""
    body = {"status": status, "title": title}
    detail = o("message", detail)
    if detail is not None:
        body["detail"] = detail
    return Reply(status, {"Content-Type": "application/problem+json"}, body)


_NVIDIA_ERRORS = {
    "rate": lambda o: _problem(429, "Too Many Requests", o),
    "auth_missing": lambda o: _problem(401, "Unauthorized", o, "Header of type `authorization` was missing"),
    "auth": lambda o: _problem(403, "Forbidden", o, "Authorization failed"),
    "not_found": lambda o: _problem(
        404, "Not Found", o, f"Function '{uuid.uuid5(uuid.NAMESPACE_URL, o('model', 'meta/llama-3.1-8b-instruct'))}'"
                             ": Not found for account 'fake-nvidia-account'"),
    "not_found_empty": lambda o: Reply(404),
    "gone": lambda o: Reply(410),
    "context": lambda o: Reply(400, None, {
        "object": "error", "type": "BadRequestError", "param": None, "code": 400,
        "message": o("message", "This model's maximum context length is 131072 tokens. However, you requested "
                                "140000 tokens (8000 in the messages, 132000 in the completion). Please reduce "
                                "the length of the messages or completion.")}),
    "server": lambda o: _problem(502, "Bad Gateway", o),
    "unavailable": lambda o: _problem(503, "Service Unavailable", o),
    "gateway_timeout": lambda o: _problem(504, "Gateway Timeout", o),
}


def _cloudflare(status, code, message, o, headers=None):
    return Reply(status, headers, {"success": False, "errors": [{"code": code, "message": o("message", message)}],
                                   "messages": [], "result": None})


_CLOUDFLARE_ERRORS = {
    "neurons": lambda o: _cloudflare(429, 4006, "4006: you have used up your daily free allocation of 10,000 "
                                               "neurons, please upgrade to Cloudflare's Workers Paid plan if you "
                                               "would like to continue usage.", o),
    "neurons_3036": lambda o: _cloudflare(429, 3036, "You have used up your daily free allocation of 10,000 "
                                                     "neurons. Please upgrade to Cloudflare's Workers Paid plan "
                                                     "if you would like to continue usage.", o),
    "rate": lambda o: _cloudflare(429, 3021, "rate limiting: inference request per min rate reached", o,
                                  {"retry-after": str(o("retry_after", 1))}),
    "capacity": lambda o: _cloudflare(429, 3040, "No more data centers to forward the request to", o),
    "auth": lambda o: _cloudflare(401, 10000, "Authentication error", o),
    "route": lambda o: _cloudflare(
        404, 7003, f"Could not route to /client/v4/accounts/{o('account_id', 'fake-account-id')}/ai/v1/chat/"
                   "completions, perhaps your object identifier is invalid?", o),
    "no_model": lambda o: _cloudflare(400, 5007, f"No such model {o('model', '@cf/meta/nope')} or task", o),
    "invalid_model": lambda o: _cloudflare(404, 3042, f"Invalid model ID: {o('model', '@cf/meta/nope')}", o),
    "too_large": lambda o: _cloudflare(413, 3006, "Request is too large", o),
    "timeout": lambda o: _cloudflare(408, 3007, "Request timeout", o),
    "invalid_input": lambda o: _cloudflare(400, 5004, "Invalid data: required properties at '/' are 'messages'", o),
    "agreement": lambda o: _cloudflare(
        403, 5016, f"Model agreement not accepted: submit the prompt 'agree' to accept the license of "
                   f"{o('model', '@cf/meta/llama-3.2-11b-vision-instruct')}", o),
}


def _huggingface(status, message, o, code=None):
    """HF's plain ``{"error": "..."}``, or with ``envelope="openai"`` the /v1 object form."""
    message = o("message", message)
    if o("envelope", "openai" if code else "plain") == "plain":
        return Reply(status, None, {"error": message})
    error = {"message": message, "type": "invalid_request_error", "param": "model" if code else None, "code": code}
    return Reply(status, None, {"error": error})


_HUGGINGFACE_ERRORS = {
    "credits": lambda o: _huggingface(402, "You have exceeded your monthly included credits for Inference "
                                           "Providers. Subscribe to PRO to get 20x more monthly included credits.", o),
    "credits_new": lambda o: _huggingface(402, "You have depleted your monthly included credits.", o),
    "model_not_supported": lambda o: _huggingface(
        400, f"The requested model '{o('model', 'meta-llama/Llama-3.1-8B-Instruct')}' is not supported by any "
             "provider you have enabled.", o, code="model_not_supported"),
    "auth": lambda o: _huggingface(401, "Invalid credentials in Authorization header", o),
    "rate": lambda o: _huggingface(429, "Rate limit reached. You reached the rate limit for Inference Providers; "
                                        "please retry later.", o),
    "busy": lambda o: _huggingface(503, "Model is currently loading, or the provider is busy. Please retry.", o),
}

_HOSTS = {"openrouter": "openrouter.ai", "groq": "api.groq.com", "nvidia": "integrate.api.nvidia.com",
          "cloudflare": "api.cloudflare.com", "huggingface": "router.huggingface.co"}


def _edge_page(provider, status, title):
    """The HTML page a Cloudflare edge sends when the origin fails (not JSON at all)."""
    ray = uuid.uuid4().hex[:16]
    host = _HOSTS.get(provider) or urlsplit(providers.REGISTRY[provider].base_url).hostname
    page = (f'<!DOCTYPE html>\n<html lang="en-US">\n<head><title>{host} | {status}: {title}</title>'
            f'<meta charset="UTF-8" /></head>\n<body><div id="cf-wrapper"><div id="cf-error-details">\n'
            f'<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">{status}</span></h1>\n'
            f'<h2 class="cf-subheadline">{title}</h2>\n'
            f'<p>Cloudflare Ray ID: <strong class="font-semibold">{ray}</strong></p>\n</div></div></body>\n</html>\n')
    return Reply(status, {"Content-Type": "text/html; charset=UTF-8", "Server": "cloudflare",
                          "CF-RAY": f"{ray}-AMS"}, page)


def _truncated_200(o):
    full = chat_ok(model=o("model", "fake-model"))
    return Reply(200, full.headers, full.body, cut_after=len(full.body) // 2)


_ANY_PROVIDER_ERRORS = {
    "html_502": lambda provider, o: _edge_page(provider, 502, "Bad gateway"),
    "html_524": lambda provider, o: _edge_page(provider, 524, "A timeout occurred"),
    "garbage_200": lambda provider, o: Reply(200, {"Content-Type": "application/json"},
                                             b"upstream connect error or disconnect/reset before headers. "
                                             b"reset reason: overflow"),
    "truncated_200": lambda provider, o: _truncated_200(o),
}
_PROVIDER_ERRORS = {"openrouter": _OPENROUTER_ERRORS, "groq": _GROQ_ERRORS, "nvidia": _NVIDIA_ERRORS,
                    "cloudflare": _CLOUDFLARE_ERRORS, "huggingface": _HUGGINGFACE_ERRORS}
# The cases with builders, for every provider: its own (hand-written ones) and the edge pages
# and broken 200s any provider can send. recorded_cases(provider) lists the others error() knows.
ERROR_CASES = {provider: tuple(_PROVIDER_ERRORS.get(provider, ())) + tuple(_ANY_PROVIDER_ERRORS)
               for provider in PROVIDERS}
ERROR_OPTIONS = frozenset({"model", "message", "retry_after", "reset_ms", "limit", "reset_requests",
                           "reset_tokens", "account_id", "envelope", "user_id", "status", "headers"})


def error(provider, case, **kw):
    """A real-shaped failure of ``provider`` (see ``ERROR_CASES``), from shared/providers.md,
    or else the one recorded under ``case`` in its fixture file (``recorded_cases``).

    Options (each case reads the ones that apply): model, message, retry_after (seconds),
    reset_ms (epoch ms), limit, reset_requests / reset_tokens (Go durations), account_id,
    envelope ("plain" or "openai", HuggingFace), user_id; status and headers override the
    result on any case, and are the only options a recorded case takes.
    """
    unknown = set(kw) - ERROR_OPTIONS
    if unknown:
        raise TypeError(f"error() got unknown options {sorted(unknown)}; known: {sorted(ERROR_OPTIONS)}")
    if provider not in providers.REGISTRY:
        raise ValueError(f"unknown provider {provider!r}; known: {PROVIDERS}")
    options = _Options(kw)
    if case in _ANY_PROVIDER_ERRORS:
        reply = _ANY_PROVIDER_ERRORS[case](provider, options)
    elif case in _PROVIDER_ERRORS.get(provider, ()):
        reply = _PROVIDER_ERRORS[provider][case](options)
    else:
        reply = _recorded_error(provider, case, kw)
    reply.status = kw.get("status", reply.status)
    reply.headers.update(kw.get("headers") or {})
    return reply


def stream_error_event(provider, code=502, message="Provider disconnected"):
    """One SSE event reporting a failure after a 200 stream began.

    OpenRouter: a chunk with a top-level ``error`` and a choice finished with "error".
    Groq: ``event: error`` then ``data: {"error": {...}}``. Others: a bare
    ``data: {"error": {...}}`` as generic OpenAI-compatible servers send.
    """
    if provider == "openrouter":
        return "data: " + json.dumps({
            "id": "gen-" + uuid.uuid4().hex[:20], "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "fake-model", "provider": "FakeProvider", "error": {"code": code, "message": message},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
    kind = "internal_server_error" if not isinstance(code, int) or code >= 500 else "invalid_request_error"
    body = "data: " + json.dumps({"error": {"message": message, "type": kind, "code": code}})
    return "event: error\n" + body if provider == "groq" else body


def streamed(reply, request):
    """A plain chat.completion scripted for a request that asked for a stream, answered as the
    real service would: the same message as SSE chunks (role, content, tool calls, reasoning,
    finish, usage when include_usage asks for it, [DONE]). Anything else is left as it is."""
    body = request.body if isinstance(request.body, dict) else {}
    if not body.get("stream") or reply.events is not None or reply.status != 200 \
            or reply.cut_after is not None or reply.stall_after is not None or reply.hang:
        return reply
    try:
        doc = json.loads(reply.body)
        message = doc["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return reply
    if not isinstance(message, dict):  # "message": null, a case of its own: sent as it is
        return reply
    top = {k: doc[k] for k in ("id", "created", "model", "system_fingerprint") if k in doc}

    def chunk(delta, finish=None, **extra):
        return "data: " + json.dumps(dict(top, object="chat.completion.chunk", choices=[
            {"index": 0, "delta": delta, "finish_reason": finish}], **extra))

    events = [chunk({"role": "assistant", "content": ""})]
    for name in ("reasoning_content", "reasoning"):
        if message.get(name):
            events.append(chunk({name: message[name]}))
    text = message.get("content") or ""
    events += [chunk({"content": text[i:i + 8]}) for i in range(0, len(text), 8)]
    for index, call in enumerate(message.get("tool_calls") or ()):
        arguments = call["function"]["arguments"]
        events.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"],
                                                          "arguments": arguments[:5]}}]}))
        if arguments[5:]:
            events.append(chunk({"tool_calls": [{"index": index,
                                                 "function": {"arguments": arguments[5:]}}]}))
    events.append(chunk({}, doc["choices"][0].get("finish_reason") or "stop"))
    if (body.get("stream_options") or {}).get("include_usage") and "usage" in doc:
        events.append("data: " + json.dumps(dict(top, object="chat.completion.chunk", choices=[],
                                                 usage=doc["usage"])))
    events.append("data: [DONE]")
    headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
    return Reply(200, headers, events=events, delay=reply.delay, event_delay=reply.event_delay)


# ----------------------------------------------------------------------------- the server

@dataclass
class RecordedRequest:
    """One request as the fake received it (headers with lower-case names)."""
    method: str
    path: str
    headers: dict
    key: str | None
    body: object  # parsed JSON, or the raw bytes when it is not JSON
    model: str | None
    raw: bytes


@dataclass
class _Rule:
    reply: object  # a Reply, or a callable(request) -> Reply
    key: str | None
    model: str | None
    path: str | None
    times: int | None

    def matches(self, request):
        # A rule with no path scripts the calls a request makes (POST), not the catalog the
        # gateway fetches in the background at start (GET): a test scripts that by its path.
        path = request.path.split("?", 1)[0]
        return ((self.key is None or self.key == request.key)
                and (self.model is None or self.model == request.model)
                and (path.endswith(self.path) if self.path is not None
                     else request.method != "GET"))


def _ambient_headers(provider, status):
    """Headers the real service adds to successful answers (Groq's limits, OpenRouter's generation id)."""
    if status >= 400:
        return {}
    if provider == "groq":
        return dict(_GROQ_HEALTHY_HEADERS)
    if provider == "openrouter":
        return {"X-Generation-Id": "gen-" + uuid.uuid4().hex[:20]}
    return {}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is dropped after this; bounds every blocking read

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):  # handshake here, not in the accept loop
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format, *args):
        pass  # the gateway hanging up is a normal event in these tests

    def do_GET(self):
        fake = self.server.fake
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        request = fake._record(self.command, self.path, self.headers, self.rfile.read(length) if length else b"")
        reply = fake._reply_for(request)
        try:
            self._answer(reply)
        except OSError:
            self._client_gone()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _client_gone(self):
        self.close_connection = True
        if not self.server.fake._stopping.is_set():
            self.server.fake.disconnected.set()

    def _answer(self, reply):
        if reply.delay and not self._idle(reply.delay):
            self.close_connection = True
            return
        if reply.hang:
            self._idle(None)
            self.close_connection = True
            return
        headers = dict(reply.headers)
        defaults = _ambient_headers(self.server.fake.provider, reply.status)
        if reply.events is not None:
            defaults.update({"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        if self.close_connection:  # the client asked for "Connection: close"
            defaults["Connection"] = "close"
        headers.update({name: value for name, value in defaults.items() if not _has_header(headers, name)})
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers.items():
            self.send_header(name, str(value))
        if reply.events is None:
            self._send_body(reply, headers)
        else:
            self._send_events(reply)

    def _send_body(self, reply, headers):
        if not _has_header(headers, "Content-Length"):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.cut_after is not None:
            self.wfile.write(reply.body[:reply.cut_after])
            self._cut()
        elif reply.stall_after is not None:
            self.wfile.write(reply.body[:reply.stall_after])
            self._idle(None)
            self.close_connection = True
        else:
            self.wfile.write(reply.body)

    def _send_events(self, reply):
        chunked = self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:  # an HTTP/1.0 client: the end of the stream is the end of the connection
            self.send_header("Connection", "close")
        self.end_headers()
        events = reply.events
        for sent in range(len(events) + 1):
            if reply.cut_after is not None and sent >= reply.cut_after:
                self._cut()
                return
            if reply.stall_after is not None and sent >= reply.stall_after:
                self._idle(None)
                self.close_connection = True
                return
            if sent == len(events):
                break
            if sent and reply.event_delay and not self._idle(reply.event_delay):
                self.close_connection = True
                return
            data = (events[sent].rstrip("\n") + "\n\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _cut(self):
        """Drop the connection mid-answer: no terminating chunk, no more bytes."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _idle(self, seconds):
        """Wait ``seconds`` (None: until the fake closes, capped) while watching the client.

        True when the time ran out normally; False when the fake is closing or the client
        hung up (which sets ``disconnected``).
        """
        stopping = self.server.fake._stopping
        deadline = time.monotonic() + (HANG_LIMIT_SECONDS if seconds is None else seconds)
        peekable = not isinstance(self.connection, ssl.SSLSocket)
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                step = min(left, POLL_SECONDS)
                if stopping.is_set():
                    return False
                if not peekable:
                    stopping.wait(step)
                    continue
                try:
                    readable = bool(selector.select(step))
                    gone = readable and not self.connection.recv(1, socket.MSG_PEEK)
                except (OSError, ValueError):
                    readable = gone = True
                if stopping.is_set():
                    return False
                if gone:
                    self._client_gone()
                    return False
                if readable:  # the client sent more bytes (pipelining); do not spin on them
                    stopping.wait(step)
        return seconds is not None


class _Server(http.server.ThreadingHTTPServer):
    """Tracks live connection sockets and handler threads so close() can end them."""
    daemon_threads = True
    request_queue_size = 128  # tests open many connections at once; a full backlog resets them

    def __init__(self, fake, ssl_context):
        self.fake = fake
        self.live_sockets, self.handler_threads = set(), []
        super().__init__(("127.0.0.1", 0), _Handler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def get_request(self):
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers, body, events: no Nagle wait
        with self.fake._lock:
            self.live_sockets.add(connection)
            self.fake.connections += 1
        return connection, address

    def process_request(self, request, client_address):
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name=f"fake-{self.fake.provider}-handler", daemon=True)
        with self.fake._lock:
            self.handler_threads = [t for t in self.handler_threads if t.is_alive()] + [thread]
        thread.start()

    def shutdown_request(self, request):
        with self.fake._lock:
            self.live_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a hang-up is expected; a bug in the fake is not
            super().handle_error(request, client_address)


class FakeUpstream:
    """A loopback HTTP server that answers like one provider.

    ``url`` is the base URL ('http://127.0.0.1:PORT/v1'); the gateway appends
    '/chat/completions', '/embeddings', '/models'. Use as a context manager, or
    ``start()`` / ``close()``. Pass ``ssl_context`` (a server-side ssl.SSLContext with a
    certificate loaded) to serve https; ``tls=True`` without one is an error.
    """

    def __init__(self, provider="openrouter", tls=False, ssl_context=None):
        if provider not in providers.REGISTRY:
            raise ValueError(f"unknown provider {provider!r}; known: {PROVIDERS}")
        if tls and ssl_context is None:
            raise ValueError("tls=True needs ssl_context=<server-side ssl.SSLContext with a certificate>")
        self.provider, self.ssl_context = provider, ssl_context
        # The last segment of the provider's catalog URL, for one not ending in /models
        # (a local server's native list): GET requests ending so get the model list too.
        catalog_path = urlsplit(providers.REGISTRY[provider]().catalog_url("fake-account")).path
        self._catalog_tail = "/" + catalog_path.rstrip("/").rsplit("/", 1)[-1]
        self.url = self.origin = None
        self.requests, self.connections = [], 0
        self.disconnected = threading.Event()
        self._rules, self._default = [], None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server = self._serve_thread = None
        self._closed = False

    def start(self):
        """Bind a free port and serve in a background thread; returns self."""
        if self._closed:
            raise RuntimeError("this FakeUpstream was closed; make a new one")
        if self._server is None:
            self._server = _Server(self, self.ssl_context)
            scheme = "https" if self.ssl_context is not None else "http"
            self.origin = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
            self.url = self.origin + "/v1"
            self._serve_thread = threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,),
                                                  name=f"fake-{self.provider}", daemon=True)
            self._serve_thread.start()
        return self

    def close(self):
        """Stop serving, end every connection (hung and stalled ones included), join threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        server = self._server
        if server is None:
            return
        server.shutdown()
        self._serve_thread.join(JOIN_SECONDS)
        with self._lock:
            live, threads = list(server.live_sockets), list(server.handler_threads)
        for connection in live:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers = list(server.live_sockets)
        for connection in leftovers:  # only if a handler did not finish in time
            connection.close()
        server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()

    def on(self, reply, *, key=None, model=None, path=None, times=1):
        """Answer ``reply`` (a Reply or a callable(request) -> Reply) to matching requests.

        Rules are tried in the order added; None matches anything; ``path`` is a suffix of
        the request path. The rule is dropped after ``times`` uses (None: never).
        """
        if times is not None and times <= 0:
            return
        with self._lock:
            self._rules.append(_Rule(reply, key, model, path, times))

    def default(self, reply_or_callable):
        """What to answer when no rule matches (a Reply, or a callable(request) -> Reply)."""
        with self._lock:
            self._default = reply_or_callable

    def wait_requests(self, n, timeout=5):
        """Block until at least ``n`` requests were received; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= n, timeout)

    def _record(self, method, path, headers, raw):
        lower = {name.lower(): value for name, value in headers.items()}
        scheme, _, token = lower.get("authorization", "").partition(" ")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        request = RecordedRequest(method, path, lower, token.strip() if scheme.lower() == "bearer" else None,
                                  body, body.get("model") if isinstance(body, dict) else None, raw)
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
        return request

    def _reply_for(self, request):
        with self._lock:
            # default() scripts the calls requests make; a catalog GET not scripted by a rule
            # gets the provider's own model list.
            chosen = self._default if self._default and request.method != "GET" \
                else self._default_reply
            for rule in self._rules:
                if rule.matches(request):
                    chosen = rule.reply
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    break
        reply = chosen(request) if callable(chosen) else chosen
        return streamed(reply, request) if isinstance(reply, Reply) else reply

    def _default_reply(self, request):
        """Success in this provider's shape: chat (streamed if asked), embeddings, or the model list."""
        path = request.path.split("?", 1)[0].rstrip("/")
        body = request.body if isinstance(request.body, dict) else {}
        if request.method == "GET" and path.endswith(("/models", "/models/search", self._catalog_tail)):
            return models_reply(self.provider)
        if path.endswith("/embeddings"):
            inputs = body.get("input")
            batch = isinstance(inputs, list) and inputs and not isinstance(inputs[0], int)
            return embeddings_ok(count=len(inputs) if batch else 1, model=body.get("model") or "fake-embed")
        if path.endswith("/chat/completions"):
            model = body.get("model") or "fake-model"
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return chat_stream(model=model, include_usage=usage, provider=self.provider)
            return chat_ok(model=model)
        return Reply(404, None, {"error": {"message": f"Not found: {request.method} {path}", "code": 404}})
