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
import concurrent.futures
import copy
import json
import unittest

import freeride
from tests import fakes
from tests.support import ROOT, GatewayTest

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

SMALL_CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
EMBEDDINGS = {"model": "auto", "input": ["one", "two"], "encoding_format": "float"}

STREAMED = ("/v1/chat/completions", "/v1/messages", "/v1/responses")
VALID = {"/v1/chat/completions": CHAT, "/v1/messages": MESSAGES,
         "/v1/messages/count_tokens": COUNT_TOKENS, "/v1/responses": RESPONSES,
         "/v1/embeddings": EMBEDDINGS}

DELETE = object()  # a replacement that removes the field
ODD = (1, "x", [], {}, None, True, [[]], {"a": {}}, nested(freeride.MAX_NESTING + 20), DELETE)
ODD_STREAMED = (1, "x", [], {}, None, DELETE)  # a stream's own code paths, fewer requests


def paths(doc, prefix=()):
    """Every place in a JSON document, the document itself included, as key/index tuples."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) \
        else ()
    for key, value in items:
        yield from paths(value, prefix + (key,))


def replaced(doc, path, value):
    """A copy of doc with the value at path replaced (or removed, for DELETE)."""
    if not path:
        return {} if value is DELETE else value
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


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


class ChatValidation(ValidationTest):
    def test_a_body_wrong_in_itself_is_a_400_naming_the_param_and_reaches_no_provider(self):
        user = {"role": "user", "content": "hi"}
        cases = [
            ({"messages": [user, {"content": "no role"}]}, "messages[1].role"),
            ({"messages": [user, {"role": 3, "content": "x"}]}, "messages[1].role"),
            ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
            ({"messages": [user, "hello"]}, "messages[1]"),
            ({"messages": [{"role": "user"}]}, "messages[0].content"),
            ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
            ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
            ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
             "messages[0].content"),
            ({"messages": [{"role": "user", "content": ["text"]}]}, "messages[0].content"),
            ({"messages": []}, "messages"),
            ({"messages": {"role": "user", "content": "x"}}, "messages"),
            ({"model": None}, "model"),
            ({"model": ["auto"]}, "model"),
            ({"stream": "yes"}, "stream"),
            ({"max_tokens": "ten"}, "max_tokens"),
            ({"max_tokens": 0}, "max_tokens"),
            ({"max_tokens": 10.5}, "max_tokens"),
            ({"max_tokens": True}, "max_tokens"),
            ({"max_completion_tokens": -1}, "max_completion_tokens"),
            ({"temperature": "hot"}, "temperature"),
            ({"temperature": 2.5}, "temperature"),
            ({"temperature": -0.1}, "temperature"),
            ({"top_p": 1.5}, "top_p"),
            ({"top_p": "all"}, "top_p"),
            ({"n": 0}, "n"),
            ({"n": "2"}, "n"),
            ({"presence_penalty": 3}, "presence_penalty"),
            ({"stop": 7}, "stop"),
            ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
            ({"stop": ["a", 1]}, "stop"),
            ({"tools": {"type": "function"}}, "tools"),
            ({"tools": ["f"]}, "tools[0]"),
            ({"tools": [{"type": "function"}]}, "tools[0].function"),
            ({"tools": [{"type": "function", "function": {"name": 1}}]},
             "tools[0].function.name"),
            ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
            ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0].custom.name"),
            ({"tool_choice": "always"}, "tool_choice"),
            ({"tool_choice": 1}, "tool_choice"),
            ({"response_format": "json"}, "response_format"),
            ({"response_format": {"type": "xml"}}, "response_format.type"),
            ({"response_format": {}}, "response_format.type"),
            ({"stream_options": True}, "stream_options"),
            ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
            ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ]
        for change, param in cases:
            with self.subTest(change=change):
                body = dict({"model": "auto", "messages": [user]}, **change)
                self.assertRefused("/v1/chat/completions", body, param)
        self.assertEqual(self.calls(), [])

    def test_every_shape_openai_accepts_is_sent_on(self):
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        accepted = [
            {"temperature": 0, "top_p": 0}, {"temperature": 2, "top_p": 1},
            {"temperature": 1}, {"max_tokens": 1, "max_completion_tokens": 4096, "n": 1},
            {"stop": "END"}, {"stop": ["a", "b", "c", "d"]}, {"stop": []},
            {"tool_choice": "none"}, {"tool_choice": "required"},
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            {"response_format": {"type": "json_object"}},
            {"stream_options": {"include_usage": False}}, {"stream_options": {}},
            {"tools": [{"type": "function", "function": {"name": "f"}}]}, {"tools": []},
            {"tools": [{"type": "custom", "custom": {"name": "apply_patch"}},
                       {"type": "browser_search"}]},  # a provider's own kind of tool
            {"messages": [{"role": "developer", "content": "rules"},
                          {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                          {"role": "assistant", "content": None, "tool_calls": [call]},
                          {"role": "tool", "tool_call_id": "c1", "content": "42"},
                          {"role": "assistant", "tool_calls": [call]},
                          {"role": "tool", "tool_call_id": "c1",
                           "content": [{"type": "text", "text": "42"}]},
                          {"role": "function", "name": "f", "content": None},
                          {"role": "user", "content": ""}]},
            {"stream": True}, {"stream": False},
        ]
        for change in accepted:
            with self.subTest(change=change):
                body = dict(SMALL_CHAT, **change)
                response = self.post("/v1/chat/completions", body)
                self.assertEqual(response.status, 200, response.body[:300])
                self.assertEqual(self.calls()[-1].body["messages"], body["messages"])

    def test_null_is_accepted_for_every_optional_field(self):
        optional = ("stream", "stream_options", "max_tokens", "max_completion_tokens",
                    "temperature", "top_p", "n", "stop", "tools", "tool_choice",
                    "response_format", "presence_penalty", "frequency_penalty",
                    "parallel_tool_calls")
        response = self.post("/v1/chat/completions",
                             dict(SMALL_CHAT, **{field: None for field in optional}))
        self.assertEqual(response.status, 200, response.body[:300])

    def test_fields_freeride_does_not_know_reach_the_provider_untouched(self):
        extra = {"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
                 "provider": {"order": ["a", "b"], "allow_fallbacks": False, "sort": None},
                 "transforms": ["middle-out"], "reasoning_effort": "low",
                 "seed": 12345678901234567890, "logit_bias": {"50256": -100},
                 "chat_template_kwargs": {"enable_thinking": False, "weights": [0.1, 1e-07]}}
        response = self.post("/v1/chat/completions", dict(SMALL_CHAT, **extra))
        self.assertEqual(response.status, 200, response.body[:300])
        sent = self.calls()[-1]
        for field, value in extra.items():
            self.assertEqual(sent.body[field], value)
            spelled = json.dumps({field: value}, separators=(",", ":"))[1:-1].encode()
            self.assertIn(spelled, sent.raw)


class EmbeddingsValidation(ValidationTest):
    def test_a_wrong_input_or_field_is_a_400_naming_it(self):
        cases = [
            ({"input": 5}, "input"), ({"input": None}, "input"), ({"input": [[]]}, "input"),
            ({"input": [{"a": {}}]}, "input"), ({"input": ["ok", 3]}, "input"),
            ({"model": 1}, "model"), ({"model": " "}, "model"),
            ({"dimensions": "many"}, "dimensions"), ({"dimensions": 0}, "dimensions"),
            ({"encoding_format": "hex"}, "encoding_format"),
        ]
        for change, param in cases:
            with self.subTest(change=change):
                self.assertRefused("/v1/embeddings", dict(EMBEDDINGS, **change), param)

    def test_a_valid_request_still_gets_its_vectors(self):
        response = self.post("/v1/embeddings", dict(EMBEDDINGS, dimensions=None, user="u"))
        self.assertEqual(response.status, 200, response.body[:300])
        self.assertEqual(len(response.json()["data"]), 2)


class AnthropicValidation(ValidationTest):
    def test_a_body_wrong_in_itself_is_an_anthropic_400_naming_the_field(self):
        base = {"model": "claude-sonnet-4-5", "max_tokens": 64,
                "messages": [{"role": "user", "content": "hi"}]}
        tool_result = {"type": "tool_result", "tool_use_id": "t", "content": 5}
        cases = [
            ({"model": 4}, "model"), ({"stream": "no"}, "stream"),
            ({"max_tokens": "ten"}, "max_tokens"), ({"max_tokens": 0}, "max_tokens"),
            ({"temperature": "hot"}, "temperature"), ({"temperature": 1.5}, "temperature"),
            ({"top_p": 2}, "top_p"), ({"top_k": "many"}, "top_k"),
            ({"stop_sequences": "END"}, "stop_sequences"),
            ({"stop_sequences": [1]}, "stop_sequences"),
            ({"tools": 1}, "tools"), ({"tools": {"name": "f"}}, "tools"),
            ({"tools": [{"input_schema": {}}]}, "tools.0.name"),
            ({"tools": [{"name": "f", "input_schema": []}]}, "tools.0.input_schema"),
            ({"tool_choice": "auto"}, "tool_choice"),
            ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
            ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
            ({"metadata": "x"}, "metadata"),
            ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content"),
            ({"messages": [{"role": "user", "content": [tool_result]}]},
             "messages.0.content.0.content"),
        ]
        for change, param in cases:
            with self.subTest(change=change):
                self.assertRefused("/v1/messages", dict(base, **change), param)

    def test_count_tokens_refuses_a_body_wrong_in_itself_in_the_anthropic_shape(self):
        base = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
        for change, param in (({"messages": "hi"}, "messages"), ({"tools": 1}, "tools"),
                              ({"system": 5}, "system")):
            with self.subTest(change=change):
                self.assertRefused("/v1/messages/count_tokens", dict(base, **change), param)
        response = self.post("/v1/messages/count_tokens", base)
        self.assertEqual(response.status, 200, response.body[:300])


class ResponsesValidation(ValidationTest):
    def test_a_body_wrong_in_itself_is_a_400_naming_the_field(self):
        base = {"model": "auto", "input": "hi"}
        call = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
        cases = [
            ({"max_output_tokens": "ten"}, "max_output_tokens"),
            ({"temperature": "hot"}, "temperature"), ({"top_p": -1}, "top_p"),
            ({"instructions": 5}, "instructions"),
            ({"tools": 1}, "tools"), ({"tools": [3]}, "tools.0"),
            ({"tools": [{"type": "namespace", "name": "ns", "tools": 1}]}, "tools.0.tools"),
            ({"tool_choice": "sometimes"}, "tool_choice"),
            ({"tool_choice": {"type": "function", "name": "f", "namespace": []}}, "tool_choice"),
            ({"parallel_tool_calls": 1}, "parallel_tool_calls"),
            ({"text": "json"}, "text"),
            ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
            ({"input": [{"role": [], "content": "x"}]}, "input.0.role"),
            ({"input": [{"role": {}, "content": "x"}]}, "input.0.role"),
            ({"input": [{"type": [], "content": "x"}]}, "input.0.type"),
            ({"input": [{"content": "x"}]}, "input.0.type"),
            ({"input": [dict(call, namespace=["ns"])]}, "input.0.namespace"),
            ({"input": [dict(call, arguments={"a": 1})]}, "input.0.arguments"),
        ]
        for change, param in cases:
            with self.subTest(change=change):
                self.assertRefused("/v1/responses", dict(base, **change), param)


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


class Documented(unittest.TestCase):
    def test_the_readme_security_section_states_the_checks_and_the_nesting_limit(self):
        readme = (ROOT / "README.md").read_text()
        section = readme.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
        for fact in ("invalid_request_error", "`param`", "`messages[1].role`", "pass through",
                     f"more than {freeride.MAX_NESTING} levels"):
            with self.subTest(fact=fact):
                self.assertIn(fact, section)


class GeneratedOddInput(ValidationTest):
    def test_every_field_at_every_depth_replaced_by_odd_json_never_gets_a_5xx(self):
        cases = [(path, "".join(f"[{k!r}]" for k in where), value,
                  replaced(dict(body, stream=True) if stream else body, where, value))
                 for path, body in VALID.items()
                 for stream in ((False, True) if path in STREAMED else (False,))
                 for where in paths(body) for value in (ODD_STREAMED if stream else ODD)]

        def run(case):
            path, where, value, body = case
            response = self.post(path, body)
            said = f"{path} with {where or 'the body'} = " \
                f"{'(removed)' if value is DELETE else json.dumps(value)[:40]}"
            if response.status >= 500:
                return f"{response.status} on {said}"
            if response.status >= 400:
                try:
                    self.assertShaped(path, response)
                except (AssertionError, ValueError) as e:
                    return f"misshaped {response.status} on {said}: {e}"
            return None

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            problems = [p for p in pool.map(run, cases) if p]
        self.assertFalse(problems, f"{len(problems)} of {len(cases)} generated requests "
                         "misbehaved:\n" + "\n".join(problems))


if __name__ == "__main__":
    unittest.main()
