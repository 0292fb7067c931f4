"""Streamed chat completions: events relayed as they come, invisible failover before content.

The gateway holds a stream back until its first event that carries content (text or a
tool-call delta). Whatever goes wrong before that is a failover like any other; whatever goes
wrong after it ends the client's stream with an OpenAI-style error event and `data: [DONE]`.
"""
import http.client
import json
import socket
import time
import unittest

from tests.fakes import Reply, chat_stream, error, stream_error_event
from tests.support import GatewayTest

WAIT = 10  # upper bound for any single read from the gateway, in seconds


class Stream:
    """A streamed answer as the client saw it: head, and each event with its arrival time."""

    def __init__(self, timed, headers=None, status=200):
        self.status = status
        self.headers = headers
        self.timed = timed  # [(time.monotonic() at arrival, raw event bytes)]

    @property
    def raw(self):
        return [event for _, event in self.timed]

    @property
    def docs(self):
        """The JSON of every data event except [DONE]."""
        out = []
        for event in self.raw:
            data = b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
            if data and data != b"[DONE]":
                out.append(json.loads(data))
        return out

    @property
    def chunks(self):
        return [doc for doc in self.docs if "choices" in doc]

    @property
    def text(self):
        return "".join(choice["delta"].get("content") or "" for doc in self.chunks
                       for choice in doc["choices"] if isinstance(choice.get("delta"), dict))

    def content_times(self):
        """Arrival times of the events whose delta carries text."""
        return [at for at, event in self.timed if Stream([(at, event)]).text]

    @property
    def errors(self):
        return [doc["error"] for doc in self.docs if "error" in doc]


def read_sse(response):
    """Each event of an SSE response as (arrival time, bytes), read line by line as it arrives."""
    timed, lines = [], []
    while True:
        line = response.readline()
        if not line:
            if lines:
                timed.append((time.monotonic(), b"\n".join(lines)))
            return timed
        line = line.rstrip(b"\r\n")
        if line:
            lines.append(line)
        elif lines:
            timed.append((time.monotonic(), b"\n".join(lines)))
            lines = []


class StreamingTest(GatewayTest):
    def open_stream(self, model="auto", text="hello", **extra):
        """POST a streamed chat request; returns (connection, response) once the head arrived."""
        body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": True, **extra}
        connection = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=WAIT)
        self.addCleanup(connection.close)
        connection.request("POST", "/v1/chat/completions", json.dumps(body),
                           {"Content-Type": "application/json"})
        return connection, connection.getresponse()

    def stream(self, model="auto", **extra):
        _, response = self.open_stream(model, **extra)
        if response.status != 200:
            return Stream([(time.monotonic(), response.read())], response.headers, response.status)
        return Stream(read_sse(response), response.headers, response.status)

    def assertEndsWithErrorThenDone(self, stream):
        self.assertEqual(stream.raw[-1], b"data: [DONE]")
        last = stream.docs[-1]
        self.assertEqual(set(last), {"error"}, "the closing error event is OpenAI-shaped")
        self.assertIsInstance(last["error"].get("message"), str)
        self.assertTrue(last["error"]["message"])
        self.assertIn("type", last["error"])


