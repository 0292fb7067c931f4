"""The fake upstreams behave like the providers they stand for (shared/providers.md)."""

import http.client
import json
import threading
import time
import unittest

from tests.fakes import (ERROR_CASES, FakeUpstream, Reply, chat_stream, error, models_ok,
                         next_utc_midnight_ms, stream_error_event)


class FakeTestCase(unittest.TestCase):
    provider = "openrouter"

    def setUp(self):
        self.fake = FakeUpstream(self.provider).start()
        self.addCleanup(self.fake.close)

    def connect(self, timeout=5):
        port = int(self.fake.origin.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.addCleanup(connection.close)
        return connection

    def post(self, connection, body, key="key-1", path="/v1/chat/completions"):
        connection.request("POST", path, json.dumps(body),
                           {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        return connection.getresponse()


class RulesAndRecording(FakeTestCase):
    def test_rule_is_used_times_then_the_default_answers(self):
        self.fake.on(error("groq", "rate_tpm"), times=2)
        connection = self.connect()
        statuses = []
        for _ in range(3):
            response = self.post(connection, {"model": "m-1", "messages": []})
            statuses.append((response.status, json.loads(response.read()).get("model")))
        self.assertEqual(statuses, [(429, None), (429, None), (200, "m-1")])
        self.assertEqual(self.fake.connections, 1, "keep-alive: one connection for three requests")

    def test_rules_match_key_model_and_path(self):
        self.fake.on(Reply(401, body={"error": "k"}), key="bad", times=None)
        self.fake.on(Reply(404, body={"error": "m"}), model="gone", times=None)
        self.fake.on(Reply(418, body={"error": "p"}), path="/embeddings", times=None)
        connection = self.connect()
        seen = []
        for key, model, path in [("bad", "x", "/v1/chat/completions"), ("good", "gone", "/v1/chat/completions"),
                                 ("good", "x", "/v1/embeddings"), ("good", "x", "/v1/chat/completions")]:
            response = self.post(connection, {"model": model, "input": ["a"]}, key, path)
            response.read()
            seen.append(response.status)
        self.assertEqual(seen, [401, 404, 418, 200])

    def test_requests_record_key_model_body_and_lower_case_headers(self):
        self.post(self.connect(), {"model": "groq/llama", "messages": [{"role": "user", "content": "hi"}]},
                  key="sk-or-v1-abc").read()
        self.assertTrue(self.fake.wait_requests(1))
        request = self.fake.requests[0]
        self.assertEqual((request.method, request.path, request.key, request.model),
                         ("POST", "/v1/chat/completions", "sk-or-v1-abc", "groq/llama"))
        self.assertEqual(request.body["messages"][0]["content"], "hi")
        self.assertEqual(request.headers["content-type"], "application/json")

    def test_default_answers_stream_when_asked_and_lists_models(self):
        connection = self.connect()
        response = self.post(connection, {"model": "m", "stream": True, "stream_options": {"include_usage": True}})
        self.assertEqual(response.getheader("Content-Type"), "text/event-stream")
        text = response.read().decode()
        self.assertTrue(text.endswith("data: [DONE]\n\n"))
        self.assertIn('"choices": []', text)
        connection.request("GET", "/v1/models")
        models = json.loads(connection.getresponse().read())["data"]
        free = [m["id"] for m in models if m["pricing"]["prompt"] == "0" and m["pricing"]["completion"] == "0"]
        self.assertIn("openrouter/free", free)
        self.assertNotIn("openai/gpt-4o-mini", free)


class Streaming(FakeTestCase):
    def read_events(self, response):
        """(arrival time, event text) for each SSE event, read as it arrives."""
        events, lines = [], []
        while True:
            line = response.readline()
            if not line:
                return events
            if line == b"\n":
                events.append((time.monotonic(), "".join(lines)))
                lines = []
            else:
                lines.append(line.decode())

    def test_a_stream_with_event_delay_arrives_in_pieces_over_time(self):
        self.fake.on(chat_stream(pieces=("a", "b", "c"), keepalive=1, event_delay=0.1))
        response = self.post(self.connect(), {"model": "m", "stream": True})
        self.assertEqual(response.getheader("Transfer-Encoding"), "chunked")
        events = self.read_events(response)
        self.assertEqual(len(events), 7)  # keep-alive, role, 3 pieces, finish, [DONE]
        self.assertEqual(events[0][1], ": OPENROUTER PROCESSING\n")
        self.assertEqual(events[-1][1], "data: [DONE]\n")
        gaps = [later[0] - earlier[0] for earlier, later in zip(events, events[1:])]
        self.assertTrue(all(gap > 0.05 for gap in gaps), gaps)

    def test_cut_after_closes_the_connection_without_done(self):
        self.fake.on(Reply(events=chat_stream(pieces=("a", "b", "c")).events, cut_after=2))
        response = self.post(self.connect(), {"model": "m", "stream": True})
        with self.assertRaises(http.client.IncompleteRead) as raised:
            response.read()
        self.assertIn(b'"content": "a"', raised.exception.partial)
        self.assertNotIn(b"[DONE]", raised.exception.partial)

    def test_truncated_200_announces_more_bytes_than_it_sends(self):
        self.fake.on(error("groq", "truncated_200"))
        response = self.post(self.connect(), {"model": "m"})
        with self.assertRaises(http.client.IncompleteRead):
            response.read()

    def test_a_client_leaving_a_stalled_stream_sets_disconnected(self):
        self.fake.on(Reply(events=chat_stream().events, stall_after=1))
        connection = self.connect()
        response = self.post(connection, {"model": "m", "stream": True})
        self.assertTrue(response.readline().startswith(b"data: "))
        self.assertFalse(self.fake.disconnected.is_set())
        connection.close()
        self.assertTrue(self.fake.disconnected.wait(2))


class Closing(FakeTestCase):
    def test_close_returns_promptly_with_a_hung_request_open(self):
        self.fake.on(Reply(hang=True))
        self.fake.on(Reply(events=["data: {}"], stall_after=0))
        outcomes = []

        def call():
            try:
                self.post(self.connect(timeout=10), {"model": "m"}).read()
                outcomes.append("answered")
            except (http.client.HTTPException, OSError) as failure:
                outcomes.append(type(failure).__name__)

        callers = [threading.Thread(target=call) for _ in range(2)]
        for caller in callers:
            caller.start()
        self.assertTrue(self.fake.wait_requests(2))
        started = time.monotonic()
        self.fake.close()
        self.assertLess(time.monotonic() - started, 2.0)
        for caller in callers:
            caller.join(5)
        self.assertEqual(len(outcomes), 2)
        self.assertNotIn("answered", outcomes)
        self.assertFalse(self.fake.disconnected.is_set(), "closing the fake is not the gateway leaving")
        self.fake.close()  # idempotent


class RecordedBodies(FakeTestCase):
    provider = "cloudflare"

    def test_cloudflare_neurons_error_is_the_v4_envelope_with_code_4006(self):
        self.fake.on(error("cloudflare", "neurons"))
        response = self.post(self.connect(), {"model": "@cf/meta/llama-3.1-8b-instruct"})
        self.assertEqual(response.status, 429)
        body = json.loads(response.read())
        self.assertEqual(set(body), {"success", "errors", "messages", "result"})
        self.assertEqual((body["success"], body["messages"], body["result"]), (False, [], None))
        self.assertEqual(body["errors"][0]["code"], 4006)
        self.assertIn("daily free allocation of 10,000 neurons", body["errors"][0]["message"])

    def test_groq_rate_tpm_carries_go_duration_headers_and_prose_wait(self):
        self.fake.on(error("groq", "rate_tpm"))
        response = self.post(self.connect(), {"model": "llama-3.3-70b-versatile"})
        self.assertEqual(response.status, 429)
        expected = {"retry-after": "2", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "7.66s",
                    "x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-limit-tokens": "12000"}
        self.assertEqual({name: response.getheader(name) for name in expected}, expected)
        body = json.loads(response.read())["error"]
        self.assertEqual((body["type"], body["code"]), ("tokens", "rate_limit_exceeded"))
        self.assertIn("Please try again in 1.984999999s.", body["message"])

    def test_openrouter_daily_cap_resets_at_next_utc_midnight_in_ms(self):
        reply = error("openrouter", "daily_cap")
        self.assertEqual(reply.headers["X-RateLimit-Reset"], str(next_utc_midnight_ms()))
        metadata = reply.json()["error"]["metadata"]
        self.assertEqual(metadata["limit_source"], "openrouter_free_tier_daily")
        self.assertEqual(metadata["headers"]["X-RateLimit-Reset"], reply.headers["X-RateLimit-Reset"])
        self.assertEqual(next_utc_midnight_ms(1788911999.5), 1788912000000)

    def test_every_documented_case_builds_and_unknown_ones_are_refused(self):
        for provider, cases in ERROR_CASES.items():
            for case in cases:
                reply = error(provider, case)
                self.assertTrue(reply.status >= 400 or case.endswith("_200"), (provider, case))
                if reply.body and "json" in reply.headers.get("Content-Type", "") and not case.endswith("_200"):
                    reply.json()
        with self.assertRaises(ValueError):
            error("groq", "neurons")
        with self.assertRaises(TypeError):
            error("groq", "rate_tpm", retry=3)

    def test_stream_error_events_have_each_provider_shape(self):
        openrouter = json.loads(stream_error_event("openrouter").removeprefix("data: "))
        self.assertEqual(openrouter["choices"][0]["finish_reason"], "error")
        self.assertEqual(openrouter["error"]["message"], "Provider disconnected")
        self.assertTrue(stream_error_event("groq").startswith("event: error\ndata: {\"error\": {"))
        self.assertEqual(models_ok("cloudflare", ["@cf/x"]).json()["result"][0]["name"], "@cf/x")


if __name__ == "__main__":
    unittest.main()
