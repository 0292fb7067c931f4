#!/usr/bin/env python3
"""FreeRide benchmark: what the gateway costs an agent, measured against going direct.

    python3 tests/bench.py            # the full run (about 2 minutes), prints the issue's table
    python3 tests/bench.py --quick    # a smoke run (about 40 s); numbers are rougher
    python3 tests/bench.py --json out.json   # also write every raw number
    python3 tests/bench.py --page     # the same, with a status page's event stream open

Three processes on loopback, so that each one's CPU time and memory can be read from /proc:

  upstream  a fast fake provider (`bench.py --upstream`, started by the benchmark): one thread,
            one epoll loop, HTTP/1.1 keep-alive, canned chat / embeddings / 429 answers with
            Content-Length, and SSE streams whose content events carry the monotonic time at
            which they were written ("x_sent"). A streamed chat request with no bench_ fields
            gets the canned chat answer as a provider streams it (role, one event per token,
            finish, the usage chunk only if stream_options.include_usage asked for it,
            [DONE]), all at once, as the plain answer is: that is how the gateway now asks
            for a plain request (issue 16), so plain through the gateway vs plain direct
            shows what assembling costs. /models lists every id it serves (the gateway's live
            catalogs stay on). It serves plain HTTP and HTTPS (the test certificate in
            tests/data), and two more plain ports for the fault phase ("hangs", "healthy").
            It must not be the bottleneck: the direct runs show how fast it is, and a warning
            is printed if direct is not far faster than through the gateway.
  gateway   `python3 -m freeride serve --port 0`, FREERIDE_HOME in a temp dir, providers
            groq (chat) and nvidia (embeddings) pointed at the fake, FREERIDE_LOCAL=0, the
            documented free limits lifted (FREERIDE_LIMITS); a second one points at the
            fake's HTTPS port and trusts its certificate through FREERIDE_CA_BUNDLE; a third
            one, for the fault phase, has groq on "hangs" and nvidia on "healthy".
  client    this process: a closed-loop load generator on one epoll loop (N keep-alive
            connections, each sending its next request as soon as its answer is complete),
            with a minimal HTTP/1.1 reader. The same client code measures direct and gateway
            runs, which are interleaved (direct, gateway, gateway, direct, ...) so that drift
            on a shared 2-core machine hits both alike. One epoll loop rather than a thread
            per connection, and raw sockets rather than http.client: on 2 cores the client
            competes with the gateway for CPU, and the cheaper it is the more the numbers
            say about the gateway.

How each figure is taken:

  added latency      gateway p50 - direct p50 at concurrency 1 (and p90/p99 shown)
  throughput         requests/s of the closed loop at concurrency 8 and 64
  gateway CPU        utime+stime of the gateway process (/proc/PID/stat, every thread,
                     the events writer included) over a run, divided by its requests; for
                     plain chat (assembled from a stream upstream), the same answer streamed
                     to the client, and embeddings. How the gateway's plain requests reached
                     the fake (plain or streamed, with include_usage) is counted and printed,
                     and one assembled answer is checked against the plain one at start
  HTTPS upstream     the same chat runs through the HTTPS gateway, interleaved with the plain
                     one; CPU per request compared, and upstream TLS handshakes counted
  time to first byte a stream whose first content event is written at once: arrival of that
                     event, gateway p50 - direct p50
  relay delay        for every content event, arrival time - x_sent (one clock, CLOCK_MONOTONIC,
                     for both processes); the figure is gateway pX - direct p50, i.e. what the
                     gateway adds on top of the usual cost of the fake and the client
  100 streams        100 streams open at once, each 60 events 50 ms apart, their starts spread
                     over one gap (independent streams, not one burst of 100 events every 50
                     ms); all must end with [DONE]; relay delay as above; the gateway's RSS
                     while they are open, minus its RSS before, divided by 100, is the memory
                     per open stream
  failover           the fake answers 429 (retry-after 1 s) to the first request for each model
                     named fail-N and 200 afterwards; so a request for a never-seen fail-N model
                     costs exactly one failed attempt and one failover to the next key (Groq's
                     429 cools only that model on that key, so the next fail-N starts afresh).
                     Interleaved with requests for never-seen ok-N models (same route, same
                     resolution cost, no 429). Added = p50(fail) - p50(ok). The intrinsic part,
                     one more round trip to the upstream, is shown beside it. The names come in
                     through GROQ_FREE_MODELS_OVERRIDE and the fake's catalog lists them; the
                     fake counts the names it receives, so a name resolved to another model
                     would show (ok-N once each, fail-N twice each)
  yield              (issue 15) in-process fakes with a fixed free budget per key (Groq and
                     Mistral report what is left in headers, OpenRouter is counted), spent by
                     sequential and concurrent requests: upstream calls per answer and the
                     share of the capacity served
  hung provider      (issue 16) groq on "hangs": for fault- models it hangs on 30 % of its
                     requests (the 2nd, 5th, 8th of every 10 per model), in turn before the
                     head, after the head, after some content, holding the connection until
                     the gateway drops it; otherwise it answers like "healthy": first content
                     after 300 ms, 20 events 20 ms apart (a plain request: the whole answer
                     after 680 ms). nvidia on "healthy", listed second; every deadline 1 s
                     (FREERIDE_FIRST_BYTE_TIMEOUT, _FIRST_CONTENT_, _IDLE_). Sequential and
                     concurrency 8, plain and streamed, one model each so that each run starts
                     with the hanging provider not cooled (a timeout cools it: UPSTREAM
                     backoff). The same request sent directly to "healthy" runs at the same
                     time as the gateway's. Printed: p50/p95/max of the total time and of the
                     first token (a plain answer's first byte), which provider served how many,
                     how many upstream attempts each got, which hangs were met, and failures
                     (a stream cut after its content reached the client cannot fail over)
  start              from spawning `python3 -m freeride serve` to the first 200 answer of a
                     chat request: the median of three gateways whose bytecode was cached (in a
                     temp dir, PYTHONPYCACHEPREFIX, as an installed FreeRide's is); the first
                     start, which compiles freeride.py, and a bare `python3 -c pass` are shown
                     beside it
  RSS                VmRSS after start (idle), VmHWM at the end (peak)

The end of the output says how much CPU other processes took meanwhile: on a shared machine
the numbers are noisier. Standard library only. Everything binds 127.0.0.1; every loop is
bounded; every process and socket is closed at the end.
"""

import argparse
import heapq
import json
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
CERT = ROOT / "tests" / "data" / "localhost-cert.pem"
KEY = ROOT / "tests" / "data" / "localhost-key.pem"

CHAT_MODEL = "llama-3.3-70b-versatile"   # Groq's, served by the groq route
EMBED_MODEL = "baai/bge-m3"              # NVIDIA's, 1024 dimensions
EMBED_DIM = 1024
HOST = "127.0.0.1"


# =============================================================================================
# the fake upstream (its own process: `bench.py --upstream`)
# =============================================================================================

def _chat_body():
    return json.dumps({
        "id": "chatcmpl-bench0123456789abcdef", "object": "chat.completion", "created": 1735689600,
        "model": CHAT_MODEL, "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": "Hello! How can I help you today?"},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"queue_time": 0.01, "prompt_tokens": 42, "prompt_time": 0.002,
                  "completion_tokens": 9, "completion_time": 0.004, "total_tokens": 51,
                  "total_time": 0.006},
        "x_groq": {"id": "req_bench"}}).encode()


def _embed_body():
    seed, vector = 12345, []
    for _ in range(EMBED_DIM):  # deterministic values with real embeddings' precision
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        vector.append(round(seed / 2 ** 31 - 0.5, 9) / 8)
    return json.dumps({"object": "list", "model": EMBED_MODEL,
                       "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                       "usage": {"prompt_tokens": 11, "total_tokens": 11}}).encode()


RATE_LIMIT_BODY = json.dumps({"error": {
    "message": "Rate limit reached for model in organization `org_bench` service tier "
               "`on_demand` on requests per minute (RPM): Limit 30, Used 30, Requested 1. "
               "Please try again in 1s.",
    "type": "requests", "code": "rate_limit_exceeded"}}).encode()

GROQ_HEADERS = ("x-ratelimit-limit-requests: 1000\r\nx-ratelimit-limit-tokens: 12000\r\n"
                "x-ratelimit-remaining-requests: 987\r\nx-ratelimit-remaining-tokens: 11800\r\n"
                "x-ratelimit-reset-requests: 1m26.4s\r\nx-ratelimit-reset-tokens: 825ms\r\n")


def _answer(status, body, extra=""):
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n" + GROQ_HEADERS.encode() + b"\r\n")
STREAM_PREFIX = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":'
                 b'1735689600,"model":"' + CHAT_MODEL.encode() + b'","choices":[{"index":0,')
ROLE_EVENT = STREAM_PREFIX + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
FINISH_EVENT = STREAM_PREFIX + b'"delta":{},"finish_reason":"stop"}]}\n\n'
# Sent only when the request asked for it (stream_options.include_usage), as providers do.
USAGE_EVENT = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":'
               b'1735689600,"model":"' + CHAT_MODEL.encode() + b'","choices":[],"usage":'
               b'{"prompt_tokens":42,"completion_tokens":9,"total_tokens":51}}\n\n')