class RelayingEvents(StreamingTest):
    def test_events_reach_the_client_one_at_a_time_as_the_upstream_sends_them(self):
        spacing = 0.15
        openrouter = self.fake("openrouter")
        openrouter.on(chat_stream(pieces=("one ", "two ", "three ", "four"), event_delay=spacing))
        self.start_gateway(openrouter="k1")
        stream = self.stream()
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.text, "one two three four")
        arrivals = stream.content_times()
        self.assertEqual(len(arrivals), 4)
        gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
        self.assertTrue(all(gap > spacing * 0.4 for gap in gaps), f"buffered, not relayed: gaps {gaps}")
        spread = arrivals[-1] - arrivals[0]
        self.assertGreater(spread, 3 * spacing * 0.7, "the content events arrived together")
        self.assertLess(spread, 3 * spacing + 1.0)

    def test_stream_head_is_an_event_stream_chunked_and_names_provider_and_request(self):
        self.start_gateway(openrouter="k1")
        stream = self.stream()
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.headers["Content-Type"], "text/event-stream")
        self.assertEqual(stream.headers["Cache-Control"], "no-cache")
        self.assertEqual(stream.headers["Transfer-Encoding"], "chunked")
        self.assertEqual(stream.headers["X-FreeRide-Provider"], "openrouter")
        self.assertTrue(stream.headers["X-FreeRide-Request-Id"].startswith("req_"))
        self.assertEqual(stream.raw[-1], b"data: [DONE]")
        self.assertEqual(stream.text, "Hello")
        self.assertEqual(stream.errors, [])

    def test_http_1_0_client_gets_the_stream_unchunked_until_the_connection_closes(self):
        self.start_gateway(openrouter="k1")
        body = json.dumps({"model": "auto", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        with socket.create_connection(("127.0.0.1", self.gateway.port), timeout=WAIT) as client:
            client.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            received = b""
            while chunk := client.recv(65536):
                received += chunk
        head, _, payload = received.partition(b"\r\n\r\n")
        head_lines = [line.lower() for line in head.split(b"\r\n")]
        self.assertIn(b" 200 ", head_lines[0] + b" ")
        self.assertIn(b"connection: close", head_lines)
        self.assertFalse(any(line.startswith(b"transfer-encoding") for line in head_lines), head)
        self.assertIn(b"content-type: text/event-stream", head_lines)
        self.assertTrue(payload.startswith(b"data: "), "no chunk-size framing under HTTP/1.0")
        self.assertTrue(payload.endswith(b"data: [DONE]\n\n"))
        self.assertIn(b'"content": "Hel"', payload)

    def test_tool_call_deltas_count_as_content(self):
        # Cut right after the first tool-call delta: if that delta counted as nothing, the
        # gateway would fail over to groq; as content, it is relayed and the cut is reported.
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        reply = chat_stream(tool_call=True, model="or-model")
        reply.cut_after = 2  # role chunk, first tool-call delta
        openrouter.on(reply)
        self.start_gateway(openrouter="k1", groq="g1")
        stream = self.stream(tools=[{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}])
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.headers["X-FreeRide-Provider"], "openrouter")
        calls = [choice["delta"]["tool_calls"][0] for doc in stream.chunks for choice in doc["choices"]
                 if "tool_calls" in choice["delta"]]
        self.assertEqual(calls[0]["function"]["name"], "get_weather")
        self.assertEqual(self.keys_seen("groq"), [])
        self.assertEndsWithErrorThenDone(stream)

    def test_a_complete_tool_call_stream_is_relayed_whole(self):
        self.fake("openrouter").on(chat_stream(tool_call=True, model="or-model"))
        self.start_gateway(openrouter="k1")
        stream = self.stream()
        arguments = "".join(choice["delta"]["tool_calls"][0]["function"]["arguments"]
                            for doc in stream.chunks for choice in doc["choices"]
                            if "tool_calls" in choice["delta"])
        self.assertEqual(json.loads(arguments), {"city": "Paris"})
        self.assertEqual(stream.chunks[-1]["choices"][0]["finish_reason"], "tool_calls")
        self.assertEqual(stream.raw[-1], b"data: [DONE]")


class FailoverBeforeContent(StreamingTest):
    """Anything that fails before the first content is retried on the next candidate, unseen."""

    def setUp(self):
        super().setUp()
        self.openrouter, self.groq = self.fake("openrouter"), self.fake("groq")
        # The default answer, so that a rule a test adds (a groq failure) is matched first.
        self.groq.default(chat_stream(pieces=("from ", "groq"), model="groq-model", provider="groq"))

    def assertServedInvisiblyByGroq(self, stream):
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.headers["X-FreeRide-Provider"], "groq")
        self.assertEqual(stream.text, "from groq")
        self.assertEqual({doc.get("model") for doc in stream.docs}, {"groq-model"},
                         "nothing of the failed provider reaches the client")
        self.assertEqual(stream.errors, [])
        self.assertEqual(stream.raw[-1], b"data: [DONE]")
        self.assertEqual(len(self.openrouter.requests), 1)
        self.assertEqual(self.keys_seen("groq"), ["g1"])

    def test_a_429_before_the_first_chunk_fails_over_invisibly(self):
        self.openrouter.on(error("openrouter", "rate_minute"))
        self.start_gateway(openrouter="k1", groq="g1")
        self.assertServedInvisiblyByGroq(self.stream())
        cooling = [row for row in self.cooldown_file() if row["provider"] == "openrouter"]
        self.assertEqual([row["class"] for row in cooling], ["RATE_LIMIT"],
                         "classified like a non-streamed 429")

    def test_a_200_stream_whose_first_event_is_an_error_fails_over(self):
        self.openrouter.on(Reply(events=[stream_error_event("openrouter"), "data: [DONE]"]))
        self.start_gateway(openrouter="k1", groq="g1")
        self.assertServedInvisiblyByGroq(self.stream())

    def test_an_error_event_with_a_code_int_refuses_fails_over(self):
        event = 'data: ' + json.dumps({"error": {"code": "9" * 5000, "message": "odd"}})
        self.openrouter.on(Reply(events=[event, "data: [DONE]"]))
        self.start_gateway(openrouter="k1", groq="g1")
        self.assertServedInvisiblyByGroq(self.stream())

    def test_an_error_event_after_the_role_chunk_fails_over(self):
        role = chat_stream(model="or-model").events[0]
        self.openrouter.on(Reply(events=[role, stream_error_event("openrouter", 503, "overloaded")]))
        self.start_gateway(openrouter="k1", groq="g1")
        self.assertServedInvisiblyByGroq(self.stream())

    def test_a_stream_cut_after_the_role_chunk_fails_over(self):
        reply = chat_stream(model="or-model")
        reply.cut_after = 1  # the role chunk only
        self.openrouter.on(reply)
        self.start_gateway(openrouter="k1", groq="g1")
        self.assertServedInvisiblyByGroq(self.stream())

    def test_keep_alive_comments_then_an_error_event_still_fail_over(self):
        self.openrouter.on(Reply(events=[": OPENROUTER PROCESSING"] * 3
                                 + [chat_stream(model="or-model").events[0], "data:",
                                    stream_error_event("openrouter")]))
        self.start_gateway(openrouter="k1", groq="g1")
        self.assertServedInvisiblyByGroq(self.stream())

    def test_a_stall_after_the_role_chunk_past_the_first_content_timeout_fails_over(self):
        reply = chat_stream(model="or-model")
        reply.stall_after = 1
        self.openrouter.on(reply)
        self.start_gateway(env={"FREERIDE_FIRST_CONTENT_TIMEOUT": "0.5"}, openrouter="k1",
                           groq="g1")
        started = time.monotonic()
        stream = self.stream()
        self.assertLess(time.monotonic() - started, 2.5, "the first-content timeout (0.5 s) ended the wait")
        self.assertServedInvisiblyByGroq(stream)

    def test_keep_alive_comments_keep_a_slow_provider_alive_past_the_first_content_timeout(self):
        # Comments say "alive, still thinking": a slow model is not a dead one.
        events = [": OPENROUTER PROCESSING"] * 20 + chat_stream(model="or-model").events
        self.openrouter.on(Reply(events=events, event_delay=0.05))
        self.start_gateway(env={"FREERIDE_FIRST_CONTENT_TIMEOUT": "0.3",
                                "FREERIDE_IDLE_TIMEOUT": "0.5"}, openrouter="k1", groq="g1")
        stream = self.stream()
        self.assertEqual(stream.headers["X-FreeRide-Provider"], "openrouter")
        self.assertEqual(self.fakes["groq"].requests, [])

    def test_keep_alive_comments_then_silence_past_the_idle_timeout_fail_over(self):
        reply = Reply(events=[": OPENROUTER PROCESSING"] * 3, event_delay=0.05)
        reply.stall_after = 3
        self.openrouter.on(reply)
        self.start_gateway(env={"FREERIDE_IDLE_TIMEOUT": "0.5"}, openrouter="k1", groq="g1")
        started = time.monotonic()
        stream = self.stream()
        self.assertLess(time.monotonic() - started, 2.5, "the idle timeout (0.5 s) ended the wait")
        self.assertServedInvisiblyByGroq(stream)
        [result] = [e for e in self.logged("result") if e.get("provider") == "openrouter"]
        self.assertEqual(result["timeout"], "idle")

    def test_when_every_candidate_fails_before_content_the_client_gets_a_json_error(self):
        self.openrouter.on(error("openrouter", "rate_minute"))
        self.groq.on(error("groq", "rate_rpm"))
        self.start_gateway(openrouter="k1", groq="g1")
        _, response = self.open_stream()
        body = json.loads(response.read())
        self.assertEqual(response.status, 429)
        self.assertEqual(response.getheader("Content-Type"), "application/json")
        self.assertEqual(body["error"]["code"], "all_providers_exhausted")
        self.assertEqual([a["provider"] for a in body["error"]["attempts"]], ["openrouter", "groq"])


