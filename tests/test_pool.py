"""The upstream connection pool: one TLS handshake, stale connections, proxies, and the state a
burst of requests leaves behind.

Issue 7 asks for a keep-alive pool per (scheme, host, port, proxy), thread-safe and bounded,
that retries a pooled socket the server closed once on a fresh one without ever sending a
request twice to a server that read it, honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY, and keeps
events and cooldowns complete while requests come in bursts.
"""
import http.client
import io
import http.server
import json
import os
import re
import select
import socket
import ssl
import threading
import time
import unittest
import urllib.parse
from pathlib import Path
from unittest import mock

import freeride
from tests import fakes
from tests.support import UNLIMITED, GatewayTest

DATA = Path(__file__).resolve().parent / "data"
CERT = DATA / "localhost-cert.pem"
MODEL = "openai/gpt-oss-120b"  # a Groq model: the groq route serves it by that name


def tls_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, DATA / "localhost-key.pem")
    return context


def groq_env(url, **extra):
    return {"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "gsk-pool-test", "GROQ_BASE_URL": url,
            "FREERIDE_CATALOGS": "0", "FREERIDE_LIMITS": UNLIMITED,
            **extra}  # these upstreams count every connection


# ----------------------------------------------------------------------------- test servers

CHAT_ANSWER = json.dumps({
    "id": "chatcmpl-pool", "object": "chat.completion", "created": 0, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()


class KeepAliveUpstream:
    """A loopback HTTP/1.1 upstream whose keep-alive connections a test can drop.

    Every request is answered with a chat completion, except the request numbers (1-based,
    over all connections) in `hang_up_on`: those are read in full and answered by closing the
    connection, as a server that crashed on them would. `drop_idle()` closes every connection
    waiting for its next request, as a server's keep-alive timeout does.
    """

    def __init__(self, hang_up_on=()):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # so the accept loop sees close() soon
        self.closed = threading.Event()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.hang_up_on = set(hang_up_on)
        self.requests = []         # (connection number, path)
        self.connections = 0
        self.lock = threading.Lock()
        self.idle, self.live, self.threads = set(), set(), []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(10)
            with self.lock:
                self.connections += 1
                self.live.add(sock)
                thread = threading.Thread(target=self._serve, args=(sock, self.connections),
                                          daemon=True)
                self.threads.append(thread)
            thread.start()

    def _serve(self, sock, number):
        buf = b""
        with sock:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = self._recv(sock)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                while len(buf) < length:
                    data = self._recv(sock)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                with self.lock:
                    self.requests.append((number, head.split(b" ")[1].decode()))
                    hang_up = len(self.requests) in self.hang_up_on
                    if not hang_up:
                        self.idle.add(sock)  # before the answer: once it is read, we are idle
                if hang_up:
                    return
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(CHAT_ANSWER), CHAT_ANSWER))

    def _recv(self, sock):
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if data:
            with self.lock:
                self.idle.discard(sock)
        return data

    def drop_idle(self):
        """Close every connection that waits for a request; returns how many."""
        with self.lock:
            idle, self.idle = list(self.idle), set()
        for sock in idle:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(idle)

    def close(self):
        self.closed.set()
        self.acceptor.join(2)
        self.listener.close()
        with self.lock:
            live, threads = list(self.live), list(self.threads)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(2)


class LoopbackProxy(http.server.ThreadingHTTPServer):
    """A tiny HTTP proxy on loopback: CONNECT tunnels (for https) and absolute-form requests
    (for http, forwarded with Content-Length bodies). Records what it was asked."""
    daemon_threads = True

    def __init__(self):
        self.tunnels, self.forwarded = [], []
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self.thread.join(2)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        self.server.tunnels.append(self.path)
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            peers = {self.connection: upstream, upstream: self.connection}
            while not self.server.stopping.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        return

    def do_POST(self):
        self.server.forwarded.append(self.path)
        target = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "proxy-connection", "keep-alive", "host")}
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        try:
            conn.request(self.command, target.path, body, headers)
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length", "date",
                                    "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


