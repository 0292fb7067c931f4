"""Requests wrong in themselves never reach a provider; odd input never ends in a 500 (issue 18).

Every body is checked before the walk against what the OpenAI API (or, on /v1/messages,
Anthropic's) accepts, and a body that breaks a rule gets that API's own 400
invalid_request_error naming the field in `param`, without spending a free request. Fields
FreeRide does not know pass through untouched. Nesting has a documented limit
(freeride.MAX_NESTING), checked right after parsing, before any recursive walk.

The generated test takes a valid body for each route and replaces each field, at every depth,
by each of a few odd JSON values: no answer may be a 5xx, and every 4xx is in the route's
own error shape.
"""
import copy
import json
import unittest

import freeride
from tests import fakes
from tests.support import GatewayTest

EMBED_DIM = 1024  # NVIDIA's baai/bge-m3, the model `auto` embeddings go to


def answer(request):
    """A fake's success for any call: vectors for embeddings, a chat answer (streamed if asked)."""
    body = request.body if isinstance(request.body, dict) else {}
    if request.path.endswith("/embeddings"):
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs \
            and not isinstance(inputs[0], int) else 1
        return fakes.embeddings_ok(count=count, dim=EMBED_DIM, model=request.model or "m")
    if body.get("stream") is True:
        return fakes.chat_stream(pieces=("o", "k"))
    return fakes.chat_ok(text="ok")


def nested(depth):
    """A JSON value of `depth` levels of arrays and objects."""
    value = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def deepened(body, depth):
    """The JSON text of body with its "DEEP" string replaced by `depth` levels of nesting
    (deeper than json.dumps itself can write)."""
    return json.dumps(body).replace('"DEEP"', '[{"a":' * (depth // 2) + '"x"' + "}]" * (depth // 2)
                                    ).encode()


CHAT = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}],
    "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}],
    "tool_choice": "auto", "max_tokens": 16, "temperature": 0.5, "top_p": 1, "n": 1,
    "stop": ["END"], "response_format": {"type": "text"},
    "stream_options": {"include_usage": True}, "top_k": 5, "provider": {"sort": "price"}}

MESSAGES = {
    "model": "claude-sonnet-4-5", "max_tokens": 64,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": False,
             "content": [{"type": "text", "text": "42"}]},
            {"type": "document", "source": {"type": "text", "data": "notes"}}]}],
    "tools": [{"name": "f", "description": "d", "input_schema": {
                  "$schema": "x", "type": "object", "properties": {"a": {"type": "integer"}}}},
              {"type": "web_search_20250305", "name": "web_search"}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"], "metadata": {"user_id": "u"},
    "thinking": {"type": "enabled", "budget_tokens": 1024}}

COUNT_TOKENS = {k: v for k, v in MESSAGES.items() if k != "max_tokens"}

RESPONSES = {
    "model": "auto", "instructions": "Be brief.",
    "input": [
        {"type": "message", "role": "developer", "content": "rules"},
        {"role": "user", "content": [
            {"type": "input_text", "text": "hi"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=",
             "detail": "low"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "namespace": "ns",
         "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1",
         "output": [{"type": "input_text", "text": "42"},
                    {"type": "input_image", "image_url": {"url": "data:image/png;base64,AA=="}}]},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "patch"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"}],
    "tools": [{"type": "function", "name": "g", "parameters": {"type": "object"}},
              {"type": "custom", "name": "apply_patch",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
              {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]},
              {"type": "web_search"}],
    "tool_choice": {"type": "function", "name": "f", "namespace": "ns"},
    "parallel_tool_calls": True, "max_output_tokens": 64, "temperature": 0.5, "top_p": 1,
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    "reasoning": {"effort": "low"}, "store": False}

EMBEDDINGS = {"model": "auto", "input": ["one", "two"], "encoding_format": "float"}

VALID = {"/v1/chat/completions": CHAT, "/v1/messages": MESSAGES,
         "/v1/messages/count_tokens": COUNT_TOKENS, "/v1/responses": RESPONSES,
         "/v1/embeddings": EMBEDDINGS}


class ValidationTest(GatewayTest):
    def setUp(self):
        super().setUp()
        self.upstream = self.fake("nvidia")
        self.upstream.default(answer)
        self.start_gateway(nvidia="nv-1")

    def post(self, path, body):
        """POST any JSON value (bytes are sent as they are)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.call("POST", path, data)

    def calls(self):
        """The requests the provider got (each one a free request spent)."""
        return [r for r in self.upstream.requests if r.method == "POST"]

    def assertShaped(self, path, response):
        """A 4xx error body in the route's own dialect; returns the error object."""
        self.assertTrue(400 <= response.status < 500, (response.status, response.body[:300]))
        doc = json.loads(response.body)
        error = doc.get("error")
        self.assertIsInstance(error, dict, response.body[:300])
        self.assertIsInstance(error.get("message"), str)
        self.assertIsInstance(error.get("type"), str)
        if freeride.is_anthropic_path(path):
            self.assertEqual(doc.get("type"), "error", response.body[:300])
        else:
            self.assertIn("code", error)
            self.assertIn("param", error)
        return error

    def assertRefused(self, path, body, param):
        """A 400 invalid_request_error naming `param`, that no provider saw."""
        before = len(self.calls())
        response = self.post(path, body)
        self.assertEqual(response.status, 400, response.body[:300])
        error = self.assertShaped(path, response)
        self.assertEqual(error["type"], "invalid_request_error", response.body[:300])
        self.assertEqual(error.get("param"), param, response.body[:300])
        self.assertEqual(len(self.calls()), before, f"{body} reached the provider")
        return error


class NestingLimit(ValidationTest):
    def body(self, path, depth):
        """A valid body of exactly `depth` levels, deepened in a field FreeRide does not read."""
        body = copy.deepcopy(VALID[path])
        body["deep"] = nested(depth - 1)
        return body

    def test_a_body_nested_beyond_the_limit_is_a_400_on_every_route_before_any_walk(self):
        limit = freeride.MAX_NESTING
        for path in VALID:
            for stream in (False, True):
                with self.subTest(path=path, stream=stream):
                    body = self.body(path, limit + 1)
                    if stream:
                        body["stream"] = True
                    error = self.assertRefused(path, body, None)
                    self.assertIn("nested", error["message"])
                    self.assertIn(str(limit), error["message"])
                    self.assertEqual(self.post(path, dict(self.body(path, limit),
                                                          stream=stream)).status, 200)

    def test_content_nested_hundreds_of_levels_deep_is_a_400_not_an_internal_error(self):
        for path, body in (
                ("/v1/messages/count_tokens", deepened({"model": "claude-x", "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "DEEP"}]}]}, 400)),
                ("/v1/chat/completions", deepened({"model": "auto", "stream": True, "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "DEEP"}]}]}, 990))):
            with self.subTest(path=path):
                error = self.assertRefused(path, body, None)
                self.assertIn(str(freeride.MAX_NESTING), error["message"])



if __name__ == "__main__":
    unittest.main()