class GroqErrorEvent(StreamingTest):
    def test_a_groq_style_error_event_before_content_fails_over(self):
        groq, openrouter = self.fake("groq"), self.fake("openrouter")
        groq.on(Reply(events=[stream_error_event("groq", 500, "Internal server error")]))
        openrouter.on(chat_stream(pieces=("from ", "openrouter"), model="or-model"))
        self.start_gateway(groq="g1", openrouter="k1")
        stream = self.stream()
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.headers["X-FreeRide-Provider"], "openrouter")
        self.assertEqual(stream.text, "from openrouter")
        self.assertEqual({doc.get("model") for doc in stream.docs}, {"or-model"})
        self.assertEqual(stream.errors, [])
        self.assertEqual(len(groq.requests), 1)


class FailureAfterContent(StreamingTest):
    """Once content was sent there is no going back: the stream ends with an error event."""

    def setUp(self):
        super().setUp()
        self.openrouter, self.groq = self.fake("openrouter"), self.fake("groq")

    def test_a_cut_after_content_ends_with_an_error_event_and_done(self):
        reply = chat_stream(pieces=("Hel", "lo", " there"), model="or-model")
        reply.cut_after = 3  # role, "Hel", "lo"
        self.openrouter.on(reply)
        self.start_gateway(openrouter="k1", groq="g1")
        stream = self.stream()
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.headers["X-FreeRide-Provider"], "openrouter")
        self.assertEqual(stream.text, "Hello")
        self.assertEndsWithErrorThenDone(stream)
        self.assertEqual(self.keys_seen("groq"), [], "no failover once content was sent")
        interrupted = self.logged("interrupted")
        self.assertEqual([row["outcome"] for row in interrupted], ["cut"])

    def test_an_error_event_after_content_ends_with_an_error_event_and_done(self):
        pieces = chat_stream(pieces=("Hel", "lo"), model="or-model").events[:3]
        self.openrouter.on(Reply(events=pieces + [stream_error_event("openrouter"), "data: [DONE]"]))
        self.start_gateway(openrouter="k1", groq="g1")
        stream = self.stream()
        self.assertEqual(stream.text, "Hello")
        self.assertEndsWithErrorThenDone(stream)
        self.assertEqual(len(stream.errors), 1)
        self.assertEqual(self.keys_seen("groq"), [])

    def test_a_stall_after_content_past_the_idle_timeout_ends_with_an_error_event_and_done(self):
        reply = chat_stream(pieces=("Hel", "lo"), model="or-model")
        reply.stall_after = 2  # role, "Hel", then silence
        self.openrouter.on(reply)
        self.start_gateway(env={"FREERIDE_IDLE_TIMEOUT": "0.5"}, openrouter="k1", groq="g1")
        stream = self.stream()
        self.assertEqual(stream.text, "Hel")
        self.assertEndsWithErrorThenDone(stream)
        waited = stream.timed[-1][0] - stream.content_times()[0]
        self.assertGreater(waited, 0.4)
        self.assertLess(waited, 3, "the idle timeout, not some longer one, ended the stream")
        self.assertEqual(self.keys_seen("groq"), [])
        self.assertTrue(self.openrouter.disconnected.wait(5), "the stalled upstream was closed")


