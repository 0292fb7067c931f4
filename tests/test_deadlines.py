"""A hung or dying provider costs seconds, not minutes (issue 16): every plain chat request
goes upstream streamed and is assembled, three deadlines tell dead from slow (the head, the
first sign of life, silence), and an answer that is not an answer fails over like a 5xx.

Fakes hang at each stage: before the head, in the middle of it, after it, after some content.
The everyday suite runs them with short deadlines; FREERIDE_LONG_TESTS=1 also runs them with
the documented defaults (15 s, 60 s, 30 s), all at once, in about a minute.
"""
import concurrent.futures
import http.client
import json
import shutil
import tempfile
import time
import unittest
from pathlib import Path

import freeride
import providers
from tests import fakes
from tests.fakes import Reply, chat_stream
from tests.support import GatewayTest, Response
from tests.test_hardening import LONG, RawUpstream, read_request

SHORT = {"FREERIDE_FIRST_BYTE_TIMEOUT": "0.5", "FREERIDE_FIRST_CONTENT_TIMEOUT": "0.5",
         "FREERIDE_IDLE_TIMEOUT": "0.5"}
DEFAULTS = {"FREERIDE_FIRST_BYTE_TIMEOUT": "", "FREERIDE_FIRST_CONTENT_TIMEOUT": "",
            "FREERIDE_IDLE_TIMEOUT": "", "FREERIDE_CONNECT_TIMEOUT": ""}


def trickled_head(conn, stop):
    """A 200 head that never ends: one header byte every 0.2 s."""
    read_request(conn, stop)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Slow: ")
    give_up = time.monotonic() + 120
    while not stop.wait(0.2) and time.monotonic() < give_up:
        conn.sendall(b"x")
    conn.close()


def stalled(pieces_sent):
    """A stream whose first `pieces_sent` events arrive, then nothing, the socket open."""
    reply = chat_stream(pieces=("Hel", "lo", " there"))
    reply.stall_after = pieces_sent
    return reply


# stage -> (what the fake answers, the deadline that ends the wait, its variable)
STAGES = {
    "before the head": (lambda: Reply(hang=True), "headers", "FREERIDE_FIRST_BYTE_TIMEOUT"),
    "in the middle of the head": (None, "headers", "FREERIDE_FIRST_BYTE_TIMEOUT"),
    "after the head": (lambda: stalled(0), "first content", "FREERIDE_FIRST_CONTENT_TIMEOUT"),
    "after the role chunk": (lambda: stalled(1), "first content",
                             "FREERIDE_FIRST_CONTENT_TIMEOUT"),
    "after some content": (lambda: stalled(2), "idle", "FREERIDE_IDLE_TIMEOUT"),
}
DEFAULT_SECONDS = {"FREERIDE_FIRST_BYTE_TIMEOUT": 15, "FREERIDE_FIRST_CONTENT_TIMEOUT": 60,
                   "FREERIDE_IDLE_TIMEOUT": 30}


class Hangs(GatewayTest):
    """Groq hangs at one stage; NVIDIA answers. Plain requests are answered whole by NVIDIA;
    streamed ones too, unless content had already gone out (then the stream ends with an
    error event, never a silent finish)."""

    def gateway_with_a_hang(self, stage, timeouts, stream):
        make, _, _ = STAGES[stage]
        if make is None:
            raw = RawUpstream(trickled_head)
            self.addCleanup(raw.close)
            groq_url = raw.url
        else:
            groq = self.fake("groq")
            groq.on(make(), path="/chat/completions", times=None)
            groq_url = groq.url
        nvidia = self.fake("nvidia")
        env = {"FREERIDE_PROVIDERS": "groq,nvidia", "GROQ_API_KEY": "gsk-1",
               "GROQ_BASE_URL": groq_url, "NVIDIA_API_KEY": "nv-1",
               "NVIDIA_BASE_URL": nvidia.url, **timeouts}
        return freeride.Gateway(freeride.Config(
            env={k: v for k, v in {"FREERIDE_HOME": str(self.home / f"{stage} {stream}"),
                                   "FREERIDE_LOCAL": "0",
                                   **env}.items() if v}, port=0)).start()

    def run_stage(self, stage, timeouts, stream):
        gateway = self.gateway_with_a_hang(stage, timeouts, stream)
        self.addCleanup(gateway.close)
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=120)
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps({
                "model": "auto", "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}),
                {"Content-Type": "application/json"})
            answer = conn.getresponse()
            response = Response(answer.status, answer.headers, answer.read())
        finally:
            conn.close()
        return response, time.monotonic() - started, gateway

    def check(self, timeouts, seconds):
        jobs = [(stage, stream) for stage in STAGES for stream in (False, True)]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda job: self.run_stage(job[0], timeouts, job[1]), jobs))
        for (stage, stream), (response, took, gateway) in zip(jobs, results):
            _, fired, variable = STAGES[stage]
            with self.subTest(stage=stage, stream=stream):
                self.assertEqual(response.status, 200, response.body[:300])
                self.assertLess(took, seconds[variable] + 1.5,
                                f"answered within the {variable} deadline plus a second")
                sent_content = stream and stage == "after some content"
                if sent_content:  # the client already has "Hel": end with an error, not a hang
                    self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
                    self.assertIn(b'"error"', response.body)
                    self.assertIn(b"idle timeout", response.body)
                    self.assertTrue(response.body.rstrip().endswith(b"data: [DONE]"))
                    continue
                else:
                    self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
                    if not stream:
                        self.assertEqual(response.json()["choices"][0]["message"]["content"],
                                         "Hello")  # NVIDIA fake's default stream, assembled
                rows = [r for r in read_events(gateway) if r.get("event") == "result"
                        and r.get("provider") == "groq"]
                self.assertEqual(rows[0]["timeout"], fired, rows)

    def test_each_hang_is_answered_by_the_next_provider_within_its_deadline(self):
        if LONG:  # the documented defaults: a minute, so once per CI run
            self.check(DEFAULTS, DEFAULT_SECONDS)
        else:
            self.check(SHORT, {v: 0.5 for v in DEFAULT_SECONDS})


