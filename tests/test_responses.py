"""The OpenAI Responses API (Codex) over the one walk: stateless requests translated into chat
completions, answers and event streams translated back, and failover exactly as on chat
completions."""
import json
import unittest

import freeride
import providers
from tests import fakes
from tests.fakes import models_ok
from tests.sse import delta_stream, encode, fixture, named_events, tool_delta, usage
from tests.support import GatewayTest

GROQ_DEFAULT = providers.REGISTRY["groq"].models[0].id
DEEPSEEK = "deepseek/deepseek-chat-v3-0324:free"  # a tool model a test's catalog lists


def translate(**body):
    payload, names, dropped = freeride.responses_to_chat({"model": "gpt-5-codex", **body})
    return payload


def names_of(events):
    return [name for name, _ in events]


def user(text):
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


SHELL = {"type": "function", "name": "shell", "description": "Runs a command.", "strict": False,
         "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}}


class RequestTranslation(unittest.TestCase):
    def test_instructions_and_developer_and_system_messages_become_system_messages(self):
        payload = translate(instructions="You are Codex.", input=[
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox"}]},
            {"role": "system", "content": "be careful"},
            user("hi")])
        self.assertEqual(payload["messages"], [{"role": "system", "content": "You are Codex."},
                                               {"role": "system", "content": "sandbox"},
                                               {"role": "system", "content": "be careful"},
                                               {"role": "user", "content": "hi"}])

    def test_a_string_input_is_one_user_message(self):
        self.assertEqual(translate(input="hello")["messages"], [{"role": "user", "content": "hello"}])

    def test_multi_turn_text_with_output_text_parts(self):
        payload = translate(input=[user("one"), {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "two", "annotations": []}]}, user("three")])
        self.assertEqual([(m["role"], m["content"]) for m in payload["messages"]],
                         [("user", "one"), ("assistant", "two"), ("user", "three")])

    def test_function_calls_and_outputs_become_tool_calls_and_tool_messages(self):
        payload = translate(input=[
            user("list files"),
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Listing."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell",
             "arguments": "{\"command\":[\"ls\"]}"},
            {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{\"command\":[\"pwd\"]}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.py"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "/home"}]},
            user("thanks")], tools=[SHELL])
        assistant, first, second, last = payload["messages"][1:]
        self.assertEqual(assistant["content"], "Listing.", "text and calls are one assistant turn")
        self.assertEqual([(c["id"], c["function"]["name"], c["function"]["arguments"])
                          for c in assistant["tool_calls"]],
                         [("call_1", "shell", "{\"command\":[\"ls\"]}"),
                          ("call_2", "shell", "{\"command\":[\"pwd\"]}")])
        self.assertEqual(first, {"role": "tool", "tool_call_id": "call_1", "content": "a.py"})
        self.assertEqual(second, {"role": "tool", "tool_call_id": "call_2", "content": "/home"})
        self.assertEqual(last, {"role": "user", "content": "thanks"})

    def test_a_function_call_with_no_text_before_it_has_null_content(self):
        payload = translate(input=[user("x"), {"type": "function_call", "call_id": "c", "name": "shell",
                                               "arguments": "{}"}], tools=[SHELL])
        self.assertEqual(payload["messages"][1]["role"], "assistant")
        self.assertIsNone(payload["messages"][1]["content"])

    def test_images_become_image_url_parts(self):
        payload = translate(input=[{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is it?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}]}])
        self.assertEqual(payload["messages"][0]["content"], [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                "detail": "low"}}])
        self.assertTrue(freeride._has_images(payload["messages"]))

    def test_function_and_namespace_tools_are_flattened_and_other_types_dropped(self):
        payload, names, dropped = freeride.responses_to_chat({"input": "x", "tools": [
            SHELL, {"type": "web_search"}, {"type": "local_shell"},
            {"type": "namespace", "name": "mcp__docs", "description": "Docs.", "tools": [
                {"type": "function", "name": "search", "parameters": {"type": "object"}},
                {"type": "function", "name": "shell", "parameters": {"type": "object"}}]}]})
        self.assertEqual([t["function"]["name"] for t in payload["tools"]],
                         ["shell", "search", "mcp__docs__shell"])
        self.assertEqual(payload["tools"][0]["function"]["parameters"], SHELL["parameters"])
        self.assertNotIn("strict", payload["tools"][0]["function"], "few free models know it")
        self.assertEqual(dropped, ["web_search", "local_shell"])
        self.assertEqual(names.item("search", "call_1", "{}")["namespace"], "mcp__docs")
        item = names.item("mcp__docs__shell", "call_2", "{}")
        self.assertEqual((item["name"], item["namespace"]), ("shell", "mcp__docs"))
        self.assertNotIn("namespace", names.item("shell", "call_3", "{}"))

    def test_a_custom_tool_is_a_function_of_one_string_and_its_history_round_trips(self):
        patch = {"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: ..."}}
        payload, names, _ = freeride.responses_to_chat({"tools": [patch], "input": [
            user("fix"), {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch",
                          "input": "*** Begin Patch\n*** End Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"}]})
        function = payload["tools"][0]["function"]
        self.assertEqual(function["parameters"]["required"], ["input"])
        self.assertIn("start: ...", function["parameters"]["properties"]["input"]["description"])
        call = payload["messages"][1]["tool_calls"][0]
        self.assertEqual(json.loads(call["function"]["arguments"]),
                         {"input": "*** Begin Patch\n*** End Patch"})
        self.assertEqual(payload["messages"][2], {"role": "tool", "tool_call_id": "call_p",
                                                  "content": "Done!"})
        item = names.item("apply_patch", "call_q", json.dumps({"input": "*** Begin Patch"}))
        self.assertEqual((item["type"], item["input"]), ("custom_tool_call", "*** Begin Patch"))

    def test_tool_choice_parallel_calls_limits_and_sampling(self):
        payload = translate(input="x", tools=[SHELL], tool_choice={"type": "function", "name": "shell"},
                            parallel_tool_calls=False, max_output_tokens=256, temperature=0.2,
                            top_p=0.8, reasoning={"effort": "high"}, store=False,
                            include=["reasoning.encrypted_content"], prompt_cache_key="k",
                            text={"verbosity": "low"}, stream=True)
        self.assertEqual(payload["tool_choice"], {"type": "function", "function": {"name": "shell"}})
        self.assertEqual(set(payload), {"messages", "stream", "tools", "tool_choice",
                                        "parallel_tool_calls", "max_tokens", "temperature", "top_p"})
        self.assertEqual((payload["parallel_tool_calls"], payload["max_tokens"], payload["stream"]),
                         (False, 256, True))
        for choice in ("auto", "none", "required"):
            self.assertEqual(translate(input="x", tools=[SHELL], tool_choice=choice)["tool_choice"], choice)
        self.assertNotIn("parallel_tool_calls", translate(input="x", parallel_tool_calls=True),
                         "no tools, nothing to say about them")

    def test_a_json_schema_text_format_becomes_response_format(self):
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
        payload = translate(input="x", text={"format": {"type": "json_schema", "name": "verdict",
                                                        "schema": schema, "strict": True}})
        self.assertEqual(payload["response_format"], {"type": "json_schema", "json_schema": {
            "name": "verdict", "schema": schema, "strict": True}})

    def test_previous_response_id_is_a_clear_400(self):
        with self.assertRaises(freeride.HTTPError) as caught:
            freeride.responses_to_chat({"input": "x", "previous_response_id": "resp_1"})
        self.assertEqual((caught.exception.status, caught.exception.extra["param"]),
                         (400, "previous_response_id"))
        self.assertIn("whole conversation", str(caught.exception))

    def test_malformed_input_is_a_400_naming_the_field(self):
        for body, param in (({}, "input"), ({"input": []}, "input"), ({"input": [5]}, "input.0"),
                            ({"input": [{"type": "message", "role": "tool", "content": "x"}]}, "input.0.role"),
                            ({"input": [{"role": "user", "content": 3}]}, "input.0.content"),
                            ({"input": "x", "tools": [{"type": "function"}]}, "tools")):
            with self.subTest(body=body):
                with self.assertRaises(freeride.HTTPError) as caught:
                    freeride.responses_to_chat(body)
                self.assertEqual(caught.exception.status, 400)
                self.assertEqual(caught.exception.extra["param"], param)