DONE_EVENT = b"data: [DONE]\n\n"
STREAM_END = b"0\r\n\r\n"
# The canned chat answer as a provider streams it: one event per token (its 9 completion
# tokens), all written at once, as the plain answer is. The gateway now asks for a plain
# request this way ("stream": true, "stream_options": {"include_usage": true}) and assembles
# it; so a plain request costs the gateway an assembly, a direct one does not.
ANSWER_TOKENS = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")


def _answer_stream(usage):
    events = [ROLE_EVENT] + [STREAM_PREFIX + b'"delta":{"content":' + json.dumps(t).encode()
                             + b'},"finish_reason":null}]}\n\n' for t in ANSWER_TOKENS]
    events += [FINISH_EVENT] + ([USAGE_EVENT] if usage else []) + [DONE_EVENT]
    return STREAM_HEAD + b"".join(_chunk(e) for e in events) + STREAM_END


ANSWER_STREAM, ANSWER_STREAM_USAGE = _answer_stream(False), _answer_stream(True)


def content_event(n):
    return (STREAM_PREFIX + b'"delta":{"content":"tok%d "},"finish_reason":null}],"x_sent":%.7f}\n\n'
            % (n, time.monotonic()))


# The fault phase: a provider that hangs on HANG_SHARE of its requests for `fault-` models
# (the 2nd, 5th and 8th of every 10 for each model), at each stage in turn.
HANG_EVERY = (1, 4, 7)
HANG_SHARE = len(HANG_EVERY) / 10
HANG_MODES = ("before_head", "after_head", "after_content")
# A realistic answer from the healthy one (and from the other when it does not hang).
REALISTIC = {"bench_first_ms": 300, "bench_events": 20, "bench_gap_ms": 20}
FAULT_DEADLINE_S = 1
MAX_PAIRS = 150  # failover pairs of the full run: the fake lists that many fail-N / ok-N


def served_ids():
    """Every chat model id the fake answers, as its /models lists them."""
    return ([CHAT_MODEL] + [f"{kind}-{i}" for i in range(MAX_PAIRS) for kind in ("fail", "ok")]
            + fault_models())


def fault_models():
    return [f"fault-{kind}-{c}" for kind in ("plain", "streamed") for c in (1, 8)]


HEAD_END = re.compile(rb"\r\n\r\n")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
MODEL = re.compile(rb'"model"\s*:\s*"([^"]*)"')
STREAMED = re.compile(rb'"stream"\s*:\s*true')
USAGE_ASKED = re.compile(rb'"include_usage"\s*:\s*true')


class UpstreamConn:
    __slots__ = ("sock", "kind", "port", "inbuf", "out", "handshaking", "streaming", "writing",
                 "closed")

    def __init__(self, sock, kind, port):
        self.sock, self.kind, self.port = sock, kind, port
        self.inbuf, self.out = bytearray(), bytearray()
        self.handshaking = kind == "https"
        self.streaming = self.writing = self.closed = False