def read_events(gateway):
    done = []
    gateway.writer.flush_soon(lambda: done.append(True))
    for _ in range(500):
        if done:
            break
        time.sleep(0.01)
    path = gateway.config.home / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class NotAnAnswer(GatewayTest):
    """A 200 that holds no answer is a failure of that provider, never served to the client."""

    def fresh(self):
        """New fakes and a new home for a subtest (no cooldown carried over)."""
        self.fakes = {}
        self.home = Path(tempfile.mkdtemp(prefix="freeride-test-"))
        self.addCleanup(shutil.rmtree, self.home, True)
    CASES = {
        "no choices": Reply(body={"id": "x", "object": "chat.completion", "model": "m"}),
        "an empty list": Reply(body={"id": "x", "object": "chat.completion", "choices": []}),
        "message null": Reply(body={"id": "x", "choices": [{"index": 0, "message": None}]}),
        "a delta of the wrong type": Reply(events=[
            'data: {"id":"x","choices":[{"index":0,"delta":"Hello"}]}', "data: [DONE]"]),
        "content of the wrong type": Reply(events=[
            'data: {"id":"x","choices":[{"index":0,"delta":{"content":["Hel"]}}]}',
            "data: [DONE]"]),
        "garbage before content": Reply(events=["data: <html>oops</html>"] +
                                        chat_stream().events),
        "choices not a list": Reply(events=['data: {"id":"x","choices":{"0":1}}'] +
                                    chat_stream().events),
        "no content at all": Reply(events=[chat_stream().events[0], "data: [DONE]"]),
        "tool calls that are not a list": Reply(events=[
            'data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":5}}]}', "data: [DONE]"]),
        "a tool call that is not an object": Reply(events=[
            'data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":[7]}}]}',
            "data: [DONE]"]),
    }

    def test_each_fails_over_unseen_for_plain_and_streamed_requests(self):
        for name, reply in self.CASES.items():
            for stream in (False, True):
                if stream and reply.events is None:
                    continue  # a plain body to a stream request: covered by the plain case
                with self.subTest(case=name, stream=stream):
                    self.fresh()
                    groq = self.fake("groq")
                    groq.on(reply, path="/chat/completions", times=None)
                    self.start_gateway(groq="gsk-1", nvidia="nv-1")
                    response = self.chat(stream=stream)
                    self.assertEqual(response.status, 200, response.body[:300])
                    self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
                    self.assertNotIn(b"oops", response.body)
                    rid = response.headers["X-FreeRide-Request-Id"]
                    [ok] = [e for e in self.logged("complete", "interrupted")
                            if e.get("req") == rid]
                    self.assertEqual(ok["provider"], "nvidia", "never counted as served")

    def test_plain_upstream_answers_are_checked_too(self):
        for name in ("no choices", "an empty list", "message null"):
            with self.subTest(case=name):
                self.fresh()
                groq = self.fake("groq")
                groq.on(self.CASES[name], path="/chat/completions", times=None)
                self.start_gateway(groq="gsk-1", nvidia="nv-1")
                response = self.chat(n=1, logprobs=True)  # assembly cannot keep logprobs
                self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
                self.assertIsNot(groq.requests[0].body.get("stream"), True)

    def test_malformed_embeddings_fail_over(self):
        for name, body in {
                "index not a number": {"object": "list", "data": [
                    {"object": "embedding", "index": "0", "embedding": [0.1] * 1024}]},
                "a vector of strings": {"object": "list", "data": [
                    {"object": "embedding", "index": 0, "embedding": ["0.1"] * 1024}]}}.items():
            with self.subTest(case=name):
                self.fresh()
                self.fake("nvidia").on(Reply(body=body), path="/embeddings")
                self.fake("cloudflare").on(fakes.embeddings_ok(dim=1024), path="/embeddings")
                self.start_gateway(nvidia="nv-1", cloudflare="cf-1")
                response = self.call("POST", "/v1/embeddings", {"model": "auto", "input": "x"})
                self.assertEqual(response.status, 200, response.body[:300])
                self.assertEqual(response.headers["X-FreeRide-Provider"], "cloudflare")