def completion(message, finish="stop"):
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage(12, 4)}


class AnswerTranslation(unittest.TestCase):
    def test_a_text_answer_is_a_completed_response_with_a_message_item(self):
        names = freeride.responses_to_chat({"input": "x"})[1]
        response = freeride.chat_to_response(completion({"role": "assistant", "content": "Hi"}),
                                             "groq-model", names)
        self.assertEqual((response["object"], response["status"], response["model"]),
                         ("response", "completed", "groq-model"))
        self.assertTrue(response["id"].startswith("resp_"))
        [item] = response["output"]
        self.assertEqual((item["type"], item["role"], item["status"]), ("message", "assistant", "completed"))
        self.assertEqual(item["content"], [{"type": "output_text", "text": "Hi", "annotations": []}])
        self.assertEqual((response["usage"]["input_tokens"], response["usage"]["output_tokens"],
                          response["usage"]["total_tokens"]), (12, 4, 16))

    def test_tool_calls_become_function_call_items_after_the_text(self):
        names = freeride.responses_to_chat({"input": "x", "tools": [SHELL]})[1]
        response = freeride.chat_to_response(completion({"role": "assistant", "content": "Running.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"ls\"]}"}}]},
            "tool_calls"), "m", names)
        text, call = response["output"]
        self.assertEqual(text["type"], "message")
        self.assertEqual({k: call[k] for k in ("type", "call_id", "name", "arguments", "status")},
                         {"type": "function_call", "call_id": "call_1", "name": "shell",
                          "arguments": "{\"command\":[\"ls\"]}", "status": "completed"})
        self.assertTrue(call["id"].startswith("fc_"))

    def test_an_answer_cut_by_the_token_limit_is_incomplete(self):
        names = freeride.responses_to_chat({"input": "x"})[1]
        response = freeride.chat_to_response(completion({"role": "assistant", "content": "Hi"}, "length"),
                                             "m", names)
        self.assertEqual(response["status"], "incomplete")
        self.assertEqual(response["incomplete_details"], {"reason": "max_output_tokens"})