class Upstream:
    """One thread, one epoll loop: answers every request from canned bytes.

    Four plain listeners and one TLS: "http" and "https" (the load runs), "hangs" and
    "healthy" (the fault phase: one provider that hangs on a share of its requests, one that
    always answers after a realistic delay). Answers that take time (streams with gaps, a
    plain answer after a delay) run on timers, never by blocking the loop.
    """

    def __init__(self, tls_context):
        self.tls = tls_context
        self.selector = selectors.DefaultSelector()
        self.timers, self.seq = [], 0
        self.stats = {"connections": {"http": 0, "https": 0, "hangs": 0, "healthy": 0},
                      "requests": 0, "rate_limited": 0, "streams": 0,
                      # chat requests by shape: what the gateway sends upstream
                      "chat": {"plain": 0, "streamed": 0, "include_usage": 0},
                      "models": {"fail-": 0, "ok-": 0, "fault-": 0, CHAT_MODEL: 0, "other": 0},
                      "hangs": {"requests": 0, **{m: 0 for m in HANG_MODES}},
                      "healthy": {"requests": 0}}
        self.seen_fail = set()
        self.fault_seen = {}  # model -> requests for it on the hangs port
        self.chat = _answer(200, _chat_body(), GROQ_HEADERS)
        self.embed = _answer(200, _embed_body())
        self.limited = _answer(429, RATE_LIMIT_BODY, "retry-after: 1\r\n")
        self.models = _answer(200, json.dumps({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "bench", "context_window": 131072}
            for m in served_ids()] + [{"id": EMBED_MODEL, "object": "model", "owned_by": "bench"}]
        }).encode())
        self.ports = {}
        for kind in ("http", "https", "hangs", "healthy"):
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, 0))
            listener.listen(4096)
            listener.setblocking(False)
            self.ports[kind] = listener.getsockname()[1]
            self.selector.register(listener, selectors.EVENT_READ, ("listen", kind))

    def run(self):
        self.selector.register(sys.stdin, selectors.EVENT_READ, ("stdin", None))
        while True:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, mask in self.selector.select(timeout):
                what, item = key.data
                if what == "listen":
                    self.accept(key.fileobj, item)
                elif what == "stdin":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return  # the benchmark is gone (or done): so are we
                else:
                    if mask & selectors.EVENT_WRITE:
                        self.flush(item)
                    if mask & selectors.EVENT_READ and not item.closed:
                        self.read(item)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, conn, step, state = heapq.heappop(self.timers)
                step(conn, state)

    def later(self, seconds, conn, step, state):
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + seconds, self.seq, conn, step, state))

    def accept(self, listener, port):
        kind = "https" if port == "https" else "http"
        for _ in range(64):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kind == "https":
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            self.stats["connections"][port] += 1
            conn = UpstreamConn(sock, kind, port)
            self.selector.register(sock, selectors.EVENT_READ, ("conn", conn))
            if kind == "https":
                self.read(conn)

    def close(self, conn):
        if not conn.closed:
            conn.closed = True
            try:
                self.selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            conn.sock.close()

    def read(self, conn):
        if conn.handshaking:
            try:
                conn.sock.do_handshake()
                conn.handshaking = False
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                self.want_write(conn, True)
                return
            except OSError:
                self.close(conn)
                return
        while True:
            try:
                data = conn.sock.recv(262144)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                self.close(conn)
                return
            if not data:
                self.close(conn)  # a hung answer ends here: the gateway gave up on it
                return
            conn.inbuf += data
            if conn.kind == "http" and len(data) < 262144:
                break
        self.serve(conn)

    def serve(self, conn):
        buf = conn.inbuf
        while not conn.streaming:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end])
            m = CONTENT_LENGTH.search(head)
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) < total:
                break
            body = bytes(buf[end + 4:total])
            del buf[:total]
            self.stats["requests"] += 1
            line = head[:head.find(b"\r\n")].split(b" ")
            path = line[1].split(b"?")[0] if len(line) > 1 else b"/"
            self.answer(conn, path, body)
        self.flush(conn)

    def answer(self, conn, path, body):
        if path.endswith(b"/chat/completions"):
            self.chat_answer(conn, body)
        elif path.endswith(b"/embeddings"):
            conn.out += self.embed
        elif path.endswith(b"/models"):
            conn.out += self.models
        elif path == b"/__stats":
            conn.out += _answer(200, json.dumps(self.stats).encode())
        else:
            conn.out += _answer(404, b'{"error":{"message":"not found","code":404}}')

    def chat_answer(self, conn, body):
        m = MODEL.search(body)
        model = m.group(1) if m else b""
        streamed = STREAMED.search(body) is not None
        usage = streamed and USAGE_ASKED.search(body) is not None
        shape = self.stats["chat"]
        shape["streamed" if streamed else "plain"] += 1
        shape["include_usage"] += usage
        names = self.stats["models"]
        prefix = next((p for p in ("fail-", "ok-", "fault-") if model.startswith(p.encode())),
                      CHAT_MODEL if model == CHAT_MODEL.encode() else "other")
        names[prefix] += 1
        if conn.port in ("hangs", "healthy") and prefix == "fault-":
            self.stats[conn.port]["requests"] += 1
            if conn.port == "hangs":
                n = self.fault_seen.get(model, 0)
                self.fault_seen[model] = n + 1
                if n % 10 in HANG_EVERY:
                    hung = sum(self.stats["hangs"][k] for k in HANG_MODES)
                    self.hang(conn, HANG_MODES[hung % len(HANG_MODES)], streamed)
                    return
        if model.startswith(b"fail-") and model not in self.seen_fail or model == b"always-429":
            self.seen_fail.add(model)
            self.stats["rate_limited"] += 1
            conn.out += self.limited
        elif b'"bench_' in body:  # a stream (or a plain answer) shaped by the request
            doc = json.loads(body)
            if streamed:
                self.start_stream(conn, doc, usage)
            else:
                wait = (float(doc.get("bench_first_ms", 0)) + float(doc.get("bench_gap_ms", 0))
                        * max(0, int(doc.get("bench_events", 1)) - 1)) / 1000
                conn.streaming = True  # busy until the answer is written
                self.later(wait, conn, self.plain_step, None)
        elif streamed:
            conn.out += ANSWER_STREAM_USAGE if usage else ANSWER_STREAM
        else:
            conn.out += self.chat

    def hang(self, conn, mode, streamed):
        """Accept the request and never finish the answer: nothing at all, only the head, or
        the head and some content; the connection is held until the other side closes it."""
        self.stats["hangs"][mode] += 1
        conn.streaming = True  # nothing more is read from this connection
        if mode == "before_head":
            return
        if streamed:
            conn.out += STREAM_HEAD
            if mode == "after_content":
                conn.out += (_chunk(ROLE_EVENT) + _chunk(content_event(0))
                             + _chunk(content_event(1)))
        else:
            head_end = self.chat.find(b"\r\n\r\n") + 4
            conn.out += self.chat[:head_end]
            if mode == "after_content":
                conn.out += self.chat[head_end:head_end + (len(self.chat) - head_end) // 2]

    def plain_step(self, conn, _state):
        if conn.closed:
            return
        conn.out += self.chat
        conn.streaming = False
        self.flush(conn)
        if conn.inbuf:
            self.serve(conn)

    def start_stream(self, conn, doc, usage):
        """The role chunk at once; the first content event after bench_first_ms (at once by
        default), then one content event every bench_gap_ms; usage if it was asked for."""
        events = max(1, int(doc.get("bench_events", 5)))
        gap = max(0.0, float(doc.get("bench_gap_ms", 0))) / 1000
        first = max(0.0, float(doc.get("bench_first_ms", 0))) / 1000
        self.stats["streams"] += 1
        conn.streaming = True
        conn.out += STREAM_HEAD + _chunk(ROLE_EVENT)
        if first:
            self.flush(conn)
            self.later(first, conn, self.stream_step, [0, events, gap, usage])
            return
        conn.out += _chunk(content_event(0))
        self.stream_step(conn, [1, events, gap, usage], first=True)

    def stream_step(self, conn, state, first=False):
        if conn.closed:
            return
        sent, events, gap, usage = state
        if not first:
            conn.out += _chunk(content_event(sent))
            sent += 1
        if sent >= events:
            conn.out += (_chunk(FINISH_EVENT) + (_chunk(USAGE_EVENT) if usage else b"")
                         + _chunk(DONE_EVENT) + STREAM_END)
            conn.streaming = False
            self.flush(conn)
            if conn.inbuf:
                self.serve(conn)
            return
        self.flush(conn)
        self.later(gap, conn, self.stream_step, [sent, events, gap, usage])

    def flush(self, conn):
        while conn.out and not conn.closed:
            try:
                n = conn.sock.send(conn.out)
            except (BlockingIOError, ssl.SSLWantWriteError):
                self.want_write(conn, True)
                return
            except ssl.SSLWantReadError:
                return
            except OSError:
                self.close(conn)
                return
            del conn.out[:n]
        if conn.writing and not conn.closed:
            self.want_write(conn, False)

    def want_write(self, conn, on):
        conn.writing = on
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        self.selector.modify(conn.sock, events, ("conn", conn))


def upstream_main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    upstream = Upstream(context)
    print(json.dumps(upstream.ports), flush=True)
    upstream.run()
    return 0


# =============================================================================================
# the client: a closed-loop load generator and a stream reader, on one epoll loop
# =============================================================================================

def post(path, doc):
    body = json.dumps(doc, separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: freeride-bench\r\n"
            f"Authorization: Bearer any\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def chat_request(model=CHAT_MODEL, **extra):
    return post("/v1/chat/completions", {
        "model": model, "max_tokens": 64, "temperature": 0.2,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Say hello in one short sentence."}],
        **extra})


def embed_request():
    return post("/v1/embeddings", {"model": EMBED_MODEL,
                                   "input": "The quick brown fox jumps over the lazy dog."})


def exchange_once(port, request, limit=10.0):
    """(status, head, body) of one request on a fresh connection."""
    sock = connect(port)
    try:
        sock.settimeout(limit)
        sock.sendall(request)
        buf = bytearray()
        while not complete_response(buf):
            data = sock.recv(65536)
            if not data:
                break
            buf += data
    finally:
        sock.close()
    end = buf.find(b"\r\n\r\n")
    return int(buf[9:12] or 0), bytes(buf[:end]), bytes(buf[end + 4:])


def stream_request(events, gap_ms):
    return chat_request(stream=True, bench_events=events, bench_gap_ms=gap_ms)


def connect(port):
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.I)
CHUNKED_END = b"\r\n0\r\n\r\n"


def complete_response(buf):
    """(status, bytes used, chunked) of the first whole answer in buf (a Content-Length one,
    or a chunked one such as a stream, up to its last chunk), or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    m = CONTENT_LENGTH.search(buf, 0, end + 2)
    if m is None and CHUNKED.search(buf, 0, end + 2):
        last = buf.find(CHUNKED_END, end + 2)  # SSE data holds no CRLF: no false end
        return None if last < 0 else (int(buf[9:12]), last + len(CHUNKED_END), True)
    total = end + 4 + (int(m.group(1)) if m else 0)
    if len(buf) < total:
        return None
    return int(buf[9:12]), total, False


class Run:
    """What one load run measured."""

    def __init__(self, latencies, elapsed, errors, statuses):
        self.latencies = sorted(latencies)
        self.n = len(latencies)
        self.elapsed = elapsed
        self.errors = errors
        self.statuses = statuses

    @staticmethod
    def merge(runs):
        merged = Run([x for r in runs for x in r.latencies], sum(r.elapsed for r in runs),
                     sum(r.errors for r in runs), {})
        for r in runs:
            for k, v in r.statuses.items():
                merged.statuses[k] = merged.statuses.get(k, 0) + v
        return merged

    @property
    def rps(self):
        return self.n / self.elapsed if self.elapsed else 0.0

    def pct(self, p):
        return percentile(self.latencies, p)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def load(port, request, concurrency, duration, socks=None):
    """Closed loop: `concurrency` keep-alive connections, each sending its next request as
    soon as the answer to the last one is complete, for `duration` seconds."""
    selector = selectors.DefaultSelector()
    owned = socks is None
    socks = socks or [connect(port) for _ in range(concurrency)]
    state = {}
    latencies, statuses, errors = [], {}, 0
    clock = time.perf_counter
    start = clock()
    end = start + duration
    last = start
    for sock in socks:
        state[sock] = [bytearray(), clock()]
        sock.sendall(request)
        selector.register(sock, selectors.EVENT_READ)
    inflight = len(socks)
    give_up = end + 30
    while inflight:
        ready = selector.select(timeout=1.0)
        if not ready and clock() > give_up:
            errors += inflight
            break
        for key, _ in ready:
            sock = key.fileobj
            st = state[sock]
            try:
                data = sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                errors += 1
                inflight -= 1
                selector.unregister(sock)
                continue
            buf = st[0]
            buf += data
            while True:
                done = complete_response(buf)
                if done is None:
                    break
                now = clock()
                status, used, chunked = done
                if chunked and status == 200 and buf.rfind(b"data: [DONE]", 0, used) < 0:
                    status = "cut"  # a stream that ended without [DONE]
                del buf[:used]
                latencies.append(now - st[1])
                statuses[status] = statuses.get(status, 0) + 1
                last = now
                if now < end:
                    st[1] = now
                    sock.sendall(request)
                else:
                    inflight -= 1
                    selector.unregister(sock)
    selector.close()
    if owned:
        for sock in socks:
            sock.close()
    errors += sum(n for s, n in statuses.items() if s != 200)
    return Run(latencies, last - start, errors, statuses)


X_SENT = re.compile(rb'"x_sent":([0-9.]+)')


class Stream:
    """One streamed request being read: arrival of each content event against its x_sent."""

    def __init__(self, sock, request):
        self.sock, self.request = sock, request
        self.buf = b""
        self.sent = self.first = None
        self.delays = []
        self.done = self.complete = False
        self.status = None

    def feed(self, data, now):
        self.buf += data
        if self.status is None and b"\r\n\r\n" in self.buf:
            self.status = int(self.buf[9:12])
        *events, self.buf = self.buf.split(b"\n\n")
        for event in events:
            m = X_SENT.search(event)
            if m:
                self.delays.append(now - float(m.group(1)))
                if self.first is None:
                    self.first = now
            elif b"[DONE]" in event:
                self.done = True
        if self.done and self.buf.endswith(b"0\r\n\r\n"):
            self.complete = True
        elif self.status is not None and self.status != 200 and complete_response(self.buf):
            self.complete = True
        return self.complete


def run_streams(streams, timeout, stagger=0.0):
    """Send every stream's request (the i-th `stagger` * i seconds after the first) and read
    them all to their end (or timeout)."""
    selector = selectors.DefaultSelector()
    start = time.monotonic()
    waiting = list(streams)
    for s in streams:
        s.sock.setblocking(True)
    open_ = len(streams)
    give_up = start + timeout + stagger * len(streams)
    while open_ and time.monotonic() < give_up:
        while waiting and start + stagger * (len(streams) - len(waiting)) <= time.monotonic():
            s = waiting.pop(0)
            s.sent = time.monotonic()
            s.sock.sendall(s.request)
            selector.register(s.sock, selectors.EVENT_READ, s)
        wait = 0.5
        if waiting:
            wait = max(0.0, start + stagger * (len(streams) - len(waiting)) - time.monotonic())
        for key, _ in selector.select(timeout=wait):
            s = key.data
            try:
                data = s.sock.recv(262144)
            except OSError:
                data = b""
            now = time.monotonic()
            if not data or s.feed(data, now):
                open_ -= 1
                selector.unregister(s.sock)
    selector.close()
    return streams


PROVIDER_HEADER = re.compile(rb"\r\nx-freeride-provider:[ \t]*([^\r\n]*)", re.I)


def timed_exchanges(sides, concurrency, count, limit=20.0):
    """The fault phase's client. For each side (name -> (port, request)): `concurrency`
    keep-alive connections send `count` requests in all, each connection its next one as soon
    as its last answer is whole; the sides run at the same time on one epoll loop, so that
    drift hits them alike. A request gets `limit` seconds, then counts as failed (its
    connection is replaced). Returns name -> one record per request: total and first-token
    seconds (for a plain answer, its first byte), status, serving provider, outcome."""
    selector = selectors.DefaultSelector()
    clock = time.monotonic
    records = {name: [] for name in sides}
    left = {name: count for name in sides}

    def send(name, sock=None):
        port, request = sides[name]
        left[name] -= 1
        if sock is None:
            sock = connect(port)
            sock.setblocking(True)
        st = {"name": name, "sock": sock, "buf": bytearray(), "sent": clock(), "head": None,
              "first": None}
        sock.sendall(request)
        selector.register(sock, selectors.EVENT_READ, st)

    def finish(st, now, done):
        buf, name = st["buf"], st["name"]
        selector.unregister(st["sock"])
        outcome = "client gave up"
        if done is not None:
            status, used, chunked = done
            body = bytes(buf[:used])
            outcome = f"status {status}" if status != 200 else \
                "ok" if not chunked else \
                "cut" if b'"error"' in body or b"data: [DONE]" not in body else "ok"
        m = PROVIDER_HEADER.search(buf, 0, max(0, buf.find(b"\r\n\r\n")) + 2)
        first = st["head"] if done is not None and not done[2] else st["first"]  # plain: head
        records[name].append({"total": now - st["sent"],
                              "first": None if first is None else first - st["sent"],
                              "outcome": outcome,
                              "provider": m.group(1).decode() if m else None})
        sock = st["sock"] if outcome == "ok" else None
        if sock is None:
            st["sock"].close()
        if left[name] > 0:
            send(name, sock)
        elif sock is not None:
            sock.close()

    for name in sides:
        for _ in range(min(concurrency, count)):
            send(name)
    give_up = clock() + count * limit  # bounded whatever happens
    while selector.get_map() and clock() < give_up:
        ready = selector.select(timeout=0.25)
        now = clock()
        for key, _ in ready:
            st = key.data
            try:
                data = st["sock"].recv(262144)
            except OSError:
                data = b""
            if not data:
                finish(st, now, None)
                continue
            buf = st["buf"]
            buf += data
            if st["head"] is None and b"\r\n\r\n" in buf:
                st["head"] = now
            if st["first"] is None and X_SENT.search(buf):
                st["first"] = now  # a stream's first content event
            done = complete_response(buf)
            if done is not None:
                finish(st, now, done)
        for key in list(selector.get_map().values()):
            if now - key.data["sent"] > limit:
                finish(key.data, now, None)
    for key in list(selector.get_map().values()):
        key.data["sock"].close()
    selector.close()
    return records


# =============================================================================================
# processes: the fake, the gateways, and what /proc says about them
# =============================================================================================

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of every thread of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kb(pid):
    """(VmRSS, VmHWM) in kB."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1])
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


def child_env(extra):
    """This environment minus every proxy, FreeRide and provider variable, plus extra."""
    drop = ("FREERIDE_", "GROQ_", "NVIDIA_", "OPENROUTER_", "CLOUDFLARE_", "HF_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(drop) and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "pythondontwritebytecode")}
    env.update(extra)
    return env


class FakeProcess:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--upstream"], cwd=ROOT,
                                     env=child_env({}), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.ports = json.loads(self.proc.stdout.readline())
        self.pid = self.proc.pid
        self._stats_sock = connect(self.ports["http"])

    def stats(self):
        self._stats_sock.sendall(f"GET /__stats HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        buf = bytearray()
        while not complete_response(buf):
            buf += self._stats_sock.recv(65536)
        return json.loads(bytes(buf[buf.find(b"\r\n\r\n") + 4:]))

    def close(self):
        self._stats_sock.close()
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


UNLIMITED = json.dumps({p: {"requests/minute": 10 ** 9, "requests/day": 10 ** 9}
                        for p in ("groq", "nvidia")})


class GatewayProcess:
    """`python3 -m freeride serve --port 0` in its own FREERIDE_HOME; start time measured
    from the spawn to the first 200 answer."""

    def __init__(self, upstream_url, pycache, extra=None):
        self.home = tempfile.mkdtemp(prefix="freeride-bench-")
        self.stderr = open(Path(self.home) / "stderr.log", "w+")
        # Live catalogs stay on (the default): the fake's /models lists every id it serves,
        # so names reach it as sent. No local server is probed. The documented free limits
        # (Groq's 30 requests a minute per model and key, NVIDIA's 40), which a gateway counts
        # where the provider's headers do not say, are lifted: the fake has none.
        env = child_env({"FREERIDE_HOME": self.home, "FREERIDE_PROVIDERS": "groq,nvidia",
                         "FREERIDE_LOCAL": "0", "FREERIDE_LIMITS": UNLIMITED,
                         # Groq's module no longer lists CHAT_MODEL: named here, groq serves
                         # it from the first request, not only once its catalog is fetched.
                         "GROQ_FREE_MODELS_OVERRIDE": CHAT_MODEL,
                         "GROQ_API_KEY": '["bench-a","bench-b"]', "GROQ_BASE_URL": upstream_url,
                         "NVIDIA_API_KEY": "bench", "NVIDIA_BASE_URL": upstream_url,
                         "PYTHONPYCACHEPREFIX": pycache, **(extra or {})})
        started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "freeride", "serve", "--port", "0"],
                                     cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.pid = self.proc.pid
        self.port = None
        for _ in range(100):
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"OPENAI_API_BASE=http://[^:]+:(\d+)/v1", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            errors = self.errors()
            self.close()
            raise RuntimeError("the gateway did not start: " + errors)
        self.drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self.drain.start()
        sock = connect(self.port)
        run = load(self.port, chat_request(), 1, 0, socks=[sock])
        self.start_seconds = time.perf_counter() - started
        sock.close()
        if run.statuses != {200: 1}:
            errors = self.errors()
            self.close()
            raise RuntimeError(f"the gateway's first answer was {run.statuses}: " + errors)

    def errors(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-2000:]

    def cpu(self):
        return cpu_seconds(self.pid)

    def memory(self):
        return memory_kb(self.pid)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        if getattr(self, "page", None) is not None:  # --page: its stream ended with the gateway
            self.page.close()
        shutil.rmtree(self.home, ignore_errors=True)


# =============================================================================================
# the scenarios
# =============================================================================================

class Bench:
    def __init__(self, quick):
        self.quick = quick
        self.raw = {}
        self.fake = self.gw = self.tls_gw = None

    def log(self, text):
        print(text, flush=True)

    # -- set-up -------------------------------------------------------------------------------
    def start(self):
        self.fake = FakeProcess()
        self.http_url = f"http://{HOST}:{self.fake.ports['http']}/v1"
        self.https_url = f"https://{HOST}:{self.fake.ports['https']}/v1"
        # Bytecode is cached outside the checkout, as an installed FreeRide's is; the first
        # gateway compiles it (a cold start), the next ones load it.
        self.pycache = tempfile.mkdtemp(prefix="freeride-bench-pyc-")
        failover_models = ",".join([CHAT_MODEL] + [f"{kind}-{i}" for i in
                                                   range(self.failover_pairs())
                                                   for kind in ("fail", "ok")])
        starts = []
        for _ in range(3):  # throwaway gateways: only their start time counts
            g = GatewayProcess(self.http_url, self.pycache)
            starts.append(g.start_seconds)
            g.close()
        self.gw = GatewayProcess(self.http_url, self.pycache,
                                 {"GROQ_FREE_MODELS_OVERRIDE": failover_models})
        starts.append(self.gw.start_seconds)
        self.tls_gw = GatewayProcess(self.https_url, self.pycache,
                                     {"FREERIDE_CA_BUNDLE": str(CERT)})
        bare = []
        for _ in range(3):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=child_env({}), check=True)
            bare.append(time.perf_counter() - began)
        time.sleep(0.3)
        self.raw["cold_start_s"], warm = starts[0], sorted(starts[1:])
        self.raw["start_s"] = warm
        self.raw["bare_python_s"] = sorted(bare)[1]
        self.raw["idle_rss_kb"] = self.gw.memory()[0]
        self.raw["tls_start_s"] = self.tls_gw.start_seconds
        self.check_assembly()
        self.log(f"gateway start to first served request: {warm[1] * 1000:.0f} ms (median of "
                 f"{', '.join(f'{s * 1000:.0f}' for s in warm)}; the first start, compiling "
                 f"freeride.py, {starts[0] * 1000:.0f} ms; HTTPS upstream "
                 f"{self.tls_gw.start_seconds * 1000:.0f} ms; `python3 -c pass` alone "
                 f"{self.raw['bare_python_s'] * 1000:.0f} ms); idle RSS "
                 f"{self.raw['idle_rss_kb'] / 1024:.1f} MB")

    def check_assembly(self):
        """One plain chat request through the gateway: the answer must be the fake's plain
        answer (assembled from its stream by a gateway that asks for one)."""
        before = self.fake.stats()["chat"]
        status, _, body = exchange_once(self.gw.port, chat_request())
        after = self.fake.stats()["chat"]
        want = json.loads(_chat_body())
        try:
            doc = json.loads(body)
            got = (doc["choices"][0]["message"]["content"], doc["choices"][0]["finish_reason"],
                   {k: doc.get("usage", {}).get(k) for k in ("prompt_tokens", "completion_tokens",
                                                             "total_tokens")})
        except (ValueError, KeyError, IndexError, TypeError):
            got = None
        expected = (want["choices"][0]["message"]["content"], "stop",
                    {k: want["usage"][k] for k in ("prompt_tokens", "completion_tokens",
                                                   "total_tokens")})
        how = ("streamed with include_usage" if after["include_usage"] > before["include_usage"]
               else "streamed" if after["streamed"] > before["streamed"] else "plain")
        ok = status == 200 and got == expected
        self.raw["assembly_check"] = {"upstream_request": how, "answer_matches": ok}
        self.log(f"a plain chat request went upstream {how}; the gateway's answer "
                 + ("matches the plain one (content, finish reason, usage)" if ok else
                    f"DIFFERS from the plain one: status {status}, {body[:300]!r}"))

    def close(self):
        for process in (getattr(self, "fault_gw", None), self.tls_gw, self.gw, self.fake):
            if process is not None:
                process.close()
        if getattr(self, "pycache", None):
            shutil.rmtree(self.pycache, ignore_errors=True)

    def failover_pairs(self):
        return 40 if self.quick else MAX_PAIRS

    def open_pages(self):
        """--page: a status page open on each gateway for the whole run, as a browser tab is:
        its event stream read (and dropped) by a thread. Its idle cost is measured first."""
        for gateway in (self.gw, self.tls_gw):
            sock = connect(gateway.port)
            sock.settimeout(None)  # the stream is silent but for a comment every 15 s
            sock.sendall(b"GET /freeride/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            threading.Thread(target=lambda s=sock: all(iter(lambda: s.recv(65536), b"")),
                             daemon=True).start()
            gateway.page = sock
        seconds = 1.0 if self.quick else 5.0
        before = self.gw.cpu()
        time.sleep(seconds)
        self.raw["page_idle_cpu_ms_per_s"] = (self.gw.cpu() - before) * 1000 / seconds
        self.log(f"a status page's event stream open on each gateway; idle, the gateway used "
                 f"{self.raw['page_idle_cpu_ms_per_s']:.2f} ms of CPU per second")

    # -- non-streamed load ----------------------------------------------------------------------
    def measured(self, gateway, request, concurrency, duration):
        """One gateway run, with its CPU and the upstream connections it opened."""
        load(gateway.port, request, concurrency, min(0.15, duration))  # warm the pool
        before_cpu, before = gateway.cpu(), self.fake.stats()
        run = load(gateway.port, request, concurrency, duration)
        run.cpu = gateway.cpu() - before_cpu
        after = self.fake.stats()
        run.opened = {k: after["connections"][k] - before["connections"][k]
                      for k in ("http", "https")}
        run.shapes = {k: after["chat"][k] - before["chat"][k] for k in after["chat"]}
        # A chat request the fake saw under a name other than the one sent: a failover
        run.shapes["renamed"] = after["models"]["other"] - before["models"]["other"]
        return run

    def direct(self, request, concurrency, duration):
        load(self.fake.ports["http"], request, concurrency, min(0.15, duration))
        before = cpu_seconds(self.fake.pid)
        run = load(self.fake.ports["http"], request, concurrency, duration)
        run.cpu = cpu_seconds(self.fake.pid) - before
        return run

    def non_streamed(self):
        rounds, duration = (1, 0.4) if self.quick else (2, 1.25)
        self.raw["load"] = {}
        self.log("\nclosed loop, interleaved direct/gateway "
                 f"({rounds} x {duration} s each); chat is a plain request (the gateway asks "
                 "for it streamed and assembles it), streamed the same answer as a stream:")
        self.log(f"  {'':18} {'direct req/s':>12} {'gateway req/s':>13} {'ratio':>6}  "
                 f"{'p50 / p90 / p99 ms: direct':>29} | {'gateway':<22} {'CPU ms/req':>10}  "
                 f"{'upstream conns':>14}")
        kinds = (("chat", chat_request()), ("streamed", chat_request(stream=True)),
                 ("embeddings", embed_request()))
        shapes, asked = {}, 0
        for kind, request in kinds:
            for c in (1, 8, 64):
                direct, gateway = [], []
                for r in range(rounds):
                    order = (True, False) if r % 2 == 0 else (False, True)
                    for is_direct in order:
                        if is_direct:
                            direct.append(self.direct(request, c, duration))
                        else:
                            gateway.append(self.measured(self.gw, request, c, duration))
                d, g = Run.merge(direct), Run.merge(gateway)
                g.cpu = sum(x.cpu for x in gateway)
                d.cpu = sum(x.cpu for x in direct)
                opened = sum(x.opened["http"] for x in gateway)
                if kind == "chat":  # how the gateway's plain requests reached the fake
                    for x in gateway:
                        for k, v in x.shapes.items():
                            shapes[k] = shapes.get(k, 0) + v
                    asked += g.n
                row = {"direct_rps": d.rps, "gateway_rps": g.rps,
                       "direct_ms": [d.pct(p) * 1000 for p in (50, 90, 99)],
                       "gateway_ms": [g.pct(p) * 1000 for p in (50, 90, 99)],
                       "gateway_cpu_ms_per_req": g.cpu / max(1, g.n) * 1000,
                       "fake_cpu_ms_per_req": d.cpu / max(1, d.n) * 1000,
                       "errors": d.errors + g.errors, "gateway_requests": g.n,
                       "upstream_connections_opened": opened}
                self.raw["load"][f"{kind} c={c}"] = row
                self.log(f"  {kind + ' c=' + str(c):18} {d.rps:12.0f} {g.rps:13.0f} "
                         f"{d.rps / max(g.rps, 1e-9):5.1f}x  "
                         f"{'/'.join(f'{x:.2f}' for x in row['direct_ms']):>29} | "
                         f"{'/'.join(f'{x:.2f}' for x in row['gateway_ms']):<22} "
                         f"{row['gateway_cpu_ms_per_req']:10.3f}  {opened:>14}"
                         + (f"  ERRORS {row['errors']}" if row["errors"] else ""))
        self.raw["plain_upstream_shapes"] = dict(shapes, client_requests=asked)
        self.log(f"  the gateway's {asked} plain chat requests reached the fake as: "
                 f"{shapes.get('plain', 0)} plain, {shapes.get('streamed', 0)} streamed "
                 f"({shapes.get('include_usage', 0)} with stream_options.include_usage)"
                 + (f"; WARNING: {shapes['renamed']} under another provider's model name "
                    "(the gateway failed over or throttled a key)" if shapes.get("renamed")
                    else ""))

    def https(self):
        rounds, duration = (1, 0.4) if self.quick else (2, 1.25)
        self.raw["https"] = {}
        self.log("\nHTTPS upstream vs plain HTTP upstream, chat, interleaved:")
        for c in (1, 8):
            plain, tls = [], []
            for r in range(rounds):
                order = (self.gw, self.tls_gw) if r % 2 == 0 else (self.tls_gw, self.gw)
                for gateway in order:
                    (plain if gateway is self.gw else tls).append(
                        self.measured(gateway, chat_request(), c, duration))
            row = {}
            for name, runs in (("http", plain), ("https", tls)):
                merged = Run.merge(runs)
                row[name] = {"rps": merged.rps, "p50_ms": merged.pct(50) * 1000,
                             "cpu_ms_per_req": sum(x.cpu for x in runs) / max(1, merged.n) * 1000,
                             "errors": merged.errors, "requests": merged.n,
                             "upstream_connections_opened": sum(x.opened["https" if name == "https"
                                                                         else "http"] for x in runs)}
            row["cpu_ratio"] = row["https"]["cpu_ms_per_req"] / row["http"]["cpu_ms_per_req"]
            self.raw["https"][f"c={c}"] = row
            self.log(f"  c={c:<3} plain {row['http']['rps']:6.0f} req/s "
                     f"{row['http']['cpu_ms_per_req']:.3f} CPU ms/req | HTTPS "
                     f"{row['https']['rps']:6.0f} req/s {row['https']['cpu_ms_per_req']:.3f} CPU "
                     f"ms/req (x{row['cpu_ratio']:.2f}); TLS handshakes during "
                     f"{row['https']['requests']} requests: "
                     f"{row['https']['upstream_connections_opened']}"
                     + (f"  ERRORS {row['https']['errors'] + row['http']['errors']}"
                        if row['https']['errors'] + row['http']['errors'] else ""))

    # -- streams ----------------------------------------------------------------------------------
    def ttfb(self):
        n = 40 if self.quick else 150
        direct_sock, gw_sock = connect(self.fake.ports["http"]), connect(self.gw.port)
        request = stream_request(4, 0)
        ttfb = {"direct": [], "gateway": []}
        bad = 0
        for i in range(2 * n):
            name = ("direct", "gateway")[(i + i // 2) % 2]
            sock = direct_sock if name == "direct" else gw_sock
            s = run_streams([Stream(sock, request)], 10)[0]
            if s.complete and s.first is not None and s.status == 200:
                ttfb[name].append(s.first - s.sent)
            else:
                bad += 1
        direct_sock.close()
        gw_sock.close()
        d, g = sorted(ttfb["direct"]), sorted(ttfb["gateway"])
        self.raw["ttfb"] = {"direct_ms": [percentile(d, p) * 1000 for p in (50, 90, 99)],
                            "gateway_ms": [percentile(g, p) * 1000 for p in (50, 90, 99)],
                            "failed": bad}
        self.raw["ttfb"]["added_p50_ms"] = (percentile(g, 50) - percentile(d, 50)) * 1000
        self.log(f"\nstreamed time to first content event, {n} each, interleaved: p50/p90/p99 "
                 f"direct {'/'.join(f'{x:.2f}' for x in self.raw['ttfb']['direct_ms'])} ms, "
                 f"gateway {'/'.join(f'{x:.2f}' for x in self.raw['ttfb']['gateway_ms'])} ms"
                 + (f"  FAILED {bad}" if bad else ""))

    def relay(self):
        streams, events, gap = (4, 50, 2) if self.quick else (10, 100, 2)
        direct_sock, gw_sock = connect(self.fake.ports["http"]), connect(self.gw.port)
        delays = {"direct": [], "gateway": []}
        bad = 0
        for i in range(2 * streams):
            name = ("direct", "gateway")[i % 2]
            s = run_streams([Stream(direct_sock if name == "direct" else gw_sock,
                                    stream_request(events, gap))], 30)[0]
            bad += not s.complete or len(s.delays) != events
            delays[name] += s.delays
        direct_sock.close()
        gw_sock.close()
        d, g = sorted(delays["direct"]), sorted(delays["gateway"])
        self.raw["relay"] = {
            "events": len(g), "failed": bad,
            "direct_ms": [percentile(d, p) * 1000 for p in (50, 90, 99)],
            "gateway_ms": [percentile(g, p) * 1000 for p in (50, 90, 99)],
            "added_ms": [(percentile(g, p) - percentile(d, 50)) * 1000 for p in (50, 90, 99)]}
        self.log(f"relay delay per event ({streams} streams x {events} events, {gap} ms apart, "
                 f"each way): arrival - x_sent p50/p90/p99 direct "
                 f"{'/'.join(f'{x:.3f}' for x in self.raw['relay']['direct_ms'])} ms, gateway "
                 f"{'/'.join(f'{x:.3f}' for x in self.raw['relay']['gateway_ms'])} ms"
                 + (f"  FAILED {bad}" if bad else ""))

    def many_streams(self):
        n, events, gap = 100, (20 if self.quick else 60), 50
        self.raw["streams100"] = {}
        before_rss = self.gw.memory()[0]
        for name in ("direct", "gateway"):
            port = self.fake.ports["http"] if name == "direct" else self.gw.port
            socks = [connect(port) for _ in range(n)]
            streams = [Stream(sock, stream_request(events, gap)) for sock in socks]
            sampled = []
            if name == "gateway":  # the gateway's memory while all 100 are open
                def sample():
                    time.sleep(events * gap / 1000 / 2)
                    sampled.append(self.gw.memory()[0])
                sampler = threading.Thread(target=sample)
                sampler.start()
            # Independent streams: starts spread over one gap, so events do not come in bursts.
            run_streams(streams, events * gap / 1000 + 30, stagger=gap / 1000 / n)
            if name == "gateway":
                sampler.join()
            for sock in socks:
                sock.close()
            delays = sorted(x for s in streams for x in s.delays)
            row = {"complete": sum(s.complete and len(s.delays) == events for s in streams),
                   "events": len(delays),
                   "delay_ms": [percentile(delays, p) * 1000 for p in (50, 90, 99)]}
            if sampled:
                row["rss_before_kb"], row["rss_open_kb"] = before_rss, sampled[0]
                row["kb_per_stream"] = (sampled[0] - before_rss) / n
            self.raw["streams100"][name] = row
        d, g = self.raw["streams100"]["direct"], self.raw["streams100"]["gateway"]
        g["added_ms"] = [x - d["delay_ms"][0] for x in g["delay_ms"]]
        self.log(f"100 concurrent streams ({events} events, {gap} ms apart): complete direct "
                 f"{d['complete']}/100, gateway {g['complete']}/100; arrival - x_sent p50/p90/p99 "
                 f"direct {'/'.join(f'{x:.2f}' for x in d['delay_ms'])} ms, gateway "
                 f"{'/'.join(f'{x:.2f}' for x in g['delay_ms'])} ms; gateway RSS "
                 f"{g['rss_before_kb'] / 1024:.1f} MB -> {g['rss_open_kb'] / 1024:.1f} MB with "
                 f"100 open ({g['kb_per_stream']:.1f} KB per stream)")

    # -- failover -----------------------------------------------------------------------------
    def failover(self):
        pairs = self.failover_pairs()
        sock = connect(self.gw.port)
        direct_sock = connect(self.fake.ports["http"])
        times = {"ok": [], "fail": [], "direct_ok": [], "direct_429": []}
        bad = 0
        load(self.fake.ports["http"], chat_request(), 1, 0, socks=[direct_sock])  # accepted
        before = self.fake.stats()
        for i in range(pairs):
            order = ("ok", "fail") if i % 2 == 0 else ("fail", "ok")
            for kind in order:
                run = load(self.gw.port, chat_request(f"{kind}-{i}"), 1, 0, socks=[sock])
                bad += run.statuses != {200: 1}
                times[kind] += run.latencies
            for kind, model in (("direct_ok", CHAT_MODEL), ("direct_429", "always-429")):
                run = load(self.fake.ports["http"], chat_request(model), 1, 0, socks=[direct_sock])
                times[kind] += run.latencies
        after = self.fake.stats()
        sock.close()
        direct_sock.close()
        p50 = {k: percentile(sorted(v), 50) * 1000 for k, v in times.items()}
        limited = after["rate_limited"] - before["rate_limited"] - pairs  # minus direct_429
        # Each name must reach the fake as sent (not resolved to a default model): ok-N once,
        # fail-N twice (the 429, then the next key).
        names = {k: after["models"][k] - before["models"][k] for k in ("ok-", "fail-")}
        self.raw["failover"] = {
            "pairs": pairs, "failed": bad, "upstream_429s": limited, "p50_ms": p50,
            "added_ms": p50["fail"] - p50["ok"],
            "extra_round_trip_ms": p50["direct_429"],
            "upstream_connections_opened": after["connections"]["http"]
            - before["connections"]["http"], "upstream_requests_by_name": names}
        self.log(f"\nfailover, {pairs} pairs interleaved: p50 healthy {p50['ok']:.3f} ms, "
                 f"429-then-200 {p50['fail']:.3f} ms (added {p50['fail'] - p50['ok']:.3f} ms; "
                 f"a direct 429 round trip is {p50['direct_429']:.3f} ms); upstream 429s "
                 f"{limited} (expected {pairs}); upstream connections opened "
                 f"{self.raw['failover']['upstream_connections_opened']}"
                 + (f"  FAILED {bad}" if bad else ""))
        self.log(f"  requests reaching the fake by name: ok-N {names['ok-']} (expected {pairs}), "
                 f"fail-N {names['fail-']} (expected {2 * pairs})"
                 + ("" if names == {"ok-": pairs, "fail-": 2 * pairs} else
                    "  MISMATCH: names did not reach the fake as sent"))

    # -- a hung provider beside a healthy one (issue 16) ---------------------------------------
    def faults(self):
        """Groq's route points at the fake's "hangs" port (it hangs on HANG_SHARE of its
        requests, in turn before the head, after the head, after some content; otherwise it
        answers like the healthy one), NVIDIA's at "healthy" (first content after 300 ms, 20
        events 20 ms apart). Both serve the fault- models, groq listed first; every deadline
        is FAULT_DEADLINE_S. A timeout cools that model on the hanging provider (UPSTREAM
        backoff), so the requests after it go to the healthy one until the cooldown ends:
        how many each provider served is shown. One model per run, so each starts uncooled.
        The same request sent directly to the healthy provider, at the same time, is the
        reference."""
        seq, conc = (8, 16) if self.quick else (24, 48)
        url = {k: f"http://{HOST}:{self.fake.ports[k]}/v1" for k in ("hangs", "healthy")}
        deadline = str(FAULT_DEADLINE_S)
        self.fault_gw = GatewayProcess(url["hangs"], self.pycache, {
            "GROQ_API_KEY": "bench-hangs", "GROQ_BASE_URL": url["hangs"],
            "NVIDIA_API_KEY": "bench-healthy", "NVIDIA_BASE_URL": url["healthy"],
            "GROQ_FREE_MODELS_OVERRIDE": ",".join([CHAT_MODEL] + fault_models()),
            "NVIDIA_NIM_FREE_MODELS_OVERRIDE": ",".join(fault_models()),
            "FREERIDE_FIRST_BYTE_TIMEOUT": deadline, "FREERIDE_FIRST_CONTENT_TIMEOUT": deadline,
            "FREERIDE_IDLE_TIMEOUT": deadline})
        self.raw["faults"] = {}
        self.log(f"\na provider that hangs on {HANG_SHARE:.0%} of its requests (in turn: before "
                 "the head, after the head, after some content), listed first, beside a healthy "
                 f"one (first content after {REALISTIC['bench_first_ms']} ms, "
                 f"{REALISTIC['bench_events']} events {REALISTIC['bench_gap_ms']} ms apart); "
                 f"every deadline {deadline} s; direct = the same request to the healthy one, at "
                 "the same time; seconds, p50/p95/max (first token of a plain answer: its "
                 "first byte):")
        self.log(f"  {'':12} {'n':>3}  {'total: gateway':>20} {'direct':>16}   "
                 f"{'first token: gateway':>20} {'direct':>16}   served by (hangs/healthy), "
                 "hangs met")
        for kind in ("plain", "streamed"):
            for c, n in ((1, seq), (8, conc)):
                model = f"fault-{kind}-{c}"
                request = chat_request(model, **REALISTIC,
                                       **({"stream": True} if kind == "streamed" else {}))
                before = self.fake.stats()
                records = timed_exchanges({"gateway": (self.fault_gw.port, request),
                                           "direct": (self.fake.ports["healthy"], request)},
                                          c, n)
                after = self.fake.stats()
                row = {}
                for side, recs in records.items():
                    totals = sorted(r["total"] for r in recs)
                    firsts = sorted(r["first"] for r in recs
                                    if r["outcome"] == "ok" and r["first"] is not None)
                    row[side] = {
                        "requests": len(recs),
                        "total_s": [percentile(totals, p) for p in (50, 95, 100)],
                        "first_s": [percentile(firsts, p) for p in (50, 95, 100)],
                        "outcomes": {o: sum(r["outcome"] == o for r in recs)
                                     for o in sorted({r["outcome"] for r in recs})},
                        "served_by": {p: sum(r["provider"] == p for r in recs)
                                      for p in sorted({str(r["provider"]) for r in recs})}}
                hangs = {m: after["hangs"][m] - before["hangs"][m] for m in HANG_MODES}
                upstream = {"hangs": after["hangs"]["requests"] - before["hangs"]["requests"],
                            "healthy": after["healthy"]["requests"] - before["healthy"]["requests"]
                            - len(records["direct"])}
                row["upstream_attempts"], row["hung"] = upstream, hangs
                self.raw["faults"][f"{kind} c={c}"] = row
                g, d = row["gateway"], row["direct"]
                failed = {side: sum(v for o, v in row[side]["outcomes"].items() if o != "ok")
                          for side in ("gateway", "direct")}
                fmt = lambda xs: "/".join(f"{x:.2f}" for x in xs)  # noqa: E731
                served = f"{g['served_by'].get('groq', 0)}/{g['served_by'].get('nvidia', 0)}"
                self.log(f"  {kind + ' c=' + str(c):12} {n:>3}  {fmt(g['total_s']):>20} "
                         f"{fmt(d['total_s']):>16}   {fmt(g['first_s']):>20} "
                         f"{fmt(d['first_s']):>16}   {served:>7} (upstream attempts "
                         f"{upstream['hangs']}/{upstream['healthy']}), hung "
                         f"{sum(hangs.values())} ("
                         + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in hangs.items() if v)
                         + ")"
                         + "".join(f"  {side.upper()} FAILED {failed[side]}: "
                                   f"{row[side]['outcomes']}" for side in failed if failed[side]))

    def peak(self):
        self.raw["peak_rss_kb"] = self.gw.memory()[1]
        self.raw["tls_peak_rss_kb"] = self.tls_gw.memory()[1]
        for name, g in (("gateway", self.gw), ("HTTPS gateway", self.tls_gw),
                        ("fault-phase gateway", getattr(self, "fault_gw", None))):
            if g is None:
                continue
            errors = g.errors().strip()
            if errors:
                self.log(f"\n{name} stderr:\n{errors}")

    # -- the table ------------------------------------------------------------------------------
    def table(self):
        r = self.raw
        load_ = r["load"]
        chat1, chat8, chat64 = load_["chat c=1"], load_["chat c=8"], load_["chat c=64"]
        s100 = r["streams100"]["gateway"]
        rows = [
            ("added latency, c=1, p50", "<= 0.25 ms",
             chat1["gateway_ms"][0] - chat1["direct_ms"][0], "{:.3f} ms", "le", 0.25),
            ("throughput, c=8, non-streamed", ">= 2,500 req/s", chat8["gateway_rps"],
             "{:,.0f} req/s", "ge", 2500),
            ("throughput, c=64, non-streamed", ">= 2,000 req/s", chat64["gateway_rps"],
             "{:,.0f} req/s", "ge", 2000),
            ("p99 at c=64", "<= 50 ms", chat64["gateway_ms"][2], "{:.1f} ms", "le", 50),
            ("gateway CPU per request (chat, c=8)", "<= 0.35 ms",
             chat8["gateway_cpu_ms_per_req"], "{:.3f} ms", "le", 0.35),
            ("same, HTTPS upstream (c=8)", "<= 1.2 x plain", r["https"]["c=8"]["cpu_ratio"],
             "{:.2f} x", "le", 1.2),
            ("streamed: added time to first byte", "<= 1 ms", r["ttfb"]["added_p50_ms"],
             "{:.3f} ms", "le", 1),
            ("streamed: relay delay per event p99", "<= 1 ms", r["relay"]["added_ms"][2],
             "{:.3f} ms", "le", 1),
            ("100 concurrent long streams: complete", "100/100", s100["complete"], "{}/100",
             "ge", 100),
            ("100 concurrent long streams: relay p99", "<= 5 ms", s100["added_ms"][2],
             "{:.2f} ms", "le", 5),
            ("failover (429 then success) added", "<= 1.5 ms", r["failover"]["added_ms"],
             "{:.3f} ms", "le", 1.5),
            ("idle RSS", "<= 25 MB", r["idle_rss_kb"] / 1024, "{:.1f} MB", "le", 25),
            ("RSS per open stream", "<= 16 KB", s100["kb_per_stream"], "{:.1f} KB", "le", 16),
            ("start to first served request", "<= 0.15 s",
             r["start_s"][len(r["start_s"]) // 2], "{:.3f} s", "le", 0.15),
        ]
        if "faults" in r:  # a hang costs one deadline, then the healthy provider's own time
            worst = max(f["gateway"]["total_s"][2] - f["direct"]["total_s"][2]
                        for f in r["faults"].values())
            rows.append(("hung provider: max total - direct max",
                         f"<= {FAULT_DEADLINE_S} s + 0.25", worst, "{:.2f} s", "le",
                         FAULT_DEADLINE_S + 0.25))
        r["table"] = []
        width = max(len(row[0]) for row in rows)
        self.log(f"\n{'figure':<{width}}  {'target':<16} {'measured':>14}  result")
        self.log(f"{'-' * width}  {'-' * 16} {'-' * 14}  ------")
        for figure, target, value, fmt, way, bound in rows:
            ok = value <= bound if way == "le" else value >= bound
            r["table"].append({"figure": figure, "target": target, "value": value, "pass": ok})
            self.log(f"{figure:<{width}}  {target:<16} {fmt.format(value):>14}  "
                     f"{'PASS' if ok else 'MISS'}")
        self.log(f"\npeak RSS (VmHWM): gateway {r['peak_rss_kb'] / 1024:.1f} MB, "
                 f"HTTPS gateway {r['tls_peak_rss_kb'] / 1024:.1f} MB")
        for c in (8, 64):
            row = load_[f"chat c={c}"]
            if row["direct_rps"] < 2 * row["gateway_rps"]:
                self.log(f"WARNING: direct is not far faster than the gateway at c={c} "
                         f"({row['direct_rps']:.0f} vs {row['gateway_rps']:.0f} req/s): the "
                         "fake upstream or the client may be the bottleneck")


def machine_busy_seconds():
    """CPU seconds the whole machine has spent in processes since boot (every process, every
    CPU, and time the hypervisor stole), leaving out interrupts, which no process is billed."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + steal) / TICK


def own_seconds():
    """CPU seconds of this process and of every child it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine():
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model}), Linux {os.uname().release}, "
            f"Python {sys.version.split()[0]}")


def yield_phase(quick=False):
    """Issue 15's yield: a fixed budget of fake free quota across providers and keys, spent by
    sequential and concurrent requests until the gateway says 429; prints the upstream calls
    per successful answer (target <= 1.02 where providers report what is left) and the share
    of the capacity served (target: all of it). In-process fakes; the gateway on loopback."""
    import concurrent.futures
    import http.client
    import freeride
    from tests import fakes

    budget = {"groq": (2, 40), "mistral": (2, 30), "openrouter": (2, 25)}  # keys, requests each
    if quick:
        budget = {name: (keys, n // 2) for name, (keys, n) in budget.items()}

    def quota(name, budget_left, lock):
        def answer(request):  # each key's own budget; Groq and Mistral report it, OpenRouter not
            with lock:
                left = budget_left[request.key] = budget_left.get(request.key, budget[name][1]) - 1
            if left < 0:
                return fakes.error("groq", "daily_rpd") if name == "groq" else fakes.Reply(
                    429, None, {"error": {"message": "Rate limit exceeded: free-models-per-day",
                                          "code": 429}})
            reply = fakes.chat_ok("ok")
            if name == "groq":
                reply.headers.update({"x-ratelimit-limit-requests": str(budget[name][1]),
                                      "x-ratelimit-remaining-requests": str(left),
                                      "x-ratelimit-reset-requests": "6h"})
            elif name == "mistral":
                reply.headers.update({"x-ratelimit-limit-req-minute": str(budget[name][1]),
                                      "x-ratelimit-remaining-req-minute": str(left)})
            return reply
        return answer

    print("\nyield: a fixed budget of free quota "
          + ", ".join(f"{n} {k} keys x {r}" for n, (k, r) in budget.items()))
    for concurrency in (1, 8):
        home = tempfile.mkdtemp(prefix="freeride-yield-")
        upstreams, env = {}, {"FREERIDE_HOME": home, "FREERIDE_LOCAL": "0", "FREERIDE_CATALOGS": "0",
                              "FREERIDE_PROVIDERS": ",".join(budget), "FREERIDE_EVENTS": "0",
                              # OpenRouter reports nothing on success: its day is counted locally
                              "FREERIDE_LIMITS": '{"openrouter": {"requests/day": %d, '
                                                 '"requests/minute": 100000}, "groq": '
                                                 '{"requests/minute": 100000}}' % budget["openrouter"][1]}
        lock = threading.Lock()
        for name, (keys, _) in budget.items():
            cls = freeride.providers.REGISTRY[name]
            fake = fakes.FakeUpstream(name).start()
            fake.default(quota(name, {}, lock))
            upstreams[name] = fake
            env[cls.key_vars[0]] = json.dumps([f"{name}-{i}" for i in range(keys)])
            env[cls.base_url_var or f"{name.upper()}_BASE_URL"] = fake.url
        gateway = freeride.Gateway(freeride.Config(env=env, port=0)).start()
        capacity = sum(k * n for k, n in budget.values())

        def one(_):
            conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
            try:
                conn.request("POST", "/v1/chat/completions", json.dumps(
                    {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
                    {"Content-Type": "application/json"})
                return conn.getresponse().status
            finally:
                conn.close()
        try:
            with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
                statuses = list(pool.map(one, range(capacity + 20)))
        finally:
            gateway.close()
            for fake in upstreams.values():
                fake.close()
            shutil.rmtree(home, True)
        served = statuses.count(200)
        calls = sum(len([r for r in f.requests if r.path.endswith("/chat/completions")])
                    for f in upstreams.values())
        reported = sum(len([r for r in upstreams[n].requests if r.path.endswith("/completions")])
                       for n in ("groq", "mistral"))
        print(f"  c={concurrency}: served {served}/{capacity} of the capacity "
              f"({100 * served / capacity:.0f} %), {calls} upstream calls, "
              f"{calls / max(served, 1):.3f} per answer (target <= 1.02 where providers "
              f"report what is left); then {statuses.count(429)} x 429, "
              f"{len(statuses) - served - statuses.count(429)} other")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark FreeRide against a fake upstream.")
    parser.add_argument("--quick", action="store_true", help="a ~40 s smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers as JSON")
    parser.add_argument("--page", action="store_true",
                        help="with a status page's event stream open on each gateway")
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.upstream:
        return upstream_main()
    if not sys.platform.startswith("linux"):
        print("bench: needs Linux (/proc gives the gateway's CPU time and memory)", file=sys.stderr)
        return 2
    began = time.monotonic()
    busy, own = machine_busy_seconds(), own_seconds()
    bench = Bench(args.quick)
    bench.log(f"FreeRide benchmark{' (quick)' if args.quick else ''} on {machine()}")
    try:
        bench.start()
        if args.page:
            bench.open_pages()
        bench.ttfb()
        bench.relay()
        bench.many_streams()
        bench.non_streamed()
        bench.https()
        bench.failover()
        bench.faults()
        yield_phase(args.quick)
        bench.peak()
        bench.table()
    finally:
        bench.close()
    bench.raw["machine"] = machine()
    bench.raw["seconds"] = time.monotonic() - began
    others = (machine_busy_seconds() - busy) - (own_seconds() - own)
    share = max(0.0, others) / (bench.raw["seconds"] * (os.cpu_count() or 1))
    bench.raw["other_processes_cpu_share"] = share
    bench.log(f"\n(benchmark took {bench.raw['seconds']:.0f} s; other processes used "
              f"{share:.0%} of the machine's CPU meanwhile)")
    if share > 0.05:
        bench.log("WARNING: the machine was not idle: these numbers are noisier and slower "
                  "than on a quiet machine")
    if args.json:
        Path(args.json).write_text(json.dumps(bench.raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