class ClientDisconnect(StreamingTest):
    def leave_after_first_content(self, first_piece):
        """Stream over a raw socket, and hang up as soon as `first_piece` arrived."""
        body = json.dumps({"model": "auto", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        client = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=WAIT)
        try:
            client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            received = b""
            while json.dumps({"content": first_piece}).encode() not in received:
                chunk = client.recv(65536)
                self.assertTrue(chunk, "the stream ended before any content")
                received += chunk
        finally:
            client.close()
        return time.monotonic()

    def test_a_client_leaving_closes_the_upstream_and_the_gateway_serves_the_next_request(self):
        openrouter = self.fake("openrouter")
        # Long enough (10 s) that only the gateway hanging up can end it within the wait below.
        openrouter.on(chat_stream(pieces=[f"w{i} " for i in range(200)], event_delay=0.05))
        self.start_gateway(openrouter="k1")
        left = self.leave_after_first_content("w0 ")
        self.assertTrue(openrouter.disconnected.wait(5), "the upstream was not closed")
        self.assertLess(time.monotonic() - left, 3)
        stream = self.stream()
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.text, "Hello")
        outcomes = [row.get("outcome") for row in self.logged("interrupted")]
        self.assertEqual(outcomes, ["client closed"])

    def test_a_client_leaving_while_the_upstream_is_silent_closes_the_upstream_at_once(self):
        # The model is "thinking": no event to write, so the gateway must watch the client
        # itself rather than notice it only when the idle timeout (5 s here) ends the read.
        openrouter = self.fake("openrouter")
        reply = chat_stream(pieces=("Hel", "lo"))
        reply.stall_after = 2  # role, "Hel", then silence
        openrouter.on(reply)
        self.start_gateway(env={"FREERIDE_IDLE_TIMEOUT": "5"}, openrouter="k1")
        left = self.leave_after_first_content("Hel")
        self.assertTrue(openrouter.disconnected.wait(1),
                        "the upstream stayed open after the client left")
        self.assertLess(time.monotonic() - left, 1.5)