def encoder(tools=()):
    return freeride.ResponsesEncoder(30, freeride.responses_to_chat({"input": "x", "tools": list(tools)})[1])


class StreamTranslation(unittest.TestCase):
    def assertSequenced(self, events):
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        self.assertTrue(all(d["type"] == name for name, d in events))

    def test_a_text_stream(self):
        events = encode(encoder(), delta_stream({"content": "Hel"}, {"content": "lo"}, usage=usage(7, 2)),
                        model="groq-model")
        self.assertEqual(names_of(events), [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.completed"])
        self.assertSequenced(events)
        created = events[0][1]["response"]
        self.assertEqual((created["status"], created["model"], created["output"]),
                         ("in_progress", "groq-model", []))
        added = events[2][1]
        self.assertEqual((added["output_index"], added["item"]["type"], added["item"]["status"]),
                         (0, "message", "in_progress"))
        item_id = added["item"]["id"]
        self.assertEqual([(d["item_id"], d["delta"]) for _, d in events[4:6]],
                         [(item_id, "Hel"), (item_id, "lo")])
        self.assertEqual(events[6][1]["text"], "Hello")
        self.assertEqual(events[7][1]["part"], {"type": "output_text", "text": "Hello", "annotations": []})
        done = events[8][1]["item"]
        self.assertEqual((done["id"], done["status"], done["content"][0]["text"]), (item_id, "completed", "Hello"))
        completed = events[9][1]["response"]
        self.assertEqual((completed["status"], completed["id"]), ("completed", created["id"]))
        self.assertEqual(completed["output"], [done])
        self.assertEqual((completed["usage"]["input_tokens"], completed["usage"]["output_tokens"],
                          completed["usage"]["total_tokens"]), (7, 2, 9))

    def test_a_tool_call_whose_arguments_arrive_in_several_deltas(self):
        events = encode(encoder([SHELL]), delta_stream(
            tool_delta(0, "", "call_7", "shell"), tool_delta(0, "{\"comm"), tool_delta(0, "and\": [\"ls\""),
            tool_delta(0, "]}"), finish="tool_calls"))
        self.assertEqual(names_of(events), [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.function_call_arguments.delta", "response.function_call_arguments.delta",
            "response.function_call_arguments.delta", "response.function_call_arguments.done",
            "response.output_item.done", "response.completed"])
        self.assertSequenced(events)
        added = events[2][1]["item"]
        self.assertEqual((added["type"], added["call_id"], added["name"], added["arguments"]),
                         ("function_call", "call_7", "shell", ""))
        pieces = [d["delta"] for n, d in events if n.endswith("arguments.delta")]
        self.assertEqual(json.loads("".join(pieces)), {"command": ["ls"]})
        self.assertEqual(events[6][1]["arguments"], "".join(pieces))
        done = events[7][1]["item"]
        self.assertEqual((done["status"], done["arguments"], done["id"]),
                         ("completed", "".join(pieces), added["id"]))
        self.assertEqual(events[-1][1]["response"]["output"], [done])

    def test_text_then_two_tool_calls_are_three_items_with_their_own_output_indexes(self):
        events = encode(encoder([SHELL]), delta_stream(
            {"content": "Checking."}, tool_delta(0, "{\"command\":", "call_a", "shell"),
            tool_delta(0, "[\"ls\"]}"), tool_delta(1, "{\"command\":[\"pwd\"]}", "call_b", "shell"),
            finish="tool_calls"))
        added = [d for n, d in events if n == "response.output_item.added"]
        self.assertEqual([(d["output_index"], d["item"]["type"]) for d in added],
                         [(0, "message"), (1, "function_call"), (2, "function_call")])
        deltas = [(d["output_index"], d["item_id"]) for n, d in events if n.endswith("arguments.delta")]
        self.assertEqual([i for i, _ in deltas], [1, 1, 2])
        self.assertEqual(deltas[0][1], added[1]["item"]["id"])
        output = events[-1][1]["response"]["output"]
        self.assertEqual([(o["type"], o.get("call_id")) for o in output],
                         [("message", None), ("function_call", "call_a"), ("function_call", "call_b")])

    def test_a_namespaced_call_comes_back_with_its_namespace(self):
        namespace = {"type": "namespace", "name": "mcp__docs", "tools": [
            {"type": "function", "name": "search", "parameters": {"type": "object"}}]}
        events = encode(encoder([namespace]), delta_stream(tool_delta(0, "{}", "call_n", "search"),
                                                           finish="tool_calls"))
        done = [d["item"] for n, d in events if n == "response.output_item.done"][0]
        self.assertEqual((done["name"], done["namespace"]), ("search", "mcp__docs"))

    def test_a_custom_tool_call_streams_its_decoded_input_whole(self):
        patch = {"type": "custom", "name": "apply_patch", "description": "Apply a patch."}
        events = encode(encoder([patch]), delta_stream(
            tool_delta(0, "{\"input\": \"*** Begin", "call_p", "apply_patch"),
            tool_delta(0, " Patch\\n\"}"), finish="tool_calls"))
        self.assertEqual(names_of(events)[2:], [
            "response.output_item.added", "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done", "response.output_item.done", "response.completed"])
        done = events[-2][1]["item"]
        self.assertEqual((done["type"], done["call_id"], done["input"]),
                         ("custom_tool_call", "call_p", "*** Begin Patch\n"))

    def test_a_cut_by_the_token_limit_is_response_incomplete(self):
        events = encode(encoder(), delta_stream({"content": "abcd"}, finish="length"))
        name, data = events[-1]
        self.assertEqual(name, "response.incomplete")
        self.assertEqual(data["response"]["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual(data["response"]["usage"]["input_tokens"], 30, "the estimate")

    def test_a_failure_is_an_error_event_then_response_failed(self):
        stream = encoder()
        stream.start("m")
        events = named_events(b"\n\n".join(stream.error("groq: the stream was cut")) + b"\n\n")
        self.assertEqual(names_of(events), ["error", "response.failed"])
        self.assertEqual(events[0][1]["message"], "groq: the stream was cut")
        self.assertEqual([d["sequence_number"] for _, d in events], [2, 3])
        failed = events[1][1]["response"]
        self.assertEqual((failed["status"], failed["error"]["message"]),
                         ("failed", "groq: the stream was cut"))


class ResponsesRoute(GatewayTest):
    def post(self, body):
        return self.call("POST", "/v1/responses", body, {"Authorization": "Bearer any"})

    def test_a_plain_answer(self):
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        response = self.post({"model": "gpt-5-codex", "instructions": "Be brief.", "input": "hi",
                              "max_output_tokens": 64})
        self.assertEqual(response.status, 200)
        doc = response.json()
        self.assertEqual((doc["status"], doc["model"], doc["_freeride_provider"]),
                         ("completed", GROQ_DEFAULT, "groq"))
        # The fake's default stream (a plain request goes upstream streamed and is assembled).
        self.assertEqual(doc["output"][0]["content"][0]["text"], "Hello")
        self.assertEqual(doc["usage"]["input_tokens"], 7)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        sent = groq.requests[0].body
        self.assertEqual(sent["messages"], [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "hi"}])
        self.assertEqual(sent["max_tokens"], 64)

    def test_a_streamed_answer_has_sequenced_events_and_no_done(self):
        self.fake("groq").on(delta_stream({"content": "Hel"}, {"content": "lo"}, usage=usage(7, 2)))
        self.start_gateway(groq="gsk-1")
        response = self.post({"model": "auto", "input": "hi", "stream": True})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Content-Type"], "text/event-stream")
        self.assertNotIn(b"[DONE]", response.body)
        events = named_events(response.body)
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        self.assertEqual(names_of(events)[-1], "response.completed")
        text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
        self.assertEqual(text, "Hello")
        self.assertEqual(events[-1][1]["response"]["usage"]["total_tokens"], 9)

    def test_previous_response_id_answers_an_openai_shaped_400(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        response = self.post({"model": "auto", "input": "more", "previous_response_id": "resp_1"})
        self.assertEqual(response.status, 400)
        self.assertEqual(response.error["param"], "previous_response_id")
        self.assertEqual(self.fakes["groq"].requests, [])

    def test_errors_stay_openai_shaped(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=40), times=None)
        groq.on(fakes.error("groq", "rate_tpm", retry_after=9), times=None)
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response = self.post({"model": "auto", "input": "hi", "stream": True})
        self.assertEqual(response.status, 429)
        self.assertEqual(response.headers["Retry-After"], "9")
        self.assertEqual(response.error["code"], "all_providers_exhausted")
        self.assertEqual(self.post({"model": "auto", "input": []}).error["param"], "input")

    def test_requests_with_tools_go_only_to_tool_models_and_images_to_vision_models(self):
        # Cloudflare comes first and spells the deepseek family with a model that calls no
        # tools; OpenRouter's live catalog has a deepseek that does (and sees no images).
        cloudflare, openrouter, groq = self.fake("cloudflare"), self.fake("openrouter"), self.fake("groq")
        openrouter.on(models_ok("openrouter", ["openrouter/free", DEEPSEEK]), path="/models")
        self.start_gateway(cloudflare="cf-1", openrouter="or-1", groq="gsk-1")
        plain = self.post({"model": "deepseek", "input": "hi"})
        self.assertEqual((plain.status, plain.json()["_freeride_provider"]), (200, "cloudflare"))
        self.assertEqual([r.model for r in cloudflare.requests],
                         ["@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"])

        with_tools = self.post({"model": "deepseek", "input": "list files", "tools": [SHELL]})
        self.assertEqual(with_tools.status, 200)
        self.assertEqual(with_tools.json()["_freeride_provider"], "openrouter")
        self.assertEqual(len(cloudflare.requests), 1, "the tool-less model was not asked")
        [asked] = openrouter.requests
        self.assertEqual(asked.model, DEEPSEEK)
        self.assertEqual([t["function"]["name"] for t in asked.body["tools"]], ["shell"])

        image = {"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}
        nobody = self.post({"model": "deepseek", "input": [image], "tools": [SHELL]})
        self.assertEqual(nobody.status, 404, "no deepseek takes both tools and images")
        self.assertEqual(nobody.json()["error"]["code"], "model_not_found")
        self.assertEqual((len(cloudflare.requests), len(openrouter.requests), groq.requests),
                         (1, 1, []))

        self.start_gateway(groq="gsk-1")
        self.assertEqual(self.post({"model": "auto", "input": [image], "tools": [SHELL]}).status, 200)
        self.assertEqual(groq.requests[0].model,
                         next(m.id for m in providers.REGISTRY["groq"].models if m.vision))


class ResponsesFailover(GatewayTest):
    """Under /v1/responses, exactly as under chat completions."""

    def setUp(self):
        super().setUp()
        self.openrouter, self.groq = self.fake("openrouter"), self.fake("groq")
        self.groq.default(delta_stream({"content": "from "}, {"content": "groq"}, model="groq-model"))

    def stream(self):
        response = self.call("POST", "/v1/responses", {"model": "auto", "input": "hi", "stream": True})
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
        self.assertEqual(names_of(events).count("response.created"), 1)
        self.assertNotIn("error", names_of(events))
        self.assertEqual(names_of(events)[-1], "response.completed")
        self.assertEqual("".join(d["delta"] for n, d in events if n == "response.output_text.delta"),
                         "from groq")
        self.assertEqual(len(self.openrouter.requests), 1)

    def test_a_plain_request_fails_over_too(self):
        self.openrouter.on(fakes.error("openrouter", "provider_error"))
        self.groq.default(fakes.chat_ok("served by groq"))
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response = self.call("POST", "/v1/responses", {"model": "auto", "input": "hi"})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.json()["output"][0]["content"][0]["text"], "served by groq")

    def test_a_cut_after_content_ends_with_error_and_response_failed(self):
        reply = delta_stream({"content": "Hel"}, {"content": "lo"}, {"content": " there"})
        reply.cut_after = 3  # role, "Hel", "lo"
        self.openrouter.on(reply)
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response, events = self.stream()
        self.assertEqual(response.headers["X-FreeRide-Provider"], "openrouter")
        self.assertEqual("".join(d["delta"] for n, d in events if n == "response.output_text.delta"),
                         "Hello")
        self.assertEqual(names_of(events)[-2:], ["error", "response.failed"])
        self.assertIn("openrouter", events[-1][1]["response"]["error"]["message"])
        self.assertEqual(events[-1][1]["response"]["status"], "failed")
        self.assertNotIn("response.completed", names_of(events))
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        self.assertEqual(self.groq.requests, [], "no failover once content was sent")
        self.assertEqual(self.outcomes(), ["cut"])

    def test_an_error_event_after_content_ends_with_error_and_response_failed(self):
        events = delta_stream({"content": "Hel"}).events[:2]  # role, "Hel"
        self.openrouter.on(fakes.Reply(events=events + [fakes.stream_error_event("openrouter"),
                                                        "data: [DONE]"]))
        self.start_gateway(openrouter="or-1", groq="gsk-1")
        response, events = self.stream()
        self.assertNotIn(b"[DONE]", response.body)
        self.assertEqual("".join(d["delta"] for n, d in events if n == "response.output_text.delta"),
                         "Hel")
        self.assertEqual(names_of(events)[-2:], ["error", "response.failed"])
        self.assertIn("Provider disconnected", events[-2][1]["message"])
        failed = events[-1][1]["response"]
        self.assertEqual(failed["status"], "failed")
        self.assertIn("Provider disconnected", failed["error"]["message"])
        self.assertNotIn("response.completed", names_of(events))
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        self.assertEqual(self.groq.requests, [], "no failover once content was sent")
        self.assertEqual(self.outcomes(), ["error"])


class RecordedCodex(GatewayTest):
    def test_a_recorded_codex_request_is_served_and_its_answer_parses(self):
        groq = self.fake("groq")
        groq.on(delta_stream({"content": "Removing the extra one."},
                             tool_delta(0, "{\"command\": [\"bash\", \"-lc\", ", "call_s1", "shell"),
                             tool_delta(0, "\"sed -i 's/ + 1//' shop/cart.py\"], "),
                             tool_delta(0, "\"workdir\": \"/home/dev/shop\"}"),
                             finish="tool_calls", usage=usage(1200, 60)))
        self.start_gateway(groq="gsk-1")
        response = self.call("POST", "/v1/responses", fixture("codex_request.json"),
                             {"Authorization": "Bearer any", "OpenAI-Beta": "responses=experimental",
                              "originator": "codex_cli_rs"})
        self.assertEqual(response.status, 200)

        sent = groq.requests[0].body
        self.assertEqual(sent["model"], GROQ_DEFAULT)
        roles = [m["role"] for m in sent["messages"]]
        self.assertEqual(roles, ["system", "system", "user", "user", "assistant", "tool",
                                 "assistant", "tool", "user"])
        self.assertTrue(sent["messages"][0]["content"].startswith("You are Codex"))
        self.assertEqual(sent["messages"][4]["tool_calls"][0]["id"], "call_Vd2mX1")
        self.assertEqual(sent["messages"][6]["content"],
                         "The total adds one too many; I'll look at cart.py.")
        self.assertEqual(sent["messages"][6]["tool_calls"][0]["function"]["name"], "search_docs")
        self.assertEqual(sent["messages"][7], {"role": "tool", "tool_call_id": "call_Q8nB2",
                                               "content": "total(items) sums the item prices."})
        self.assertEqual([t["function"]["name"] for t in sent["tools"]],
                         ["shell", "update_plan", "search_docs"])
        self.assertEqual((sent["tool_choice"], sent["parallel_tool_calls"]), ("auto", False))
        for dropped in ("reasoning", "store", "include", "prompt_cache_key", "text", "instructions",
                        "input"):
            self.assertNotIn(dropped, sent)
        self.assertNotIn("encrypted_content", json.dumps(sent))

        events = named_events(response.body)
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        self.assertEqual(names_of(events)[:2], ["response.created", "response.in_progress"])
        completed = events[-1][1]["response"]
        self.assertEqual((events[-1][0], completed["status"]), ("response.completed", "completed"))
        message, call = completed["output"]
        self.assertEqual(message["content"][0]["text"], "Removing the extra one.")
        self.assertEqual((call["type"], call["call_id"], call["name"]), ("function_call", "call_s1", "shell"))
        self.assertEqual(json.loads(call["arguments"])["workdir"], "/home/dev/shop")
        self.assertEqual((completed["usage"]["input_tokens"], completed["usage"]["output_tokens"]),
                         (1200, 60))
        dropped = [r for r in self.events() if r["event"] == "dropped"]
        self.assertEqual([r["tools"] for r in dropped], [["web_search"]])


if __name__ == "__main__":
    unittest.main()