class Assembly(GatewayTest):
    """What the gateway assembles from a stream equals what the provider answers plainly."""

    def plain_answer(self):
        doc = fakes.chat_ok("It is sunny in Paris, says the tool.", model="openai/gpt-oss-120b",
                            usage={"prompt_tokens": 11, "completion_tokens": 9,
                                   "total_tokens": 20}).json()
        doc["system_fingerprint"] = "fp_fake"
        doc["choices"][0]["message"]["reasoning"] = "The user wants the weather."
        doc["choices"][0]["message"]["tool_calls"] = [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'}}]
        doc["choices"][0]["finish_reason"] = "tool_calls"
        return doc

    def test_a_chat_answer_is_assembled_field_by_field(self):
        expected = self.plain_answer()
        groq = self.fake("groq")
        groq.on(Reply(body=expected), path="/chat/completions")
        self.start_gateway(groq="gsk-1")
        response = self.chat()
        self.assertEqual(response.status, 200, response.body)
        got = response.json()
        self.assertIs(groq.requests[0].body["stream"], True, "streamed upstream")
        for field in ("id", "object", "created", "model", "system_fingerprint", "usage"):
            self.assertEqual(got[field], expected[field], field)
        self.assertEqual(got["choices"][0]["message"], expected["choices"][0]["message"])
        self.assertEqual(got["choices"][0]["finish_reason"], "tool_calls")
        self.assertEqual(got["_freeride_provider"], "groq")

    def test_messages_and_responses_answers_are_the_plain_answers_translations(self):
        expected = self.plain_answer()
        model = expected["model"]
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        cases = {
            "/v1/messages": ({"model": "claude-sonnet-4-5", "max_tokens": 100,
                              "messages": [{"role": "user", "content": "weather?"}]},
                             freeride.chat_to_anthropic(expected, model)),
            "/v1/responses": ({"model": "auto", "input": "weather?"},
                              freeride.chat_to_response(expected, model, freeride.ToolNames())),
        }
        for path, (body, translated) in cases.items():
            with self.subTest(path=path):
                groq.on(Reply(body=expected), path="/chat/completions")
                response = self.call("POST", path, body)
                self.assertEqual(response.status, 200, response.body)
                got = response.json()
                for field in ("content", "stop_reason", "usage", "output", "status"):
                    if field in translated:
                        self.assertEqual(strip_ids(got[field]), strip_ids(translated[field]),
                                         field)

    def test_a_plain_answer_cut_after_half_its_content_is_answered_whole_by_the_next(self):
        groq = self.fake("groq")
        reply = chat_stream(pieces=("Hel", "lo", " there"))
        reply.cut_after = 3
        groq.on(reply, path="/chat/completions")
        self.start_gateway(groq="gsk-1", nvidia="nv-1")
        response = self.chat()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
        self.assertEqual(response.json()["choices"][0]["message"]["content"],
                         "Hello")  # NVIDIA fake's default stream, assembled

    def test_n_above_one_and_logprobs_go_upstream_plain(self):
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        for extra in ({"n": 2}, {"logprobs": True}):
            with self.subTest(**extra):
                self.assertEqual(self.chat(**extra).status, 200)
                self.assertIsNot(groq.requests[-1].body.get("stream"), True)


def strip_ids(value):
    """The same answer, its generated ids left out (each translation makes new ones)."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k not in ("id", "call_id")}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


if __name__ == "__main__":
    unittest.main()