class Usage(StreamingTest):
    def test_include_usage_is_honoured_when_the_client_asks(self):
        self.start_gateway(openrouter="k1")
        stream = self.stream(stream_options={"include_usage": True})
        usage_only = [doc for doc in stream.chunks if doc["choices"] == []]
        self.assertEqual(len(usage_only), 1)
        self.assertEqual(usage_only[0]["usage"]["total_tokens"], 9)
        self.assertEqual(stream.raw[-1], b"data: [DONE]")

    def test_a_usage_chunk_the_client_did_not_ask_for_is_not_forwarded(self):
        openrouter = self.fake("openrouter")
        self.start_gateway(openrouter="k1")
        stream = self.stream()
        self.assertEqual(stream.status, 200)
        self.assertEqual(stream.text, "Hello")
        self.assertEqual([doc for doc in stream.chunks if doc["choices"] == []], [])
        self.assertFalse(any("usage" in doc for doc in stream.docs), stream.docs)
        asked = openrouter.requests[0].body.get("stream_options") or {}
        self.assertIs(asked.get("include_usage"), True, "the gateway asks for usage for its own log")

    def test_the_complete_event_carries_the_streamed_tokens(self):
        self.start_gateway(openrouter="k1")
        stream = self.stream()
        self.assertEqual(stream.raw[-1], b"data: [DONE]")
        complete = self.logged("complete")
        self.assertEqual(len(complete), 1)
        self.assertEqual((complete[0]["provider"], complete[0]["tokens"]), ("openrouter", 9))
        self.assertEqual(complete[0]["req"], stream.headers["X-FreeRide-Request-Id"])


if __name__ == "__main__":
    unittest.main()