# ----------------------------------------------------------------------------- the tests

class TLSKeepAliveTest(GatewayTest):
    def test_fifty_sequential_requests_to_an_https_upstream_open_one_connection(self):
        upstream = fakes.FakeUpstream("groq", tls=True, ssl_context=tls_context()).start()
        self.addCleanup(upstream.close)
        self.start_gateway(groq_env(upstream.url, FREERIDE_CA_BUNDLE=str(CERT)))
        statuses = [self.chat(MODEL).status for _ in range(50)]
        self.assertEqual(statuses, [200] * 50)
        self.assertEqual(len(upstream.requests), 50)
        self.assertEqual(upstream.connections, 1,
                         "one TCP connection and one TLS handshake for 50 requests")

    def test_a_rate_limited_answer_read_whole_keeps_its_connection_for_the_next_key(self):
        upstream = fakes.FakeUpstream("groq", tls=True, ssl_context=tls_context()).start()
        self.addCleanup(upstream.close)
        upstream.on(fakes.error("groq", "rate_rpm"), key="gsk-a", times=None)
        self.start_gateway(groq_env(upstream.url, FREERIDE_CA_BUNDLE=str(CERT),
                                    GROQ_API_KEY='["gsk-a", "gsk-b"]'))
        answer = self.chat(MODEL)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual([r.key for r in upstream.requests], ["gsk-a", "gsk-b"])
        self.assertEqual(upstream.connections, 1, "the 429 and the failover shared a connection")

    def test_connections_opened_at_once_share_one_tls_context(self):
        upstream = fakes.FakeUpstream("groq", tls=True, ssl_context=tls_context()).start()
        self.addCleanup(upstream.close)
        self.start_gateway(groq_env(upstream.url, FREERIDE_CA_BUNDLE=str(CERT)))
        made, real = [], ssl.create_default_context

        def slow_context(*args, **kwargs):  # widens the window two first connections race in
            made.append(kwargs.get("cafile"))
            time.sleep(0.05)
            return real(*args, **kwargs)

        replies = []
        with mock.patch.object(ssl, "create_default_context", slow_context):
            threads = [threading.Thread(target=lambda: replies.append(self.chat(MODEL).status))
                       for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
        self.assertEqual(replies, [200] * 6)
        self.assertEqual(len(made), 1, "one TLS context, made once, for every connection")


class StaleConnectionTest(GatewayTest):
    def upstream(self, **kwargs):
        upstream = KeepAliveUpstream(**kwargs)
        self.addCleanup(upstream.close)
        self.start_gateway(groq_env(upstream.url))
        return upstream

    def test_a_pooled_connection_the_upstream_closed_is_replaced_transparently(self):
        upstream = self.upstream()
        self.assertEqual(self.chat(MODEL).status, 200)
        self.assertEqual(upstream.drop_idle(), 1, "the gateway kept its connection alive")
        answer = self.chat(MODEL)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual([n for n, _ in upstream.requests], [1, 2],
                         "the second request went once, on a fresh connection")

    def test_a_close_the_reuse_check_missed_is_retried_once_on_a_fresh_connection(self):
        # The server's FIN can arrive just after the pool checked the idle socket: simulate
        # that race by making the check see nothing.
        upstream = self.upstream()
        self.assertEqual(self.chat(MODEL).status, 200)
        upstream.drop_idle()  # on loopback the FIN is in when this returns
        with mock.patch.object(freeride, "_dropped", return_value=False):
            answer = self.chat(MODEL)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual([n for n, _ in upstream.requests], [1, 2],
                         "the dead socket never delivered the request; the fresh one did, once")

    def test_a_request_the_upstream_read_before_hanging_up_is_not_sent_again(self):
        upstream = self.upstream(hang_up_on={2})
        self.assertEqual(self.chat(MODEL).status, 200)
        answer = self.chat(MODEL)
        self.assertEqual(len(upstream.requests), 2,
                         "the upstream read request 2 and dropped the connection: sending it "
                         "again could run (and bill) the completion twice")
        self.assertIn(answer.status, (502, 503))
        self.assertIn("error", answer.json())


class BurstStateTest(GatewayTest):
    REQUESTS, THREADS, MODELS = 200, 16, 8

    def test_a_burst_leaves_a_complete_events_log_and_every_cooldown(self):
        upstream = self.fake("groq")
        for bad in ("gsk-limited-0", "gsk-limited-1"):
            upstream.on(lambda _: fakes.error("groq", "rate_rpm", retry_after=120), key=bad,
                        times=None)
        models = [f"burst-{i}" for i in range(self.MODELS)]
        self.start_gateway({
            "FREERIDE_PROVIDERS": "groq", "GROQ_BASE_URL": upstream.url,
            "GROQ_API_KEY": json.dumps(["gsk-good-0", "gsk-limited-0", "gsk-limited-1",
                                        "gsk-good-1"]),
            "GROQ_FREE_MODELS_OVERRIDE": ",".join(models)})
        statuses, lock = [], threading.Lock()
        ids = iter(range(self.REQUESTS))

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=15)
            try:
                for i in ids:
                    body = json.dumps({"model": models[i % self.MODELS],
                                       "messages": [{"role": "user", "content": f"hi {i}"}]})
                    conn.request("POST", "/v1/chat/completions", body,
                                 {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    with lock:
                        statuses.append(response.status)
            finally:
                conn.close()

        threads = [threading.Thread(target=client) for _ in range(self.THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(statuses, [200] * self.REQUESTS)
        limited = [r for r in upstream.requests if r.key.startswith("gsk-limited")]
        self.assertTrue(limited, "the burst met rate-limited keys")

        self.gateway.close()  # what a stopping gateway leaves on disk
        lines = (self.home / "events.jsonl").read_text().splitlines()
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        by_request = {}
        for e in events:
            by_request.setdefault(e["req"], []).append(e["event"])
        self.assertEqual(len(by_request), self.REQUESTS)
        for rid, kinds in by_request.items():
            self.assertEqual(kinds.count("request"), 1, rid)
            terminal = [k for k in kinds if k in ("complete", "failed", "interrupted")]
            self.assertEqual(terminal, ["complete"], rid)
        results = [e for e in events if e["event"] == "result"]
        self.assertEqual(sum(not e["ok"] for e in results), len(limited),
                         "one result row for every 429 the upstream sent")
        self.assertEqual(sum(e["ok"] for e in results), self.REQUESTS)

        keys = {freeride.key_id("groq", s): s for s in ("gsk-limited-0", "gsk-limited-1")}
        cooled = {(keys.get(c["key"], c["key"]), c["model"])
                  for c in json.loads((self.home / "cooldown.json").read_text())["cooldowns"]}
        self.assertEqual(cooled, {(r.key, r.model) for r in limited},
                         "every (key, model) the upstream rate-limited is in cooldown.json")


class ReadHeadersTest(unittest.TestCase):
    """read_headers stands in for http.client.parse_headers (the email parser) on both sides."""
    BLOCKS = (b"Host: 127.0.0.1:11343\r\nContent-Type: application/json\r\n"
              b"Content-Length: 12\r\nX-Twice: one\r\nx-twice: two\r\n\r\n",
              b"Host: a\nContent-Length: 3\n\n",     # bare LF line ends
              b"X-Folded: first\r\n  second\r\nHost: b\r\n\r\n",
              b"\r\n")

    def test_it_reads_what_the_email_parser_reads_and_leaves_the_body(self):
        for block in self.BLOCKS:
            for buffer_size in (8192, 1):  # the whole block buffered, or read line by line
                with self.subTest(block=block, buffer_size=buffer_size):
                    fp = io.BufferedReader(io.BytesIO(block + b"body"), buffer_size)
                    ours = freeride.read_headers(fp)
                    theirs = http.client.parse_headers(io.BufferedReader(io.BytesIO(block)))
                    self.assertEqual(fp.read(), b"body")
                    for name in ("host", "Content-Length", "X-TWICE", "missing"):
                        self.assertEqual(ours.get(name), theirs.get(name), name)
                        self.assertEqual(name in ours, name in theirs, name)
                    self.assertEqual(ours.get_all("x-twice"), theirs.get_all("x-twice"))
                    self.assertEqual(" ".join(ours.get("x-folded", "").split()),
                                     " ".join(theirs.get("x-folded", "").split()))

    def test_http_clients_limits_hold(self):
        flood = b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n"
        with self.assertRaises(http.client.HTTPException):
            freeride.read_headers(io.BufferedReader(io.BytesIO(flood)))
        with self.assertRaises(http.client.LineTooLong):
            freeride.read_headers(io.BufferedReader(io.BytesIO(b"X: " + b"v" * 70000 + b"\r\n\r\n")))


class DeadlinesTest(unittest.TestCase):
    def test_cancelled_deadlines_do_not_pile_up_and_a_live_one_still_fires(self):
        # Every request arms deadlines minutes long and cancels them within milliseconds;
        # left in the heap until due, a busy gateway would hold millions of them.
        deadlines = freeride.Deadlines()
        self.addCleanup(deadlines.close)
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        for _ in range(20000):
            deadlines.arm(a, 300).cancel()
        self.assertLess(len(deadlines.heap), 2100)
        live = deadlines.arm(a, 0.05)
        b.settimeout(5)
        self.assertEqual(b.recv(1), b"", "the live deadline shut its socket down")
        self.assertTrue(live.fired)


class ProxyTest(GatewayTest):
    def proxy(self):
        proxy = LoopbackProxy()
        self.addCleanup(proxy.close)
        return proxy

    def gateway_with(self, proxy_env, url, **extra):
        """A gateway built while the process environment holds exactly proxy_env's proxies
        (the pool reads them, as urllib does, when it is made)."""
        with mock.patch.dict(os.environ):
            for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
                del os.environ[name]
            os.environ.update(proxy_env)
            return self.start_gateway(groq_env(url, **extra))

    def test_https_upstream_goes_through_one_pooled_connect_tunnel(self):
        proxy = self.proxy()
        upstream = fakes.FakeUpstream("groq", tls=True, ssl_context=tls_context()).start()
        self.addCleanup(upstream.close)
        self.gateway_with({"HTTPS_PROXY": proxy.url}, upstream.url,
                          FREERIDE_CA_BUNDLE=str(CERT))
        self.assertEqual([self.chat(MODEL).status for _ in range(3)], [200] * 3)
        port = upstream.url.split(":")[2].split("/")[0]
        self.assertEqual(proxy.tunnels, [f"127.0.0.1:{port}"])
        self.assertEqual(len(upstream.requests), 3)

    def test_http_upstream_goes_through_the_http_proxy_in_absolute_form(self):
        proxy = self.proxy()
        upstream = self.fake("groq")
        self.gateway_with({"HTTP_PROXY": proxy.url}, upstream.url)
        self.assertEqual([self.chat(MODEL).status for _ in range(2)], [200] * 2)
        self.assertEqual(proxy.forwarded, [upstream.url + "/chat/completions"] * 2)
        self.assertEqual(len(upstream.requests), 2)

    def test_no_proxy_sends_matching_hosts_direct(self):
        proxy = self.proxy()
        plain = self.fake("groq")
        self.gateway_with({"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url,
                           "NO_PROXY": "127.0.0.1"}, plain.url)
        self.assertEqual([self.chat(MODEL).status for _ in range(2)], [200] * 2)
        self.assertEqual((proxy.tunnels, proxy.forwarded), ([], []))
        self.assertEqual(len(plain.requests), 2)


if __name__ == "__main__":
    unittest.main()
