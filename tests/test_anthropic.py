"""The Anthropic Messages API (Claude Code) over the one walk: requests translated into chat
completions, answers and streams translated back, errors in Anthropic's shape, and failover
exactly as on chat completions."""
import http.client
import json
import unittest
from unittest import mock

import freeride
import providers
from tests import fakes
from tests.fakes import models_ok
from tests.sse import (chunk, delta_stream, encode, fixture, named_events, tool_delta,
                       usage)
from tests.support import GatewayTest

GROQ_DEFAULT = providers.REGISTRY["groq"].models[0].id
DEEPSEEK = "deepseek/deepseek-chat-v3-0324:free"  # a tool model a test's catalog lists


def translate(**body):
    payload, dropped = freeride.anthropic_to_chat({"model": "claude-x", "max_tokens": 10, **body})
    return payload


def names(events):
    return [name for name, _ in events]


class RequestTranslation(unittest.TestCase):
    def test_system_string_or_text_blocks_become_the_first_system_message(self):
        for system in ("Be brief.", [{"type": "text", "text": "Be"},
                                     {"type": "text", "text": "brief.",
                                      "cache_control": {"type": "ephemeral"}}]):
            with self.subTest(system=system):
                payload = translate(system=system, messages=[{"role": "user", "content": "hi"}])
                self.assertEqual(payload["messages"][0]["role"], "system")
                self.assertIn("brief.", payload["messages"][0]["content"])
                self.assertEqual(payload["messages"][1], {"role": "user", "content": "hi"})

    def test_a_system_role_inside_messages_stays_in_place(self):
        payload = translate(messages=[{"role": "user", "content": "one"},
                                      {"role": "assistant", "content": "two"},
                                      {"role": "system", "content": [{"type": "text",
                                                                      "text": "reminder"}]},
                                      {"role": "user", "content": "three"}])
        self.assertEqual([(m["role"], m["content"]) for m in payload["messages"]],
                         [("user", "one"), ("assistant", "two"), ("system", "reminder"),
                          ("user", "three")])

    def test_multi_turn_text_blocks_are_joined_into_plain_content(self):
        payload = translate(messages=[
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
            {"role": "user", "content": "d"}])
        self.assertEqual(payload["messages"], [{"role": "user", "content": "a\nb"},
                                               {"role": "assistant", "content": "c"},
                                               {"role": "user", "content": "d"}])

    def test_tool_use_and_tool_result_become_tool_calls_and_tool_messages(self):
        payload = translate(messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                 "content": [{"type": "text", "text": "no clock"}]},
                {"type": "text", "text": "and tomorrow?"}]}])
        assistant, first, second, user = payload["messages"][1:]
        self.assertEqual(assistant["role"], "assistant")
        self.assertEqual(assistant["content"], "Looking.", "thinking blocks are not sent on")
        self.assertEqual([(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                          for c in assistant["tool_calls"]],
                         [("toolu_1", "function", "get_weather", {"city": "Paris"}),
                          ("toolu_2", "function", "get_time", {})])
        self.assertEqual(first, {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"})
        self.assertEqual(second, {"role": "tool", "tool_call_id": "toolu_2",
                                  "content": "Error: no clock"})
        self.assertEqual(user, {"role": "user", "content": "and tomorrow?"})

    def test_an_assistant_turn_of_tool_calls_only_has_null_content(self):
        payload = translate(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]}])
        self.assertIsNone(payload["messages"][1]["content"])

    def test_images_become_image_url_parts_and_tool_result_images_follow_the_results(self):
        png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
        payload = translate(messages=[
            {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image", "source": png},
                                         {"type": "image", "source": {"type": "url",
                                                                      "url": "https://x/y.jpg"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read",
                                               "input": {"file_path": "/a.png"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "an image"}, {"type": "image", "source": png}]}]}])
        first = payload["messages"][0]["content"]
        self.assertEqual(first, [{"type": "text", "text": "what is this?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                 {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}}])
        tool, after = payload["messages"][2:]
        self.assertEqual(tool, {"role": "tool", "tool_call_id": "t1", "content": "an image"})
        self.assertEqual(after["role"], "user")
        self.assertEqual(after["content"][0]["type"], "image_url")
        self.assertTrue(freeride._has_images(payload["messages"]))

    def test_tools_and_tool_choice(self):
        tools = [{"name": "Read", "description": "Reads a file.", "input_schema": {
                     "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                     "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}},
                 {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
        payload, dropped = freeride.anthropic_to_chat({"messages": [{"role": "user", "content": "x"}],
                                                       "tools": tools})
        self.assertEqual(payload["tools"], [{"type": "function", "function": {
            "name": "Read", "description": "Reads a file.",
            "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}},
                           "required": ["file_path"]}}}])
        self.assertEqual(dropped, ["web_search_20250305"])
        self.assertNotIn("tool_choice", payload)
        for choice, expected in (({"type": "auto"}, "auto"), ({"type": "any"}, "required"),
                                 ({"type": "none"}, "none"),
                                 ({"type": "tool", "name": "Read"},
                                  {"type": "function", "function": {"name": "Read"}})):
            with self.subTest(choice=choice):
                payload = translate(messages=[{"role": "user", "content": "x"}], tools=tools,
                                    tool_choice=choice)
                self.assertEqual(payload["tool_choice"], expected)
                self.assertNotIn("parallel_tool_calls", payload)
        payload = translate(messages=[{"role": "user", "content": "x"}], tools=tools,
                            tool_choice={"type": "auto", "disable_parallel_tool_use": True})
        self.assertIs(payload["parallel_tool_calls"], False)

    def test_sampling_fields_are_sent_on_and_claude_only_fields_are_dropped(self):
        payload = translate(messages=[{"role": "user", "content": "x"}], temperature=0.3,
                            top_p=0.9, top_k=40, stop_sequences=["END"], stream=True,
                            thinking={"type": "enabled", "budget_tokens": 1024},
                            metadata={"user_id": "u"}, output_config={"effort": "low"},
                            context_management={"edits": []})
        self.assertEqual(set(payload), {"messages", "stream", "max_tokens", "temperature", "top_p",
                                        "stop"})
        self.assertEqual((payload["max_tokens"], payload["temperature"], payload["top_p"],
                          payload["stop"], payload["stream"]), (10, 0.3, 0.9, ["END"], True))

    def test_malformed_requests_are_400_naming_the_field(self):
        for body, param in (({}, "messages"), ({"messages": []}, "messages"),
                            ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
                            ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
                            ({"messages": [{"role": "user", "content": "x"}], "system": 3}, "system"),
                            ({"messages": [{"role": "user", "content": "x"}], "tools": [{}]}, "tools")):
            with self.subTest(body=body):
                with self.assertRaises(freeride.HTTPError) as caught:
                    freeride.anthropic_to_chat(body)
                self.assertEqual(caught.exception.status, 400)
                self.assertEqual(caught.exception.extra["param"], param)


def completion(message, finish="stop", prompt=11, completion_tokens=5):
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage(prompt, completion_tokens)}


class AnswerTranslation(unittest.TestCase):
    def test_a_text_answer_is_a_message_with_a_text_block(self):
        message = freeride.chat_to_anthropic(completion({"role": "assistant", "content": "Hi!"}),
                                             "groq-model")
        self.assertEqual((message["type"], message["role"], message["model"]),
                         ("message", "assistant", "groq-model"))
        self.assertTrue(message["id"].startswith("msg_"))
        self.assertEqual(message["content"], [{"type": "text", "text": "Hi!"}])
        self.assertEqual((message["stop_reason"], message["stop_sequence"]), ("end_turn", None))
        self.assertEqual((message["usage"]["input_tokens"], message["usage"]["output_tokens"]),
                         (11, 5))

    def test_tool_calls_become_tool_use_blocks_after_the_text(self):
        message = freeride.chat_to_anthropic(completion({
            "role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]},
            "tool_calls"), "m")
        self.assertEqual(message["content"], [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}])
        self.assertEqual(message["stop_reason"], "tool_use")

    def test_stop_reasons(self):
        call = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
        for message, finish, expected in (
                ({"role": "assistant", "content": "x"}, "stop", "end_turn"),
                ({"role": "assistant", "content": "x"}, "length", "max_tokens"),
                ({"role": "assistant", "content": "x"}, "content_filter", "refusal"),
                (call, "tool_calls", "tool_use"),
                (call, "stop", "tool_use"),  # some providers finish a tool call with "stop"
                ({"role": "assistant", "content": "x"}, None, "end_turn")):
            with self.subTest(finish=finish):
                answer = freeride.chat_to_anthropic(completion(message, finish), "m")
                self.assertEqual(answer["stop_reason"], expected)

    def test_broken_tool_arguments_are_kept_for_the_agent_to_see(self):
        message = freeride.chat_to_anthropic(completion({"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}]},
            "tool_calls"), "m")
        self.assertEqual(message["content"], [{"type": "tool_use", "id": "c", "name": "f",
                                               "input": {"_unparsed_arguments": "{\"a\": "}}])


class StreamTranslation(unittest.TestCase):
    def test_a_text_stream(self):
        events = encode(freeride.AnthropicEncoder(42),
                        delta_stream({"content": "Hel"}, {"content": "lo"}, usage=usage(7, 2)),
                        model="groq-model")
        self.assertEqual(names(events), [
            "message_start", "ping", "content_block_start", "content_block_delta",
            "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
        self.assertTrue(all(data["type"] == name for name, data in events))
        start = events[0][1]["message"]
        self.assertEqual((start["role"], start["model"], start["content"], start["stop_reason"]),
                         ("assistant", "groq-model", [], None))
        self.assertEqual(start["usage"]["input_tokens"], 42, "the estimate, until upstream counts")
        self.assertEqual(events[2][1], {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})
        self.assertEqual([d["delta"] for _, d in events[3:5]],
                         [{"type": "text_delta", "text": "Hel"}, {"type": "text_delta", "text": "lo"}])
        self.assertEqual(events[5][1], {"type": "content_block_stop", "index": 0})
        self.assertEqual(events[6][1]["delta"], {"stop_reason": "end_turn", "stop_sequence": None})
        self.assertEqual(events[6][1]["usage"], {"input_tokens": 7, "output_tokens": 2})

    def test_a_tool_call_whose_arguments_arrive_in_several_deltas(self):
        events = encode(freeride.AnthropicEncoder(1), delta_stream(
            tool_delta(0, "", "call_9", "get_weather"), tool_delta(0, "{\"ci"),
            tool_delta(0, "ty\": \"Par"), tool_delta(0, "is\"}"), finish="tool_calls"))
        self.assertEqual(names(events), [
            "message_start", "ping", "content_block_start", "content_block_delta",
            "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
            "message_stop"])
        self.assertEqual(events[2][1]["content_block"],
                         {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {}})
        pieces = [d["delta"] for n, d in events if n == "content_block_delta"]
        self.assertTrue(all(p["type"] == "input_json_delta" for p in pieces))
        self.assertEqual(json.loads("".join(p["partial_json"] for p in pieces)), {"city": "Paris"})
        self.assertEqual(events[-2][1]["delta"]["stop_reason"], "tool_use")

    def test_text_then_two_tool_calls_are_three_blocks_with_their_own_indexes(self):
        events = encode(freeride.AnthropicEncoder(1), delta_stream(
            {"content": "Let me check."},
            tool_delta(0, "{\"city\":", "call_a", "get_weather"), tool_delta(0, "\"Oslo\"}"),
            tool_delta(1, "{}", "call_b", "get_time"), finish="tool_calls"))
        starts = [d for n, d in events if n == "content_block_start"]
        self.assertEqual([(s["index"], s["content_block"]["type"]) for s in starts],
                         [(0, "text"), (1, "tool_use"), (2, "tool_use")])
        self.assertEqual([s["content_block"].get("id") for s in starts], [None, "call_a", "call_b"])
        stops = [d["index"] for n, d in events if n == "content_block_stop"]
        self.assertEqual(stops, [0, 1, 2])
        order = [(n, d.get("index")) for n, d in events if n.startswith("content_block")]
        self.assertEqual(order, [("content_block_start", 0), ("content_block_delta", 0),
                                 ("content_block_stop", 0), ("content_block_start", 1),
                                 ("content_block_delta", 1), ("content_block_delta", 1),
                                 ("content_block_stop", 1), ("content_block_start", 2),
                                 ("content_block_delta", 2), ("content_block_stop", 2)])

    def test_a_cut_by_the_token_limit_is_max_tokens_and_usage_is_estimated_when_not_given(self):
        events = encode(freeride.AnthropicEncoder(5), delta_stream({"content": "abcdefgh"},
                                                                   finish="length"))
        delta = events[-2][1]
        self.assertEqual(delta["delta"]["stop_reason"], "max_tokens")
        self.assertEqual(delta["usage"], {"input_tokens": 5, "output_tokens": 2})

    def test_keep_alive_comments_and_reasoning_deltas_emit_nothing(self):
        encoder = freeride.AnthropicEncoder(1)
        for raw in (b": OPENROUTER PROCESSING", chunk({"reasoning_content": "hmm"}).encode()):
            self.assertEqual(encoder.chunk(freeride.read_event(raw)), [])

    def test_malformed_upstream_chunks_do_not_break_the_stream(self):
        reply = fakes.Reply(events=[
            'data: {"choices": [{"delta": {"tool_calls": [{"index": [1], "id": 5, "function": '
            '{"name": ["x"], "arguments": 7}}]}, "finish_reason": ["stop"]}]}',
            'data: {"choices": "nope", "usage": "x"}', "data: [1, 2]",
            'data: {"choices": [null, 3]}', chunk({"content": "ok", "tool_calls": "zz"}),
            chunk({"tool_calls": 5}),
            "data: [DONE]"])
        events = encode(freeride.AnthropicEncoder(1), reply)
        self.assertEqual(names(events)[-2:], ["message_delta", "message_stop"])
        self.assertIn({"type": "text_delta", "text": "ok"},
                      [d["delta"] for n, d in events if n == "content_block_delta"])

    def test_an_error_is_an_anthropic_error_event(self):
        [raw] = freeride.AnthropicEncoder(1).error("groq: the stream was cut")
        [(name, data)] = named_events(raw + b"\n\n")
        self.assertEqual(name, "error")
        self.assertEqual(data, {"type": "error", "error": {"type": "api_error",
                                                           "message": "groq: the stream was cut"}})


READ = {"name": "Read", "description": "Reads a file.",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}


def message(text="hello", **extra):
    return {"model": "claude-sonnet-4-5-20250929", "max_tokens": 1024,
            "messages": [{"role": "user", "content": text}], **extra}


class MessagesRoute(GatewayTest):
    def post(self, body, headers=None, path="/v1/messages?beta=true"):
        return self.call("POST", path, body, {"anthropic-version": "2023-06-01",
                                              "anthropic-beta": "claude-code-20250219",
                                              **(headers or {})})

    def assertAnthropicError(self, response, status, kind):
        self.assertEqual(response.status, status)
        doc = response.json()
        self.assertEqual(doc["type"], "error")
        self.assertEqual(doc["error"]["type"], kind)
        self.assertIsInstance(doc["error"]["message"], str)
        return doc["error"]

    def test_head_and_get_of_the_root_answer_200(self):
        self.start_gateway()
        self.assertEqual(self.call("HEAD", "/").status, 200)
        response = self.call("GET", "/")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.json()["status"], "ok")

    def test_a_plain_answer(self):
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        response = self.post(message(system="Be brief.", temperature=0.5))
        self.assertEqual(response.status, 200)
        doc = response.json()
        # The fake's default stream (a plain request goes upstream streamed and is assembled).
        self.assertEqual(doc["content"], [{"type": "text", "text": "Hello"}])
        self.assertEqual((doc["stop_reason"], doc["model"]), ("end_turn", GROQ_DEFAULT))
        self.assertEqual(doc["usage"]["input_tokens"], 7)
        self.assertEqual(doc["_freeride_provider"], "groq")
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        sent = groq.requests[0]
        self.assertTrue(sent.path.endswith("/chat/completions"))
        self.assertEqual(sent.body["messages"], [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "hello"}])
        self.assertEqual((sent.body["max_tokens"], sent.body["temperature"]), (1024, 0.5))
        self.assertEqual(sent.key, "gsk-1", "the provider's key, never the client's")

    def test_a_streamed_answer_is_anthropic_events_without_done(self):
        self.fake("groq").on(delta_stream({"content": "Hel"}, {"content": "lo"}, usage=usage(7, 2)))
        self.start_gateway(groq="gsk-1")
        response = self.post(message(stream=True))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Content-Type"], "text/event-stream")
        self.assertNotIn(b"[DONE]", response.body)
        events = named_events(response.body)
        self.assertEqual(names(events)[0], "message_start")
        self.assertEqual(names(events)[-2:], ["message_delta", "message_stop"])
        self.assertEqual("".join(d["delta"]["text"] for n, d in events if n == "content_block_delta"),
                         "Hello")
        self.assertEqual(events[-2][1]["usage"]["output_tokens"], 2)
        asked = self.fakes["groq"].requests[0].body
        self.assertIs(asked["stream"], True)
        self.assertEqual(asked["stream_options"], {"include_usage": True})

    def test_claude_names_go_to_the_best_free_tool_model_and_freeride_claude_model_overrides(self):
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        for model in ("claude-opus-4-1-20250805", "claude-3-5-haiku-20241022"):
            self.assertEqual(self.post(dict(message(), model=model)).status, 200)
        self.assertEqual(self.post(dict(message(), model="llama-3.1-8b-instant")).status, 200)
        self.assertEqual([r.model for r in groq.requests],
                         [GROQ_DEFAULT, GROQ_DEFAULT, "llama-3.1-8b-instant"])
        self.start_gateway({"FREERIDE_CLAUDE_MODEL": "llama-3.1-8b"}, groq="gsk-1")
        self.assertEqual(self.post(message()).status, 200)
        self.assertEqual(groq.requests[-1].model, "llama-3.1-8b-instant")

    def test_requests_with_tools_go_only_to_tool_models(self):
        # Cloudflare comes first and spells the deepseek family with a model that calls no
        # tools; OpenRouter's live catalog has a deepseek that does.
        cloudflare, openrouter = self.fake("cloudflare"), self.fake("openrouter")
        openrouter.on(models_ok("openrouter", ["openrouter/free", DEEPSEEK]), path="/models",
                      times=None)
        self.start_gateway(cloudflare="cf-1", openrouter="or-1")
        plain = self.post(dict(message(), model="deepseek"))
        self.assertEqual((plain.status, plain.json()["_freeride_provider"]), (200, "cloudflare"))
        self.assertEqual([r.model for r in cloudflare.requests],
                         ["@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"])
        with_tools = self.post(dict(message(), model="deepseek", tools=[READ]))
        self.assertEqual(with_tools.status, 200)
        self.assertEqual(with_tools.json()["_freeride_provider"], "openrouter")
        self.assertEqual(len(cloudflare.requests), 1, "the tool-less model was not asked")
        [asked] = openrouter.requests
        self.assertEqual(asked.model, DEEPSEEK)
        self.assertEqual([t["function"]["name"] for t in asked.body["tools"]], ["Read"])

        self.start_gateway({"FREERIDE_CLAUDE_MODEL": "deepseek"}, cloudflare="cf-1", openrouter="or-1")
        self.assertEqual(self.post(dict(message(), tools=[READ])).status, 200)
        self.assertEqual([r.model for r in openrouter.requests][-1], DEEPSEEK)
        self.assertEqual(cloudflare.requests, [], "a claude- name with tools skips it too")

    def test_claude_names_get_a_tool_model_even_when_the_request_has_none(self):
        # No shipped table puts a tool-less model first, so this test's Cloudflare does: `auto`
        # without tools gets it, a claude- name never does.
        cls = providers.REGISTRY["cloudflare"]
        gemma = next(m for m in cls.models if not m.tools)
        with mock.patch.object(cls, "models", (gemma, *(m for m in cls.models if m != gemma))):
            self.start_gateway(cloudflare="cf-1")
        cloudflare = self.fakes["cloudflare"]
        self.assertEqual(self.post(dict(message(), model="auto")).status, 200)
        for model in ("claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"):
            self.assertEqual(self.post(dict(message(), model=model)).status, 200)
        self.assertEqual(self.post(dict(message(), tools=[READ])).status, 200)
        best = next(m.id for m in cls.models if m.tools)
        self.assertEqual([r.model for r in cloudflare.requests], [gemma.id, best, best, best])

    def test_requests_with_images_go_only_to_vision_models(self):
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}}
        response = self.post(dict(message(), messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is it?"}, image]}]))
        self.assertEqual(response.status, 200)
        self.assertEqual(groq.requests[0].model,
                         next(m.id for m in providers.REGISTRY["groq"].models if m.vision))

    def test_the_client_key_may_come_as_x_api_key_or_bearer(self):
        self.fake("groq")
        self.start_gateway({"FREERIDE_API_KEY": "local-key"}, groq="gsk-1")
        for headers in ({"x-api-key": "local-key"}, {"Authorization": "Bearer local-key"}):
            with self.subTest(headers=headers):
                self.assertEqual(self.post(message(), headers).status, 200)
        error = self.assertAnthropicError(self.post(message(), {"x-api-key": "wrong"}), 401,
                                          "authentication_error")
        self.assertNotIn("local-key", error["message"])

    def test_malformed_requests_get_anthropic_shaped_400s(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        for body in (b"{not json", {"messages": [{"role": "user", "content": "x"}]},
                     dict(message(), messages=[]), dict(message(), stream="yes")):
            with self.subTest(body=body):
                self.assertAnthropicError(self.post(body), 400, "invalid_request_error")
        self.assertAnthropicError(self.call("GET", "/v1/messages"), 405, "invalid_request_error")
        self.assertEqual(self.fakes["groq"].requests, [])

    def test_no_provider_configured_is_an_anthropic_503(self):
        self.start_gateway()
        error = self.assertAnthropicError(self.post(message()), 503, "overloaded_error")
        self.assertIn("GROQ_API_KEY", error["message"])

    def test_every_provider_rate_limited_is_an_anthropic_429_with_retry_after(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=40), times=None)
        groq.on(fakes.error("groq", "rate_tpm", retry_after=9), times=None)
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        for stream in (False, True):
            with self.subTest(stream=stream):
                response = self.post(message(stream=stream))
                error = self.assertAnthropicError(response, 429, "rate_limit_error")
                self.assertEqual(response.headers["Retry-After"], "9")
                self.assertEqual([a["provider"] for a in error["attempts"]], ["openrouter", "groq"])

    def test_a_providers_client_error_comes_back_as_invalid_request_error(self):
        groq = self.fake("groq")
        groq.on(fakes.error("groq", "tool_use_failed"))
        self.start_gateway(groq="gsk-1")
        error = self.assertAnthropicError(self.post(message()), 400, "invalid_request_error")
        self.assertIn("Failed to call a function", error["message"])

    def test_count_tokens_is_an_estimate_that_grows_with_the_request(self):
        self.start_gateway()  # no provider is needed, or asked
        small = self.post(message("hi"), path="/v1/messages/count_tokens?beta=true")
        large = self.post(dict(message("hi " * 400), system="You are terse.", tools=[
            {"name": "Read", "input_schema": {"type": "object"}}]),
            path="/v1/messages/count_tokens")
        self.assertEqual((small.status, large.status), (200, 200))
        self.assertEqual(set(small.json()), {"input_tokens"})
        self.assertGreater(large.json()["input_tokens"], small.json()["input_tokens"] + 250)
        self.assertAnthropicError(self.post({"model": "claude-x"}, path="/v1/messages/count_tokens"),
                                  400, "invalid_request_error")


class MessagesFailover(GatewayTest):
    """Under /v1/messages, exactly as under chat completions."""

    def setUp(self):
        super().setUp()
        self.openrouter, self.groq = self.fake("openrouter"), self.fake("groq")
        self.groq.default(delta_stream({"content": "from "}, {"content": "groq"}, model="groq-model"))

    def stream(self):
        response = self.call("POST", "/v1/messages", message(stream=True))
        self.assertEqual(response.status, 200)
        return response, named_events(response.body)

    def outcomes(self):
        """The outcome logged for each stream."""
        return [r["outcome"] for r in self.logged("complete", "interrupted")]

    def test_a_429_before_the_first_content_is_invisible(self):
        self.openrouter.on(fakes.error("openrouter", "rate_minute"))
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response, events = self.stream()
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        self.assertEqual(names(events).count("message_start"), 1)
        self.assertNotIn("error", names(events))
        self.assertEqual(names(events)[-1], "message_stop")
        text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
        self.assertEqual(text, "from groq")
        self.assertEqual(len(self.openrouter.requests), 1)
        self.assertEqual([r["class"] for r in self.cooldown_file()], ["RATE_LIMIT"])

    def test_reasoning_the_client_never_sees_does_not_pin_the_stream(self):
        # Thinking deltas are dropped on this route, so a cut right after them has shown the
        # client nothing: it fails over unseen (on chat completions they are relayed, so
        # there the same cut ends the stream with an error event).
        reply = delta_stream({"reasoning_content": "hmm"}, {"reasoning_content": "..."},
                             {"content": "never"})
        reply.cut_after = 3  # role, and the two reasoning deltas
        self.openrouter.on(reply)
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response, events = self.stream()
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        self.assertNotIn("error", names(events))
        text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
        self.assertEqual(text, "from groq")
        self.assertEqual(len(self.openrouter.requests), 1)

    def test_a_plain_request_fails_over_too(self):
        self.openrouter.on(fakes.error("openrouter", "daily_cap"))
        self.groq.default(fakes.chat_ok("served by groq"))
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response = self.call("POST", "/v1/messages", message())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.json()["content"][0]["text"], "served by groq")

    def test_a_cut_after_content_ends_with_an_anthropic_error_event(self):
        reply = delta_stream({"content": "Hel"}, {"content": "lo"}, {"content": " there"})
        reply.cut_after = 3  # role, "Hel", "lo"
        self.openrouter.on(reply)
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response, events = self.stream()
        self.assertEqual(response.headers["X-FreeRide-Provider"], "openrouter")
        text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
        self.assertEqual(text, "Hello")
        name, data = events[-1]
        self.assertEqual(name, "error")
        self.assertEqual(data["type"], "error")
        self.assertEqual(data["error"]["type"], "api_error")
        self.assertIn("openrouter", data["error"]["message"])
        self.assertNotIn("message_stop", names(events), "never a clean-looking finish")
        self.assertEqual(self.groq.requests, [], "no failover once content was sent")
        self.assertEqual(self.outcomes(), ["cut"])

    def test_an_error_event_after_content_ends_with_an_anthropic_error_event(self):
        events = delta_stream({"content": "Hel"}).events[:2]
        self.openrouter.on(fakes.Reply(events=events + [fakes.stream_error_event("openrouter"),
                                                        "data: [DONE]"]))
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        _, events = self.stream()
        self.assertEqual(names(events)[-1], "error")
        self.assertIn("Provider disconnected", events[-1][1]["error"]["message"])
        self.assertEqual(self.groq.requests, [])

    def test_a_client_leaving_closes_the_upstream(self):
        self.openrouter.on(fakes.chat_stream(pieces=[f"w{i} " for i in range(200)], event_delay=0.05))
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        connection = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
        connection.request("POST", "/v1/messages", json.dumps(message(stream=True)),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        while b"w0 " not in response.readline():
            pass
        connection.close()
        self.assertTrue(self.openrouter.disconnected.wait(5), "the upstream was not closed")


class RecordedClaudeCode(GatewayTest):
    def test_a_recorded_claude_code_request_is_served_and_its_answer_parses(self):
        groq = self.fake("groq")
        groq.on(delta_stream({"content": "The total adds one. "},
                             tool_delta(0, "{\"file_path\": ", "call_e1", "Edit"),
                             tool_delta(0, "\"/home/dev/shop/shop/cart.py\", \"old_string\": \"+ 1\", "),
                             tool_delta(0, "\"new_string\": \"\"}"),
                             finish="tool_calls", usage=usage(900, 40)))
        self.start_gateway(groq="gsk-1")
        response = self.call("POST", "/v1/messages?beta=true", fixture("claude_code_request.json"),
                             {"x-api-key": "sk-ant-any", "anthropic-version": "2023-06-01",
                              "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"})
        self.assertEqual(response.status, 200)

        sent = groq.requests[0].body
        self.assertEqual(sent["model"], GROQ_DEFAULT)
        roles = [m["role"] for m in sent["messages"]]
        self.assertEqual(roles, ["system", "user", "assistant", "tool", "assistant", "tool",
                                 "system", "user"])
        self.assertTrue(sent["messages"][0]["content"].startswith("You are Claude Code"))
        self.assertEqual(sent["messages"][2]["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9")
        self.assertEqual(sent["messages"][3]["tool_call_id"], "toolu_01A09q90qw90lq917835lq9")
        self.assertTrue(sent["messages"][5]["content"].startswith("Error: E   assert 6 == 5"))
        self.assertEqual([t["function"]["name"] for t in sent["tools"]], ["Read", "Bash", "Edit"])
        self.assertNotIn("$schema", sent["tools"][0]["function"]["parameters"])
        self.assertEqual(sent["tool_choice"], "auto")
        for dropped in ("thinking", "metadata", "context_management", "output_config", "system"):
            self.assertNotIn(dropped, sent)
        self.assertNotIn("signature", json.dumps(sent))

        events = named_events(response.body)
        self.assertEqual(names(events)[0], "message_start")
        self.assertEqual(names(events)[-1], "message_stop")
        blocks = {}
        for name, data in events:
            if name == "content_block_start":
                blocks[data["index"]] = dict(data["content_block"], json="")
            elif name == "content_block_delta" and data["delta"]["type"] == "text_delta":
                blocks[data["index"]]["text"] += data["delta"]["text"]
            elif name == "content_block_delta":
                blocks[data["index"]]["json"] += data["delta"]["partial_json"]
        self.assertEqual(blocks[0]["text"], "The total adds one. ")
        self.assertEqual((blocks[1]["type"], blocks[1]["id"], blocks[1]["name"]),
                         ("tool_use", "call_e1", "Edit"))
        self.assertEqual(json.loads(blocks[1]["json"])["new_string"], "")
        final = events[-2][1]
        self.assertEqual(final["delta"]["stop_reason"], "tool_use")
        self.assertEqual(final["usage"], {"input_tokens": 900, "output_tokens": 40})
        dropped = [r for r in self.events() if r["event"] == "dropped"]
        self.assertEqual([r["tools"] for r in dropped], [["web_search_20250305"]])


if __name__ == "__main__":
    unittest.main()
