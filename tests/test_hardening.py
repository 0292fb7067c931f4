"""Safe by default and unbreakable (issue 8): bad input, upstream faults, load, shared state,
SIGTERM, and a gateway no stranger can use.

Everything runs on 127.0.0.1: fake providers (tests.fakes), a few deliberately broken raw TCP
upstreams defined here, and gateways in this process or as `freeride serve` subprocesses.
Timeouts are set to a second or two so that every fault is met and bounded quickly.

The soak (20,000 requests from 64 clients) and the full fuzz (thousands of generated
requests) run at full size only with FREERIDE_LONG_TESTS=1 (.ci/run sets it); otherwise a
small sample of each runs, so the everyday suite stays fast. Random inputs come from fixed
seeds, printed with the test so a failure can be replayed.
"""
import concurrent.futures
import contextlib
import http.client
import io
import itertools
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from unittest import mock

import freeride
from tests import fakes
from tests.support import UNLIMITED, ROOT, GatewayTest, clean_env, run_cli
from tests.test_cli import ServeProcess

LONG = os.environ.get("FREERIDE_LONG_TESTS") == "1"
DATA = Path(__file__).resolve().parent / "data"
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
FAST = {"FREERIDE_CONNECT_TIMEOUT": "1", "FREERIDE_FIRST_BYTE_TIMEOUT": "1",
        "FREERIDE_FIRST_CONTENT_TIMEOUT": "1", "FREERIDE_IDLE_TIMEOUT": "1",
        "FREERIDE_CLIENT_TIMEOUT": "1", "FREERIDE_LIMITS": UNLIMITED}


# ---------------------------------------------------------------------------------- helpers

def strict_json(data):
    """Parse JSON as any other program would: NaN and Infinity are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(data, parse_constant=refuse)


def chat_bytes(body=None, headers=None, version="HTTP/1.1", path="/v1/chat/completions",
               method="POST"):
    """One raw request with a correct Content-Length (unless headers say otherwise)."""
    data = body if isinstance(body, bytes) else json.dumps(CHAT if body is None else body).encode()
    head = {"Host": "127.0.0.1", "Content-Type": "application/json",
            "Content-Length": str(len(data))}
    head.update(headers or {})
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in head.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def exchange(port, data, half_close=True, timeout=10.0):
    """Send raw bytes; return every byte answered until the gateway closes the connection."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gateway may refuse early; what it said is still readable
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise AssertionError(f"the gateway neither answered nor closed within {timeout} s "
                                     f"(request starts {data[:80]!r})") from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


class _KeepOpenBytes(io.BytesIO):
    def close(self):
        pass


class _KeepOpenReader(io.BufferedReader):
    def close(self):
        pass


class _OneFile:
    """Lets successive http.client.HTTPResponse objects read one stream of responses."""

    def __init__(self, f):
        self.f = f

    def makefile(self, *args, **kwargs):
        return self.f


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return strict_json(self.body)


def parse_responses(data, methods=()):
    """Every HTTP response in data, in order (methods: the request method of each, if known)."""
    source = _OneFile(_KeepOpenBytes(data))
    out = []
    while source.f.tell() < len(data):
        method = methods[len(out)] if len(out) < len(methods) else "GET"
        response = http.client.HTTPResponse(source, method=method)
        response.begin()
        out.append(Answer(response.status, response.headers, response.read()))
    return out


def read_responses(sock, methods, timeout=10.0):
    """Read len(methods) responses from a live socket, one after the other."""
    sock.settimeout(timeout)
    source = _OneFile(_KeepOpenReader(socket.SocketIO(sock, "rb")))
    out = []
    for method in methods:
        response = http.client.HTTPResponse(source, method=method)
        response.begin()
        out.append(Answer(response.status, response.headers, response.read()))
    return out


STATUS_LINE = re.compile(rb"(?:\A|\r\n)HTTP/1\.[01] (\d{3}) ")


def statuses(data):
    """Every status code found at the start of a response in raw bytes."""
    return [int(code) for code in STATUS_LINE.findall(data)]


def handler_threads():
    """The gateway's connection threads (fakes name theirs 'fake-...')."""
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def select_readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_until(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def echo(request):
    """A fake's answer that repeats the request's last message, streamed if asked."""
    body = request.body if isinstance(request.body, dict) else {}
    messages = body.get("messages") or [{}]
    text = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    if body.get("stream"):
        return fakes.chat_stream(pieces=("echo:", str(text)))
    return fakes.chat_ok(text=f"echo:{text}")


def streamed_text(body):
    """The content of an SSE chat stream, and the parsed data payloads."""
    payloads = [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]
    docs = [strict_json(p) for p in payloads if p != "[DONE]"]
    text = "".join(c["delta"].get("content") or "" for d in docs for c in d.get("choices") or ()
                   if isinstance(c.get("delta"), dict))
    return text, payloads


class RawUpstream:
    """A loopback TCP server that misbehaves on purpose: `behave(conn, stop)` runs for each
    connection in its own thread. close() ends every connection and joins the threads."""

    def __init__(self, behave):
        self.behave = behave
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.stop = threading.Event()
        self.conns, self.threads = [], []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, name="raw-upstream", daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            thread = threading.Thread(target=self._run, args=(conn,), name="raw-upstream-conn",
                                      daemon=True)
            with self.lock:
                self.conns.append(conn)
                self.threads.append(thread)
            thread.start()

    def _run(self, conn):
        try:
            self.behave(conn, self.stop)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        with self.lock:
            conns, threads = list(self.conns), list(self.threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(2)
        for conn in conns:
            conn.close()


TRICKLE_LIMIT = 6.0  # a trickling raw upstream gives up after this many seconds


def read_request(conn, stop):
    """Read one HTTP request (head and Content-Length body) from a raw connection."""
    conn.settimeout(0.1)
    data = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in data and not stop.is_set() and time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want and not stop.is_set() and time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def reset(conn):
    """Close with a TCP reset (RST), not a clean FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def never_answers(conn, stop):
    """Accept the connection and then say nothing at all (not even a TLS handshake)."""
    stop.wait(TRICKLE_LIMIT * 2)


def reads_then_resets(conn, stop):
    read_request(conn, stop)
    reset(conn)


def reset_mid_body(conn, stop):
    read_request(conn, stop)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                 b'{"id": "chatcmpl-1", "object": "chat.completion", "choi')
    time.sleep(0.05)
    reset(conn)


def reset_mid_stream(conn, stop):
    read_request(conn, stop)
    role = b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(role), role))
    time.sleep(0.05)
    reset(conn)


def trickle_body(conn, stop):
    """Headers at once, then a JSON body one byte every 0.2 s: never silent, never done."""
    read_request(conn, stop)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n")
    give_up = time.monotonic() + TRICKLE_LIMIT
    while not stop.wait(0.2) and time.monotonic() < give_up:
        conn.sendall(b" ")
    conn.close()


def trickle_stream_line(conn, stop):
    """A 200 event stream whose first line arrives one byte every 0.2 s."""
    read_request(conn, stop)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                 b'data: {"choices": [{"index": 0, "delta": {"content": "')
    give_up = time.monotonic() + TRICKLE_LIMIT
    while not stop.wait(0.2) and time.monotonic() < give_up:
        conn.sendall(b"x")
    conn.close()


def sends(raw):
    """Answer every request on the connection with the same raw bytes, then close."""
    def behave(conn, stop):
        read_request(conn, stop)
        conn.sendall(raw)
        conn.close()
    return behave


def sse_bytes(*events):
    """A complete 200 SSE answer (Connection: close) made of the given raw event bytes."""
    body = b"".join(e + b"\n\n" for e in events)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            + body)


def content_event(text):
    return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                   "choices": [{"index": 0, "delta": {"content": text}}]}).encode()


class Hardening(GatewayTest):
    """GatewayTest plus gateways in homes of their own, raw upstreams and error checks."""

    def new_home(self):
        home = Path(tempfile.mkdtemp(prefix="freeride-hard-"))
        self.addCleanup(shutil.rmtree, home, True)
        return home

    def gateway_in(self, env, home=None, debug=False):
        """A started in-process gateway with exactly env (plus a home of its own)."""
        full = {"FREERIDE_HOME": str(home or self.new_home()), **FAST, **env}
        gateway = freeride.Gateway(freeride.Config(env=full, port=0), debug=debug).start()
        self.addCleanup(gateway.close)
        return gateway

    def raw_upstream(self, behave):
        upstream = RawUpstream(behave)
        self.addCleanup(upstream.close)
        return upstream

    def post(self, gateway, body=None, path="/v1/chat/completions", headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=timeout)
        try:
            data = json.dumps(CHAT if body is None else body).encode()
            conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            conn.close()

    def assertOpenAIError(self, status, body, expect=None, code=None, path=""):
        """An OpenAI-shaped JSON error: {"error": {"message", "type", "code", "param"}}.

        On /v1/messages the Anthropic dialect answers its own shape:
        {"type": "error", "error": {"type", "message"}}.
        """
        if expect is not None:
            self.assertEqual(status, expect, body[:300])
        try:
            doc = strict_json(body)
        except ValueError:
            self.fail(f"error body is not JSON: {body[:300]!r}")
        error = doc.get("error")
        self.assertIsInstance(error, dict, body[:300])
        self.assertIsInstance(error.get("message"), str)
        self.assertIsInstance(error.get("type"), str)
        if path.startswith("/v1/messages"):
            self.assertEqual(doc.get("type"), "error")
            return error
        self.assertIn("code", error)
        self.assertIn("param", error)
        if code is not None:
            self.assertEqual(error["code"], code)
        return error


# ------------------------------------------------------------------------- security defaults

class SecurityDefaultsTest(Hardening):
    def test_serve_refuses_any_address_beyond_loopback_without_a_key_and_says_why(self):
        env = clean_env(FREERIDE_HOME=str(self.home), GROQ_API_KEY="gsk-1")
        for args, extra in ((("--host", "0.0.0.0"), {}), (("--host", "::"), {}),
                            ((), {"FREERIDE_HOST": "0.0.0.0"})):
            with self.subTest(args=args, env=extra):
                result = run_cli("serve", "--port", "0", *args, env={**env, **extra}, timeout=20)
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
                self.assertIn("FREERIDE_API_KEY", result.stderr)
                self.assertIn("other machines", result.stderr)
                self.assertNotIn("listening", result.stdout)
                self.assertNotIn("Traceback", result.stderr)

    def test_with_freeride_api_key_every_route_but_health_needs_it(self):
        fake = self.fake("groq")
        self.start_gateway({"FREERIDE_API_KEY": "fr-local-secret"}, groq="gsk-1")
        routes = [("POST", "/v1/chat/completions"), ("POST", "/chat/completions"),
                  ("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("GET", "/freeride/status"),
                  ("GET", "/metrics"), ("GET", "/v1/nowhere"), ("POST", "/v1/messages"),
                  ("POST", "/v1/responses")]
        wrong = [{}, {"Authorization": "Bearer fr-local-secre"},
                 {"Authorization": "Bearer fr-local-secret-and-more"},
                 {"Authorization": "fr-local-secret"}, {"x-api-key": "FR-LOCAL-SECRET"},
                 {"Authorization": "Basic ZnItbG9jYWwtc2VjcmV0"}, {"x-api-key": ""}]
        for method, path in routes:
            for headers in wrong:
                with self.subTest(path=path, headers=headers):
                    r = self.call(method, path, CHAT if method == "POST" else None, headers)
                    self.assertOpenAIError(r.status, r.body, 401, "invalid_api_key", path)
                    self.assertNotIn(b"fr-local-secret", r.body)
        self.assertEqual(fake.requests, [])
        for headers in ({"Authorization": "Bearer fr-local-secret"},
                        {"authorization": "bearer fr-local-secret"},
                        {"x-api-key": "fr-local-secret"}):
            with self.subTest(good=headers):
                self.assertEqual(self.call("POST", "/v1/chat/completions", CHAT, headers).status, 200)
        self.assertEqual(self.call("GET", "/health").status, 200)

    def test_a_loopback_gateway_answers_only_to_names_of_this_machine(self):
        self.fake("groq")
        gateway = self.gateway_in({**self.provider_env(groq="gsk-1"), "FREERIDE_HOST": "127.0.0.2"})
        self.assertEqual(gateway.server.server_address[0], "127.0.0.2")

        def ask(host):
            conn = socket.create_connection(("127.0.0.2", gateway.port), timeout=10)
            with conn:
                conn.sendall(chat_bytes(headers={"Host": host}))
                conn.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            return parse_responses(data, ["POST"])[0]

        for host in ("127.0.0.2", f"127.0.0.2:{gateway.port}", "localhost", "127.0.0.1"):
            with self.subTest(host=host):
                self.assertEqual(ask(host).status, 200)
        for host in ("127.0.0.3", "evil.example", "localhost.evil.example", "127.0.0.2.nip.io",
                     "", "0.0.0.0", "[::ffff:127.0.0.2]"):
            with self.subTest(host=host):
                answer = ask(host)
                self.assertOpenAIError(answer.status, answer.body, 403)

    def test_foreign_names_and_pages_are_refused_on_every_route_and_preflight(self):
        fake = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        cases = [({"Host": "rebind.evil.example"}, "GET", "/health"),
                 ({"Host": "rebind.evil.example"}, "OPTIONS", "/v1/chat/completions"),
                 ({"Host": "rebind.evil.example"}, "GET", "/freeride/status"),
                 ({"Origin": "null"}, "POST", "/v1/chat/completions"),
                 ({"Origin": "null"}, "OPTIONS", "/v1/chat/completions"),
                 ({"Origin": "http://127.0.0.1:8080"}, "GET", "/v1/models"),
                 ({"Origin": "https://evil.example"}, "GET", "/metrics"),
                 ({"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "authorization"}, "OPTIONS", "/v1/messages")]
        for headers, method, path in cases:
            with self.subTest(headers=headers, method=method, path=path):
                data = chat_bytes(headers=headers, method=method, path=path) if method == "POST" \
                    else chat_bytes(b"", {**headers, "Content-Length": None}, method=method,
                                    path=path)
                answer = parse_responses(exchange(self.gateway.port, data), [method])[0]
                error = self.assertOpenAIError(answer.status, answer.body, 403, path=path)
                if path != "/v1/messages":
                    self.assertIn(error["code"], ("forbidden_host", "forbidden_origin"))
                self.assertIsNone(answer.headers.get("Access-Control-Allow-Origin"))
        self.assertEqual(fake.requests, [])

    def test_keys_never_appear_in_answers_events_state_status_metrics_or_the_cli(self):
        secret, other = "gsk-live-8f3a9c0d1e2b4a5f", "nvapi-Zq7XwQ2mB9kP4tR6yU8i"

        def echo_key(request):  # a provider that quotes the caller's key in its errors
            return fakes.Reply(401, None, {"error": {
                "message": f"Invalid API Key: {request.key} (Authorization: Bearer {request.key})",
                "type": "invalid_request_error", "code": "invalid_api_key"}})

        def quote_key_in_400(request):
            return fakes.Reply(400, None, {"error": {"message": f"bad request for key {request.key}",
                                                     "key": request.key}})

        groq, nvidia = self.fake("groq"), self.fake("nvidia")
        groq.default(echo_key)
        nvidia.default(quote_key_in_400)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.start_gateway(groq=secret, nvidia=other)
            answers = [self.chat(), self.chat(stream=True), self.call("GET", "/freeride/status"),
                       self.call("GET", "/metrics"), self.call("GET", "/v1/models")]
            self.gateway.close()
        seen = [a.body for a in answers] + [bytes(str(dict(a.headers)), "utf-8") for a in answers]
        seen += [p.read_bytes() for p in self.home.iterdir() if p.is_file()]
        env = clean_env(FREERIDE_HOME=str(self.home), **self.provider_env(groq=secret, nvidia=other))
        for args in (("status",), ("status", "--json"), ("doctor",), ("list", "--refresh")):
            result = run_cli(*args, env=env, timeout=30)
            seen += [result.stdout.encode(), result.stderr.encode()]
        seen.append(err.getvalue().encode())
        self.assertEqual(answers[0].status, 400)  # nvidia's client error comes back ...
        self.assertIn(b"[redacted]", answers[0].body)  # ... with the key blotted out
        for text in seen:
            for key in (secret, other, secret[4:], other[6:]):
                self.assertNotIn(key.encode(), text)

    def test_a_key_the_http_library_cannot_send_is_a_clean_error_and_never_printed(self):
        # A key pasted with a stray line break or a typographic dash: http.client refuses to
        # put it in a header, and its exception message quotes the whole header value.
        for (name, value), debug in itertools.product(
                (("line break", ["gsk-first-half\nsecond-half"]),
                 ("non-latin-1 dash", "gsk\u2010typographic-dash-key")), (False, True)):
            with self.subTest(key=name, debug=debug):
                fake = fakes.FakeUpstream("groq").start()
                self.addCleanup(fake.close)
                env = {"FREERIDE_PROVIDERS": "groq",
                       "GROQ_API_KEY": json.dumps(value) if isinstance(value, list) else value,
                       "GROQ_BASE_URL": fake.url}
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    try:
                        gateway = self.gateway_in(env, debug=debug)
                    except freeride.ConfigError as e:  # refusing the key at start is fine too
                        self.assertIn("GROQ_API_KEY", str(e))
                        text = str(e)
                    else:
                        answer = self.post(gateway)
                        self.assertLess(answer.status, 500, answer.body)
                        self.assertOpenAIError(answer.status, answer.body)
                        gateway.close()
                        text = answer.body.decode()
                text += err.getvalue()
                for fragment in ("first-half", "second-half", "typographic-dash-key"):
                    self.assertNotIn(fragment, text)

    def test_the_readme_security_section_describes_every_default(self):
        readme = (ROOT / "README.md").read_text()
        self.assertIn("\n## Security\n", readme)
        section = readme.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
        for fact in ("127.0.0.1", "FREERIDE_API_KEY", "constant time", "Host", "DNS rebinding",
                     "Origin", "FREERIDE_ALLOWED_ORIGINS", "preflight", "403", "[redacted]",
                     "0600", "0700"):
            with self.subTest(fact=fact):
                self.assertIn(fact, section)

    def test_state_files_are_private_in_a_private_home(self):
        home = self.new_home() / "not-yet" / "freeride"
        fake = self.fake("groq")
        fake.on(fakes.error("groq", "rate_rpm", retry_after=600), key="gsk-a")
        gateway = self.gateway_in(self.provider_env(groq=["gsk-a", "gsk-b"]), home=home)
        self.assertEqual(self.post(gateway).status, 200)
        gateway.close()
        self.assertEqual(home.stat().st_mode & 0o777, 0o700)
        names = sorted(p.name for p in home.iterdir())
        for expected in ("cooldown.json", "events.jsonl", "usage.json"):
            self.assertIn(expected, names)
        for path in home.iterdir():
            with self.subTest(file=path.name):
                self.assertEqual(path.stat().st_mode & 0o777, 0o600)
        self.assertFalse([n for n in names if n.endswith(".tmp")], names)


# ------------------------------------------------------------------------------ bad input

FUZZ_METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE",
                b"CONNECT", b"BREW", b"", b"G\x00T", b"post", b"POST POST"]
FUZZ_PATHS = [b"/v1/chat/completions", b"/chat/completions", b"/v1/models", b"/health",
              b"/metrics", b"/freeride/status", b"/v1/embeddings", b"/v1/messages",
              b"/v1/responses", b"/", b"*", b"http://localhost/v1/chat/completions",
              b"/v1/chat/completions?stream=true&x=%ff", b"/%00", b"/../../etc/passwd", b"//",
              b"/v1/chat/completions#frag", b"/\xff\xfe", b"/v1/" + b"a" * 3000, b""]
FUZZ_VERSIONS = [b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.1.1",
                                     b"HTTP/x", b"", b"http/1.1", b"HTTP/1.10", b"HTTP/01.1"]
FUZZ_HEADERS = [
    (b"Host", [b"localhost", b"127.0.0.1", b"", b"evil.example", b"[::1]:1", b"a" * 3000,
               b"127.0.0.1:99999", b"localhost\x00"]),
    (b"Content-Type", [b"application/json", b"text/plain", b"", b"\xff"]),
    (b"Transfer-Encoding", [b"chunked", b"gzip, chunked", b"identity", b"chunked, chunked", b"x"]),
    (b"Content-Length", [b"0", b"-1", b"abc", b"1e3", b"99999999999999999999999", b"5, 5",
                         b" 12 ", b"+5", b"0x10", b"\xff"]),
    (b"Expect", [b"100-continue", b"nothing"]),
    (b"Connection", [b"close", b"keep-alive", b"upgrade", b"\x00"]),
    (b"Authorization", [b"Bearer x", b"Bearer", b"\xff" * 10]),
    (b"Origin", [b"null", b"https://evil.example"]),
    (b"X-Api-Key", [b"k"]),
    (b"Accept", [b"text/event-stream", b"*/*"]),
    (b"\xff\xfe", [b"binary name"]), (b"No Colon Header", [None]), (b"", [b"empty name"]),
    (b" folded", [b"continuation"]), (b"X-Long", [b"v" * 20000]),
]


def random_json(rng, depth=0):
    kinds = ["null", "bool", "int", "float", "str", "str", "list", "dict"]
    kind = rng.choice(kinds[:6] if depth > 5 else kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 2 ** 63, -2 ** 64, rng.randint(-10 ** 6, 10 ** 6)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-320, rng.random()])
    if kind == "str":
        return rng.choice(["", "user", "assistant", "auto", "free", "llama-3.3-70b",
                           "gpt-4o", "\u0000", "\u2028", "🚀" * 10, "x" * 5000,
                           "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(0, 30)))])
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["role", "content", "model", "messages", "stream", "type", "tools",
                        "image_url", "x", ""]): random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def random_body(rng):
    """A chat-like JSON body with a few fields replaced, removed or added."""
    doc = {"model": "auto", "messages": [{"role": "user", "content": "fuzz"}]}
    for _ in range(rng.randint(0, 3)):
        field = rng.choice(["model", "messages", "stream", "tools", "stream_options", "n",
                            "max_tokens", "input", "system", "temperature", "functions"])
        roll = rng.random()
        if roll < 0.25:
            doc.pop(field, None)
        elif roll < 0.5 and field == "messages":
            doc[field] = [random_json(rng) for _ in range(rng.randint(0, 3))]
        elif roll < 0.6 and field == "stream":
            doc[field] = True
        else:
            doc[field] = random_json(rng)
    if rng.random() < 0.1:
        doc = random_json(rng)
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.01:  # nesting deeper than any parser's recursion limit
        depth = rng.choice([1000, 5000, 50000])
        text = text.replace('"fuzz"', "[" * depth + "]" * depth)
    if rng.random() < 0.05:
        text = text.replace('"fuzz"', '"\\ud800\\udfff\\ud800"')
    return text.encode("utf-8", "surrogatepass")


def encode_body(rng, body, headers):
    """Frame a body: honest or lying Content-Length, none, or (maybe broken) chunks."""
    roll = rng.random()
    if roll < 0.6:
        headers.append((b"Content-Length", str(len(body)).encode()))
        return body
    if roll < 0.7:
        headers.append((b"Content-Length", str(rng.randint(0, 2 * len(body) + 10)).encode()))
        return body
    if roll < 0.75:
        return body
    headers.append((b"Transfer-Encoding", b"chunked"))
    out, i = b"", 0
    while i < len(body):
        n = rng.randint(1, max(1, len(body) - i))
        size = b"%x" % n
        if rng.random() < 0.1:
            size = rng.choice([b"-1", b"zz", b"", b"%x" % (n + 5), b"ffffffffffffffff",
                               size + b";ext=1", b"0x" + size])
        out += size + b"\r\n" + body[i:i + n] + b"\r\n"
        i += n
    if rng.random() < 0.9:
        out += b"0\r\n" + (b"X-Trailer: 1\r\n" if rng.random() < 0.2 else b"") + b"\r\n"
    return out


def structured_request(rng):
    method = rng.choice(FUZZ_METHODS) if rng.random() < 0.3 else rng.choice([b"POST", b"GET"])
    path = rng.choice(FUZZ_PATHS) if rng.random() < 0.5 else b"/v1/chat/completions"
    version = rng.choice(FUZZ_VERSIONS)
    headers = [(b"Host", b"127.0.0.1")] if rng.random() < 0.9 else []
    for _ in range(rng.randint(0, 4)):
        name, values = rng.choice(FUZZ_HEADERS)
        headers.append((name, rng.choice(values)))
    if rng.random() < 0.03:
        headers += [(b"X-Flood-%d" % i, b"x") for i in range(rng.choice([50, 101, 500]))]
    body = encode_body(rng, random_body(rng), headers) if method != b"GET" or rng.random() < 0.1 \
        else b""
    line = b" ".join(p for p in (method, path, version) if p or rng.random() < 0.5)
    head = [line] + [n + b": " + v if v is not None else n for n, v in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def mutate(rng, data):
    """Flip, insert, delete, duplicate or cut bytes of a request."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not data:
            break
        op = rng.randrange(7)
        i = rng.randrange(len(data))
        if op == 0:
            data[i] = rng.randrange(256)
        elif op == 1:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del data[i:i + rng.randint(1, 40)]
        elif op == 3:
            j = min(len(data), i + rng.randint(1, 200))
            data[i:i] = data[i:j]
        elif op == 4:
            del data[i:]
        elif op == 5:
            data[i:i] = rng.choice([b"\r\n", b"\n", b"\r\n\r\n", b"\x00", b":", b" "])
        else:
            data[:] = data.replace(b"\r\n", b"\n")
    return bytes(data)


def fuzz_case(rng):
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randint(0, 2000))
    if roll < 0.2:
        return b"\r\n".join(rng.randbytes(rng.randint(0, 80)) for _ in range(rng.randint(1, 10)))
    if roll < 0.55:
        return structured_request(rng)
    if roll < 0.9:
        return mutate(rng, structured_request(rng) if rng.random() < 0.3 else chat_bytes(
            random_body(rng) if rng.random() < 0.3 else None))
    # a few valid requests back to back (pipelined), some of them mutated
    parts = [chat_bytes() if rng.random() < 0.7 else structured_request(rng)
             for _ in range(rng.randint(2, 4))]
    return b"".join(parts)


class BadInputTest(Hardening):
    def setUp(self):
        super().setUp()
        self.upstream = self.fake("groq")
        self.upstream.default(echo)

    def start(self, **env):
        return self.start_gateway({**FAST, "FREERIDE_FIRST_BYTE_TIMEOUT": "5",
                                   "FREERIDE_IDLE_TIMEOUT": "5", **env}, groq="gsk-1")

    def still_serves(self):
        r = self.chat(text="still here")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "echo:still here")

    def test_malformed_json_bodies_get_openai_400s_and_never_reach_a_provider(self):
        self.start()
        msgs = [{"role": "user", "content": "x"}]
        cases = {
            "invalid JSON": b'{"model": "auto", "messages": [',
            "empty body": b"",
            "invalid UTF-8": b'{"model": "auto\xff\xfe", "messages": []}',
            "a JSON list": b"[1, 2, 3]",
            "a JSON string": b'"hello"',
            "a JSON number": b"42",
            "JSON null": b"null",
            "missing model": json.dumps({"messages": msgs}).encode(),
            "model not a string": json.dumps({"model": 7, "messages": msgs}).encode(),
            "model empty": json.dumps({"model": " ", "messages": msgs}).encode(),
            "missing messages": json.dumps({"model": "auto"}).encode(),
            "messages not a list": json.dumps({"model": "auto", "messages": "hi"}).encode(),
            "messages an object": json.dumps({"model": "auto", "messages": msgs[0]}).encode(),
            "messages empty": json.dumps({"model": "auto", "messages": []}).encode(),
            "stream not a bool": json.dumps({"model": "auto", "messages": msgs,
                                             "stream": "true"}).encode(),
            "stream a number": json.dumps({"model": "auto", "messages": msgs,
                                           "stream": 1}).encode(),
            "a 5000-digit number": b'{"model": "auto", "messages": [], "n": ' + b"9" * 5000 + b"}",
        }
        for name, body in cases.items():
            with self.subTest(case=name):
                r = self.call("POST", "/v1/chat/completions", body)
                self.assertOpenAIError(r.status, r.body, 400)
        self.assertEqual(self.upstream.requests, [])
        self.still_serves()

    def test_deeply_nested_json_is_a_400_not_an_internal_error(self):
        self.start()
        for depth in (10_000, 100_000):
            for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
                with self.subTest(depth=depth, nesting=opener):
                    body = (b'{"model": "auto", "messages": ' + opener * depth + b"1"
                            + closer * depth + b"}")
                    r = self.call("POST", "/v1/chat/completions", body)
                    self.assertOpenAIError(r.status, r.body, 400)
        self.assertEqual(self.upstream.requests, [])
        self.still_serves()

    def test_a_body_over_the_configurable_limit_is_413_without_being_read(self):
        self.start(FREERIDE_MAX_BODY="2000")
        padded = dict(CHAT, messages=[{"role": "user", "content": "x" * 1800}])
        size = len(json.dumps(padded))
        fits = dict(CHAT, messages=[{"role": "user", "content": "x" * (1800 - (size - 2000))}])
        self.assertEqual(len(json.dumps(fits)), 2000)
        self.assertEqual(self.call("POST", "/v1/chat/completions", fits).status, 200)
        over = dict(CHAT, messages=[{"role": "user", "content": "x" * (1801 - (size - 2000))}])
        r = self.call("POST", "/v1/chat/completions", over)
        self.assertOpenAIError(r.status, r.body, 413, "request_too_large")
        # A client that announces 10 GB and sends nothing is refused at once, not read.
        started = time.monotonic()
        data = exchange(self.gateway.port, chat_bytes(b"", {"Content-Length": str(10 ** 10)}),
                        half_close=False, timeout=5)
        answer = parse_responses(data, ["POST"])[0]
        self.assertOpenAIError(answer.status, answer.body, 413, "request_too_large")
        self.assertLess(time.monotonic() - started, 1.0)
        # The same limit holds for a chunked body.
        chunk = b"y" * 1500
        data = exchange(self.gateway.port, chat_bytes(
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk, len(chunk), chunk),
            {"Content-Length": None, "Transfer-Encoding": "chunked"}), half_close=False)
        answer = parse_responses(data, ["POST"])[0]
        self.assertOpenAIError(answer.status, answer.body, 413, "request_too_large")
        self.still_serves()

    def test_missing_or_lying_content_length_gets_a_clean_4xx(self):
        self.start()
        body = json.dumps(CHAT).encode()
        cases = {
            "missing": ({"Content-Length": None}, 411),
            "not a number": ({"Content-Length": "twelve"}, 400),
            "negative": ({"Content-Length": "-5"}, 400),
            "two values": ({"Content-Length": f"{len(body)}, {len(body)}"}, 400),
            "longer than the body": ({"Content-Length": str(len(body) + 50)}, 400),
        }
        for name, (headers, expect) in cases.items():
            with self.subTest(case=name):
                answers = parse_responses(exchange(self.gateway.port, chat_bytes(body, headers)),
                                          ["POST"])
                self.assertOpenAIError(answers[0].status, answers[0].body, expect)
                self.assertEqual(answers[0].headers.get("Connection"), "close")
        with self.subTest(case="shorter than the body"):  # the rest is read as the next request
            data = exchange(self.gateway.port, chat_bytes(body, {"Content-Length": "20"}))
            found = statuses(data)
            self.assertTrue(found and all(400 <= s < 500 for s in found), data[:500])
            for answer in parse_responses(data, ["POST", "POST"]):
                self.assertOpenAIError(answer.status, answer.body)
        self.assertEqual(self.upstream.requests, [])
        self.still_serves()

    def test_a_client_that_stops_in_the_middle_of_its_body_is_dropped_in_time(self):
        self.start()
        before = handler_threads()
        started = time.monotonic()
        data = exchange(self.gateway.port, chat_bytes(json.dumps(CHAT).encode()[:20],
                                                      {"Content-Length": "200"}),
                        half_close=False, timeout=8)
        self.assertLess(time.monotonic() - started, 4.0)  # FREERIDE_CLIENT_TIMEOUT is 1 s
        if data:  # answering at all is optional; if it answers, it is a JSON 408
            answer = parse_responses(data, ["POST"])[0]
            self.assertOpenAIError(answer.status, answer.body, 408)
        self.assertTrue(wait_until(lambda: handler_threads() <= before, 3))
        self.still_serves()

    def test_chunked_request_bodies_are_read_and_broken_ones_refused(self):
        self.start(FREERIDE_CLIENT_TIMEOUT="5")
        body = json.dumps(dict(CHAT, messages=[{"role": "user", "content": "chunked!"}])).encode()
        parts = [body[:10], body[10:11], body[11:]]
        chunked = b"".join(b"%x;name=value\r\n%s\r\n" % (len(p), p) for p in parts) \
            + b"0\r\nX-Trailer: yes\r\n\r\n"
        head = {"Content-Length": None, "Transfer-Encoding": "chunked"}
        answer = parse_responses(exchange(self.gateway.port, chat_bytes(chunked, head)), ["POST"])[0]
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.json()["choices"][0]["message"]["content"], "echo:chunked!")
        broken = {
            "size is not hex": b"zz\r\n" + body + b"\r\n0\r\n\r\n",
            "ends inside a chunk": b"%x\r\n%s" % (len(body) + 100, body),
            "no size line at all": b"",
        }
        for name, data in broken.items():
            with self.subTest(case=name):
                started = time.monotonic()
                answers = parse_responses(exchange(self.gateway.port, chat_bytes(data, head)),
                                          ["POST"])
                self.assertOpenAIError(answers[0].status, answers[0].body, 400)
                self.assertLess(time.monotonic() - started, 2.0)
        self.still_serves()

    def test_a_negative_chunk_size_is_refused_at_once_not_read_to_the_end(self):
        # int("-1", 16) is -1, and rfile.read(-1) reads until the client closes: no size limit,
        # no answer while the client keeps the connection open.
        self.start(FREERIDE_CLIENT_TIMEOUT="5", FREERIDE_MAX_BODY="1000")
        head = {"Content-Length": None, "Transfer-Encoding": "chunked"}
        started = time.monotonic()
        data = exchange(self.gateway.port, chat_bytes(b"-1\r\n" + b"z" * 5000, head),
                        half_close=False, timeout=8)
        self.assertLess(time.monotonic() - started, 3.0)
        answers = parse_responses(data, ["POST"])
        self.assertTrue(answers, "no answer at all to a negative chunk size")
        self.assertOpenAIError(answers[0].status, answers[0].body)
        self.assertIn(answers[0].status, (400, 413))
        self.assertEqual(self.upstream.requests, [])

    def test_header_floods_and_huge_header_lines_get_431_json(self):
        self.start()
        flood = {f"X-Flood-{i}": "x" for i in range(150)}
        for name, headers in (("150 headers", flood), ("one 70 kB header", {"X-Big": "v" * 70000})):
            with self.subTest(case=name):
                answer = parse_responses(exchange(self.gateway.port, chat_bytes(headers=headers)),
                                         ["POST"])[0]
                self.assertOpenAIError(answer.status, answer.body, 431)
                self.assertEqual(answer.headers.get("Connection"), "close")
        self.assertEqual(self.upstream.requests, [])
        self.still_serves()

    def test_a_very_long_url_gets_414_json_and_a_long_unknown_one_404(self):
        self.start()
        answer = parse_responses(exchange(self.gateway.port, chat_bytes(
            path="/v1/chat/completions?" + "a" * 70000)), ["POST"])[0]
        self.assertOpenAIError(answer.status, answer.body, 414)
        answer = parse_responses(exchange(self.gateway.port, chat_bytes(
            path="/v1/" + "b" * 30000)), ["POST"])[0]
        self.assertOpenAIError(answer.status, answer.body, 404)
        self.still_serves()

    def test_silent_clients_are_dropped_and_their_threads_freed_while_others_are_served(self):
        self.start()
        before = handler_threads()
        idle = []
        for i in range(24):  # nothing, half a request line, half a head, a head and no body
            sock = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10)
            self.addCleanup(sock.close)
            sock.sendall([b"", b"POST /v1/chat", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x",
                          chat_bytes(b"", {"Content-Length": "100"})][i % 4])
            idle.append(sock)
        self.assertTrue(wait_until(lambda: handler_threads() >= before + 24, 3))
        self.still_serves()  # the silent ones do not block anyone
        started = time.monotonic()
        for sock in idle:
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
        self.assertLess(time.monotonic() - started, 3.0)  # FREERIDE_CLIENT_TIMEOUT is 1 s
        self.assertTrue(wait_until(lambda: handler_threads() <= before, 3),
                        f"{handler_threads() - before} handler threads left")

    def test_a_client_trickling_its_request_head_is_dropped_within_a_bound(self):
        # Slow-loris proper: one byte every 0.25 s never trips a 1 s socket timeout, so a
        # per-read timeout alone holds the thread for as long as the client likes.
        self.start()
        sock = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10)
        self.addCleanup(sock.close)
        started = time.monotonic()
        dropped = False
        head = chat_bytes(headers={f"X-Slow-{i}": "y" * 20 for i in range(40)})
        for byte in head[:160]:
            try:
                sock.sendall(bytes([byte]))
                if select_readable(sock) and not sock.recv(65536, socket.MSG_PEEK):
                    dropped = True
                    break
            except OSError:
                dropped = True
                break
            if time.monotonic() - started > 8:
                break
            time.sleep(0.25)
        self.assertTrue(dropped, "a client sending its head one byte at a time was never dropped")
        self.assertLess(time.monotonic() - started, 6.0)

    def test_a_client_trickling_its_request_body_is_dropped_within_a_bound(self):
        # The head arrives whole; then the body one byte every 0.25 s, which never trips the
        # 1 s socket timeout: only a bound on the whole body frees the thread.
        self.start()
        sock = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10)
        self.addCleanup(sock.close)
        body = json.dumps(dict(CHAT, messages=[{"role": "user", "content": "z" * 200}])).encode()
        data = chat_bytes(body)
        split = data.index(b"\r\n\r\n") + 4
        sock.sendall(data[:split])
        started = time.monotonic()
        answer = b""
        for byte in data[split:]:
            try:
                sock.sendall(bytes([byte]))
                if select_readable(sock):
                    answer = sock.recv(65536)
                    break
            except OSError:
                break
            if time.monotonic() - started > 8:
                break
            time.sleep(0.25)
        self.assertLess(time.monotonic() - started, 4.0,
                        "a client sending its body one byte at a time was never dropped")
        if answer:  # answering is optional; if it answers, it is a JSON 408
            parsed = parse_responses(answer, ["POST"])[0]
            self.assertOpenAIError(parsed.status, parsed.body, 408)
        self.assertEqual(self.upstream.requests, [])
        self.still_serves()

    def test_http_1_0_clients_are_answered_and_the_connection_closed(self):
        self.start()
        for name, data, method in (
                ("health", b"GET /health HTTP/1.0\r\n\r\n", "GET"),
                ("chat without Host", chat_bytes(version="HTTP/1.0", headers={"Host": None}), "POST"),
                ("chat stream", chat_bytes(dict(CHAT, stream=True), version="HTTP/1.0"), "POST")):
            with self.subTest(case=name):
                started = time.monotonic()
                raw = exchange(self.gateway.port, data, half_close=False, timeout=10)
                self.assertLess(time.monotonic() - started, 3.0)  # closed, not kept alive
                answers = parse_responses(raw, [method])
                self.assertEqual(len(answers), 1)
                self.assertEqual(answers[0].status, 200, answers[0].body)
        for version in (b"HTTP/2.0", b"HTTP/3", b"HTTP/1.\xb2"):  # int() refuses a Latin-1 "2"
            with self.subTest(version=version):
                raw = exchange(self.gateway.port, b"GET /health " + version + b"\r\n\r\n")
                answer = parse_responses(raw, ["GET"])[0]
                self.assertOpenAIError(answer.status, answer.body)
                self.assertGreaterEqual(answer.status, 400)
                self.assertLess(answer.status, 600)
        self.still_serves()

    def test_pipelined_requests_are_answered_in_order_on_one_connection(self):
        self.start()
        plan = [("GET", b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n", None),
                ("POST", chat_bytes(dict(CHAT, messages=[{"role": "user", "content": "p1"}])), "p1"),
                ("POST", chat_bytes(dict(CHAT, stream=True,
                                         messages=[{"role": "user", "content": "p2"}])), "p2"),
                ("POST", chat_bytes(b"{broken"), None),
                ("POST", chat_bytes(dict(CHAT, messages=[{"role": "user", "content": "p3"}])), "p3"),
                ("GET", b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n", None)]
        with socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10) as sock:
            sock.sendall(b"".join(data for _, data, _ in plan))
            answers = read_responses(sock, [m for m, _, _ in plan])
        self.assertEqual([a.status for a in answers], [200, 200, 200, 400, 200, 404])
        self.assertEqual(answers[1].json()["choices"][0]["message"]["content"], "echo:p1")
        self.assertEqual(streamed_text(answers[2].body)[0], "echo:p2")
        self.assertEqual(answers[4].json()["choices"][0]["message"]["content"], "echo:p3")
        self.assertEqual(len(self.upstream.requests), 3)

    def test_generated_requests_never_get_a_5xx_nor_leak_threads_or_files(self):
        cases = 10000 if LONG else 300
        seed = int(os.environ.get("FREERIDE_FUZZ_SEED", "8080"))
        print(f"\nfuzz: {cases} cases, seed {seed} (FREERIDE_FUZZ_SEED replays)", file=sys.stderr)
        self.start()
        self.still_serves()
        self.gateway.pool.close()
        assert wait_until(lambda: handler_threads() == 0, 3)
        threads_before, fds_before = threading.active_count(), open_fds()
        rng = random.Random(seed)
        inputs = [fuzz_case(rng) for _ in range(cases)]

        def run(index):
            """None, or (kind of problem, details) for one generated request."""
            data = inputs[index]
            try:
                raw = exchange(self.gateway.port, data, timeout=15)
            except AssertionError as e:
                return "no answer and no close", f"case {index}: {e}"
            found = statuses(raw)
            if any(s >= 500 for s in found):
                line = raw.split(b"\r\n", 1)[0].decode("latin-1")
                return f"5xx: {line}", f"case {index}: {found} for {data[:160]!r} -> {raw[:300]!r}"
            if found and found[0] >= 400 and not data.startswith(b"HEAD "):
                try:
                    first = parse_responses(raw, ["POST"])[0]
                    error = strict_json(first.body)["error"]
                    assert isinstance(error["message"], str) and isinstance(error["type"], str)
                except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
                    return "error answer not JSON", f"case {index}: {e!r}: {raw[:300]!r}"
            return None

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            problems = [p for p in pool.map(run, range(cases)) if p]
        kinds = {}
        for kind, details in problems:
            kinds.setdefault(kind, []).append(details)
        report = "".join(f"\n  {len(v)} x {k}; e.g. {v[0][:400]}" for k, v in kinds.items())
        if problems:
            self.fail(f"{len(problems)} of {cases} generated requests misbehaved:{report}")
        self.still_serves()
        self.gateway.pool.close()
        self.assertTrue(wait_until(lambda: handler_threads() == 0, 5),
                        f"{handler_threads()} gateway connection threads still alive")
        self.assertTrue(wait_until(lambda: threading.active_count() <= threads_before + 2, 5),
                        f"threads: {threads_before} before, {threading.active_count()} after")
        self.assertTrue(wait_until(lambda: open_fds() <= fds_before + 3, 5),
                        f"file descriptors: {fds_before} before, {open_fds()} after")


# ---------------------------------------------------------------------------- upstream faults

def _refused_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


UNRESOLVABLE = "dns-failure.freeride.test"  # answered by the patched resolver, never sent out


class UpstreamFaultTest(Hardening):
    """Every upstream fault ends in failover, or in a clear error, within the timeouts."""

    def setUp(self):
        super().setUp()
        real = socket.getaddrinfo

        def resolver(host, *args, **kwargs):  # a DNS failure without any DNS traffic
            if isinstance(host, str) and host.endswith(UNRESOLVABLE):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real(host, *args, **kwargs)

        patcher = mock.patch.object(socket, "getaddrinfo", resolver)
        patcher.start()
        self.addCleanup(patcher.stop)

    def tls_fake(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(DATA / "localhost-cert.pem", DATA / "localhost-key.pem")
        upstream = fakes.FakeUpstream("groq", tls=True, ssl_context=context).start()
        self.addCleanup(upstream.close)
        return upstream.url

    def fake_url(self, reply):
        upstream = fakes.FakeUpstream("groq").start()
        self.addCleanup(upstream.close)
        upstream.default(reply)
        return upstream.url

    def faults(self):
        """name -> the base URL of a groq upstream that fails that way."""
        garbage_events = fakes.Reply(events=["garbage line", "data: {not json",
                                             ": comment only", "event: ping", "data: [1, 2]"])
        return {
            "connection refused": _refused_url(),
            "DNS failure": f"http://{UNRESOLVABLE}/v1",
            "host name no resolver accepts": "http://" + "x" * 64 + ".invalid/v1",
            "TLS to a plain HTTP port": self.fake_url(fakes.chat_ok()).replace("http:", "https:"),
            "TLS with an untrusted certificate": self.tls_fake(),
            "TLS handshake never answered": self.raw_upstream(never_answers).url.replace(
                "http:", "https:"),
            "connection accepted, never answered": self.raw_upstream(never_answers).url,
            "request read, never answered": self.fake_url(fakes.Reply(hang=True)),
            "reset before the answer": self.raw_upstream(reads_then_resets).url,
            "reset mid-body": self.raw_upstream(reset_mid_body).url,
            "reset mid-stream before content": self.raw_upstream(reset_mid_stream).url,
            "HTML 502 page": self.fake_url(fakes.error("groq", "html_502")),
            "HTML 524 page": self.fake_url(fakes.error("groq", "html_524")),
            "200 with a non-JSON body": self.fake_url(fakes.error("groq", "garbage_200")),
            "200 with a truncated body": self.fake_url(fakes.error("groq", "truncated_200")),
            "SSE stream of garbage lines": self.fake_url(garbage_events),
            "stall after the headers": self.fake_url(
                lambda r: fakes.Reply(events=["data: [DONE]"], stall_after=0)
                if isinstance(r.body, dict) and r.body.get("stream")
                else fakes.Reply(body=b'{"id": 1}', stall_after=0)),
            "empty 200": self.fake_url(fakes.Reply(200, {"Content-Type": "application/json"}, b"")),
        }

    def test_every_fault_fails_over_or_ends_in_a_clear_error_within_the_timeouts(self):
        nvidia = self.fake("nvidia")
        nvidia_env = self.provider_env(nvidia="nvapi-1")
        faults = self.faults()
        bound = 4.0  # connect 1 s + first byte 1 s + idle 1 s, plus slack

        def run(name, variant):
            env = {"FREERIDE_PROVIDERS": "groq" if variant == "alone" else "groq,nvidia",
                   "GROQ_API_KEY": "gsk-1", "GROQ_BASE_URL": faults[name],
                   "NVIDIA_API_KEY": "nvapi-1", "NVIDIA_BASE_URL": nvidia_env["NVIDIA_BASE_URL"]}
            home = self.new_home()
            gateway = freeride.Gateway(freeride.Config(env={"FREERIDE_HOME": str(home), **FAST,
                                                            **env}, port=0)).start()
            try:
                started = time.monotonic()
                try:
                    answer = self.post(gateway, dict(CHAT, stream=variant == "failover, streamed"),
                                       timeout=20)
                except (OSError, http.client.HTTPException) as e:
                    return e, time.monotonic() - started
                return answer, time.monotonic() - started
            finally:
                gateway.close()

        jobs = [(name, variant) for name in faults
                for variant in ("failover", "failover, streamed", "alone")]
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            results = dict(zip(jobs, pool.map(lambda job: run(*job), jobs)))
        for (name, variant), (answer, seconds) in results.items():
            with self.subTest(fault=name, variant=variant):
                self.assertIsInstance(answer, Answer, f"no answer: {answer!r}")
                self.assertLess(seconds, bound)
                if variant == "alone":
                    error = self.assertOpenAIError(answer.status, answer.body)
                    self.assertIn(answer.status, (502, 503, 504), answer.body)
                    self.assertNotEqual(error["code"], "internal_error")
                    self.assertTrue(error.get("attempts"), answer.body)
                else:
                    self.assertEqual(answer.status, 200, answer.body[:300])
                    self.assertEqual(answer.headers["X-FreeRide-Provider"], "nvidia")
                    if variant == "failover, streamed":
                        text, payloads = streamed_text(answer.body)
                        self.assertEqual(text, "Hello")
                        self.assertEqual(payloads[-1], "[DONE]")

    def test_garbage_in_a_stream_after_content_never_reaches_the_client_as_data(self):
        upstream = self.raw_upstream(sends(sse_bytes(
            b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}',
            content_event("Hel"), b"data: {not json", b"garbage line without a field",
            b"data: \xff\xfe\x00 binary", content_event("lo"), b"data: [DONE]")))
        gateway = self.gateway_in({"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "gsk-1",
                                   "GROQ_BASE_URL": upstream.url})
        answer = self.post(gateway, dict(CHAT, stream=True))
        self.assertEqual(answer.status, 200)
        for line in answer.body.split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                with self.subTest(line=line[:60]):
                    self.assertTrue(payload == b"[DONE]" or _parses(payload),
                                    f"the client got a data line it cannot parse: {line!r}")
        self.assertTrue(answer.body.rstrip().endswith(b"data: [DONE]"))
        self.assertIn(b"Hel", answer.body)

    def test_retry_after_of_garbage_or_of_a_year_is_bounded_and_never_breaks_the_answer(self):
        self.fake("nvidia")
        nvidia = {k: v for k, v in self.provider_env(nvidia="nvapi-1").items()
                  if k.startswith("NVIDIA")}
        values = ["garbage", "31536000", "Fri, 31 Dec 9999 23:59:59 GMT", "nan", "NaN", "inf",
                  "-Infinity", "-5", "1e400", "9" * 40, "", "1.5h", "Thu, 01 Jan 1970 00:00:00 GMT"]

        def run(value, alone):
            upstream = fakes.FakeUpstream("groq").start()
            self.addCleanup(upstream.close)
            upstream.default(fakes.Reply(429, {"Retry-After": value}, {"error": {
                "message": "Rate limit reached", "type": "requests",
                "code": "rate_limit_exceeded"}}))
            home = self.new_home()
            gateway = self.gateway_in({"FREERIDE_PROVIDERS": "groq" if alone else "groq,nvidia",
                                       "GROQ_API_KEY": "gsk-1", "GROQ_BASE_URL": upstream.url,
                                       **nvidia}, home)
            answer = self.post(gateway)
            status = self.call("GET", "/freeride/status", gateway=gateway)
            gateway.close()
            return answer, status, (home / "cooldown.json").read_bytes()

        jobs = [(value, alone) for value in values for alone in (True, False)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = dict(zip(jobs, pool.map(lambda job: run(*job), jobs)))
        for (value, alone), (answer, status, cooldowns) in results.items():
            with self.subTest(retry_after=value, alone=alone):
                if not alone:
                    self.assertEqual(answer.status, 200, answer.body[:300])
                    self.assertEqual(answer.headers["X-FreeRide-Provider"], "nvidia")
                else:
                    self.assertOpenAIError(answer.status, answer.body, 429,
                                           "all_providers_exhausted")
                    retry = answer.headers["Retry-After"]
                    self.assertRegex(retry, r"^\d+$")
                    self.assertTrue(1 <= int(retry) <= 32 * 86400 + 1, retry)
                self.assertEqual(status.status, 200)
                strict_json(status.body)
                for row in strict_json(cooldowns)["cooldowns"]:
                    self.assertLessEqual(row["until"], time.time() + 32 * 86400 + 60)

    def test_the_request_deadline_bounds_the_whole_walk(self):
        hang = fakes.FakeUpstream("groq").start()
        self.addCleanup(hang.close)
        hang.default(fakes.Reply(hang=True))
        cases = {
            "three providers that never answer": (
                {"FREERIDE_PROVIDERS": "groq,nvidia,openrouter", "GROQ_API_KEY": "g",
                 "NVIDIA_API_KEY": "n", "OPENROUTER_API_KEY": "o", "GROQ_BASE_URL": hang.url,
                 "NVIDIA_BASE_URL": hang.url, "OPENROUTER_BASE_URL": hang.url}, False),
            "a body that trickles in": (
                {"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "g",
                 "GROQ_BASE_URL": self.raw_upstream(trickle_body).url}, False),
            "a stream whose first line trickles in": (
                {"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "g",
                 "GROQ_BASE_URL": self.raw_upstream(trickle_stream_line).url}, True),
            "embeddings whose body trickles in": (
                {"FREERIDE_PROVIDERS": "nvidia", "NVIDIA_API_KEY": "n",
                 "NVIDIA_BASE_URL": self.raw_upstream(trickle_body).url}, "embeddings"),
        }
        timeouts = {"FREERIDE_REQUEST_DEADLINE": "1.5", "FREERIDE_FIRST_BYTE_TIMEOUT": "1",
                    "FREERIDE_IDLE_TIMEOUT": "1"}

        def run(name):
            env, stream = cases[name]
            gateway = self.gateway_in({**env, **timeouts})
            started = time.monotonic()
            if stream == "embeddings":
                answer = self.post(gateway, {"model": "auto", "input": "x"},
                                   path="/v1/embeddings", timeout=20)
            else:
                answer = self.post(gateway, dict(CHAT, stream=stream), timeout=20)
            return answer, time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(cases, pool.map(run, cases)))
        for name, (answer, seconds) in results.items():
            with self.subTest(case=name):
                self.assertLess(seconds, 3.0, "the 1.5 s request deadline did not bound the walk")
                self.assertOpenAIError(answer.status, answer.body)
                self.assertIn(answer.status, (502, 503, 504))


def _parses(payload):
    try:
        strict_json(payload)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- load (soak)

class SoakTest(Hardening):
    def test_concurrent_clients_through_rate_limiting_providers_lose_nothing(self):
        total, clients = (20000, 64) if LONG else (400, 16)
        seed = 2024
        print(f"\nsoak: {total} requests, {clients} clients, seed {seed}", file=sys.stderr)
        lock = threading.Lock()
        rng = random.Random(seed)
        served = {}      # request number -> successful upstream answers for it
        limited = [0]
        rate_limit = {
            "groq": lambda: fakes.error("groq", "rate_rpm", retry_after=1),
            "nvidia": lambda: fakes.error("nvidia", "rate", headers={"Retry-After": "1"}),
            "openrouter": lambda: fakes.error("openrouter", "rate_minute", retry_after=1)}

        def provider(name):
            upstream = self.fake(name)

            def answer(request):
                with lock:
                    limit = rng.random() < 0.08
                    if len(upstream.requests) > 1000:
                        del upstream.requests[:]  # keep the fake's own memory flat
                    if limit:
                        limited[0] += 1
                        return rate_limit[name]()
                    n = int(request.body["messages"][-1]["content"].split("-")[1])
                    served[n] = served.get(n, 0) + 1
                return echo(request)
            upstream.default(answer)

        for name in rate_limit:
            provider(name)
        keys = {n: [f"{n}-key-{i}" for i in range(6)] for n in rate_limit}
        self.start_gateway({"FREERIDE_CLIENT_TIMEOUT": "10"}, **keys)
        threads_at_start = threading.active_count()
        outcomes = [None] * total   # (status, stream, problem or None)
        counter = iter(range(total))
        samples = []                # (requests started, threads, RSS)
        done = threading.Event()

        def monitor():
            while not done.wait(0.25):
                with lock:
                    started = sum(o is not None for o in outcomes)
                samples.append((started, threading.active_count(), rss_bytes()))

        def check(n, status, stream, body):
            tag = f"soak-{n}"
            try:
                if status == 200:
                    text = streamed_text(body)[0] if stream else \
                        strict_json(body)["choices"][0]["message"]["content"]
                    if text != f"echo:{tag}":
                        return f"{tag}: got {text!r}"
                elif status in (429, 503):
                    error = strict_json(body)["error"]
                    if not isinstance(error["message"], str):
                        return f"{tag}: error without a message"
                else:
                    return f"{tag}: {status} {body[:200]!r}"
            except (ValueError, KeyError, TypeError, IndexError) as e:
                return f"{tag}: unreadable answer {body[:200]!r} ({e!r})"
            return None

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=30)
            try:
                while True:
                    with lock:
                        n = next(counter, None)
                    if n is None:
                        return
                    stream = n % 10 == 0
                    body = json.dumps(dict(CHAT, stream=stream,
                                           messages=[{"role": "user", "content": f"soak-{n}"}]))
                    try:
                        conn.request("POST", "/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
                        response = conn.getresponse()
                        status, data = response.status, response.read()
                        outcomes[n] = (status, stream, check(n, status, stream, data))
                    except (OSError, http.client.HTTPException) as e:
                        outcomes[n] = ("lost", stream, f"soak-{n}: lost ({e!r})")
                        conn.close()
            finally:
                conn.close()

        watcher = threading.Thread(target=monitor, daemon=True)
        watcher.start()
        started = time.monotonic()
        workers = [threading.Thread(target=client) for _ in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=600)
        done.set()
        watcher.join()
        elapsed = time.monotonic() - started

        counts, problems = {}, []
        for n, outcome in enumerate(outcomes):
            status, _, problem = outcome or ("missing", False, f"soak-{n}: never answered")
            counts[status] = counts.get(status, 0) + 1
            if problem:
                problems.append(problem)
            elif status == 200 and served.get(n) != 1:  # exactly one upstream answer was used
                problems.append(f"soak-{n}: answered {served.get(n)} times upstream")
            elif status != 200 and served.get(n):
                problems.append(f"soak-{n}: served upstream but the client got {status}")
        half = [s for s in samples if s[0] >= total // 2]
        first = [s for s in samples if total // 5 <= s[0] < total // 2]
        print(f"soak: {elapsed:.1f} s, {total / elapsed:.0f} requests/s, outcomes {counts}, "
              f"{limited[0]} rate-limited upstream answers; threads {threads_at_start} at start, "
              f"peak {max((s[1] for s in samples), default=0)}; RSS "
              f"{[s[2] >> 20 for s in samples[::max(1, len(samples) // 8)]]} MiB", file=sys.stderr)
        self.assertEqual(problems[:10], [], f"{len(problems)} problems")
        self.assertGreater(counts.get(200, 0), total // 2)
        # Threads stay bounded: client threads, one gateway thread per client connection, the
        # fakes' threads for connections in use (one per client at most) or pooled (at most
        # Pool.MAX_IDLE per upstream, which error answers now keep too), a few of our own.
        peak = max((s[1] for s in samples), default=0)
        self.assertLess(peak, threads_at_start + 3 * clients
                        + len(rate_limit) * freeride.Pool.MAX_IDLE + 20)
        # Threads and memory stay flat: the second half of the run holds no more than the first.
        if LONG and first and half:
            early = max(s[1] for s in first)
            self.assertLessEqual(max(s[1] for s in half), early + max(10, early // 10),
                                 "thread count kept growing")
            self.assertLess(max(s[2] for s in half) - max(s[2] for s in first), 24 << 20,
                            "memory kept growing")
        self.gateway.pool.close()
        self.assertTrue(wait_until(lambda: handler_threads() == 0, 5),
                        f"{handler_threads()} gateway connection threads still alive")
        self.assertTrue(wait_until(lambda: threading.active_count() <= threads_at_start + 2, 5),
                        f"threads: {threads_at_start} at start, {threading.active_count()} after")
        # The events log is valid JSON lines, across its rotation; the state file parses.
        self.gateway.close()
        for path in (self.home / "events.jsonl", self.home / "events.jsonl.1"):
            if path.exists():
                for i, line in enumerate(path.read_bytes().splitlines()):
                    try:
                        strict_json(line)
                    except ValueError:
                        self.fail(f"{path.name} line {i + 1} is not JSON: {line[:200]!r}")
        strict_json((self.home / "cooldown.json").read_bytes())

    def test_a_stream_sent_whole_is_complete_even_when_the_client_hangs_up_right_after(self):
        # Clients close the moment they read the last chunk. If the hang-up watcher sees that
        # before the relay has finished its bookkeeping, a delivered stream is logged as
        # "interrupted (client closed)", its tokens are not counted and its upstream
        # connection is thrown away.
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        body = json.dumps(dict(CHAT, stream=True, stream_options={"include_usage": True}))
        for _ in range(150):
            conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            data = conn.getresponse().read()
            conn.close()
            self.assertTrue(data.rstrip().endswith(b"data: [DONE]"), data[-300:])
        # The last stream's row is logged just after its last byte: wait for all 150.
        terminal = ("complete", "interrupted")
        wait_until(lambda: sum(e["event"] in terminal for e in self.events()) >= 150, 5)
        outcomes = {}
        for e in self.events():
            if e["event"] in ("complete", "interrupted"):
                key = (e["event"], e.get("outcome"))
                outcomes[key] = outcomes.get(key, 0) + 1
        self.assertEqual(outcomes, {("complete", "complete"): 150})


# ------------------------------------------------------------------------------ shared state

class SharedStateTest(Hardening):
    def test_two_gateways_sharing_a_home_never_drop_each_others_cooldowns(self):
        # Cooldowns.flush reads cooldown.json, merges and replaces it. Two gateways flushing
        # at once both read the old file, and the second rename drops what the first wrote.
        # A slow disk (a write that takes 0.2 s) makes the overlap certain.
        env = {"FREERIDE_HOME": str(self.home), "FREERIDE_PROVIDERS": "groq",
               "GROQ_API_KEY": "gsk-1"}
        gateways = [freeride.Gateway(freeride.Config(env=env, port=0)).start() for _ in range(2)]
        for gateway in gateways:
            self.addCleanup(gateway.close)
        real_write = freeride.write_atomic

        def slow_write(path, data):
            time.sleep(0.2)
            real_write(path, data)

        def written(gateway):  # the writer thread runs in order: this waits for the flush
            done = threading.Event()
            gateway.writer.flush_soon(done.set)
            return done.wait(10)

        with mock.patch.object(freeride, "write_atomic", slow_write):
            for n, gateway in enumerate(gateways):
                gateway.cooldowns.cool("groq", f"key-of-gateway-{n}", "*", 600, "RATE_LIMIT", "t")
            self.assertTrue(all(written(g) for g in gateways))
        rows = strict_json((self.home / "cooldown.json").read_bytes())["cooldowns"]
        self.assertEqual({r["key"] for r in rows}, {"key-of-gateway-0", "key-of-gateway-1"},
                         "one gateway's cooldown was overwritten by the other's")
        # Many cooldowns from both, and both closing at the same moment: nothing is lost.
        def cool(gateway, tag):
            for i in range(30):
                gateway.cooldowns.cool("groq", f"{tag}-{i}", "*", 600, "RATE_LIMIT", "test")
                time.sleep(0.001)

        writers = [threading.Thread(target=cool, args=(g, f"g{n}t{t}"))
                   for n, g in enumerate(gateways) for t in range(2)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        closers = [threading.Thread(target=g.close) for g in gateways]
        for t in closers:
            t.start()
        for t in closers:
            t.join()
        keys = {r["key"] for r in strict_json((self.home / "cooldown.json").read_bytes())["cooldowns"]}
        self.assertEqual(len(keys), 122, f"{122 - len(keys)} of 122 cooldowns were lost")

    def test_the_cli_reading_state_while_a_gateway_writes_it_never_sees_a_broken_file(self):
        gateway = self.gateway_in({"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "gsk-1"},
                                  home=self.home)
        stop = threading.Event()

        def churn():
            i = 0
            while not stop.is_set():
                gateway.cooldowns.cool("groq", f"churn-{i}", "*", 60, "RATE_LIMIT", "churn")
                i += 1
                time.sleep(0.002)

        writer = threading.Thread(target=churn, daemon=True)
        writer.start()
        self.addCleanup(stop.set)
        env = clean_env(FREERIDE_HOME=str(self.home), GROQ_API_KEY="gsk-1",
                        FREERIDE_PORT="1")  # no gateway there: status reads the files
        results = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda _: run_cli("status", "--json", env=env), range(6)))
        stop.set()
        writer.join()
        for result in results:
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertNotIn("could not be read", result.stderr)
            strict_json(result.stdout)
        self.assertEqual([p.name for p in self.home.iterdir() if ".corrupt" in p.name], [])

    def test_a_kill_in_the_middle_of_writing_never_leaves_a_broken_state_file(self):
        upstream = self.fake("groq")
        upstream.default(fakes.error("groq", "rate_rpm", retry_after=1))
        keys = json.dumps([f"gsk-{i}" for i in range(25)])
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PROVIDERS="groq",
                        GROQ_API_KEY=keys, GROQ_BASE_URL=upstream.url)
        rounds = 8 if LONG else 2
        rng = random.Random(7)
        for round_ in range(rounds):
            server = ServeProcess(env=env)
            self.addCleanup(lambda p=server.process: p.poll() is None and p.kill())
            stop = threading.Event()

            def hammer():
                while not stop.is_set():
                    try:
                        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
                        conn.request("POST", "/v1/chat/completions", json.dumps(CHAT),
                                     {"Content-Type": "application/json"})
                        conn.getresponse().read()
                        conn.close()
                    except (OSError, http.client.HTTPException):
                        return

            load = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
            for t in load:
                t.start()
            time.sleep(0.4 + rng.random() * 0.8)
            server.process.kill()
            server.process.communicate(timeout=10)
            stop.set()
            for t in load:
                t.join(10)
            with self.subTest(round=round_):
                for name in ("cooldown.json", "usage.json"):
                    path = self.home / name
                    if path.exists():
                        strict_json(path.read_bytes())
                events = self.home / "events.jsonl"
                if events.exists():
                    for line in events.read_bytes().splitlines():
                        strict_json(line)
                self.assertTrue((self.home / "cooldown.json").exists())
        again = ServeProcess(env=env)
        code, _, err = again.stop()
        self.assertEqual(code, 0)
        self.assertNotIn("could not be read", err)

    def test_a_half_written_temp_file_left_by_a_crash_is_cleaned_up_at_start(self):
        # kill -9 during write_atomic leaves ".cooldown.json.<pid>.<thread>.tmp" behind; a
        # later start should sweep the ones whose process is gone, not keep them forever.
        dead = self.home / ".cooldown.json.2147483646.140000000000000.tmp"  # above pid_max
        dead.write_bytes(b'{"version": 1, "cooldowns": [{"provider": "gr')
        gateway = self.gateway_in({"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "gsk-1"},
                                  home=self.home)
        gateway.close()
        self.assertFalse(dead.exists(), "a crashed writer's temp file is never cleaned up")

    def corrupt_cases(self):
        today = time.strftime("%Y-%m-%d", time.gmtime())
        return {
            "cooldown.json": {
                "invalid JSON": b'{"version": 1, "cooldowns": [',
                "invalid UTF-8": b"\x80\x81\xfe\xff not text",
                "empty": b"",
                "a JSON list": b"[]",
                "cooldowns not a list": b'{"version": 1, "cooldowns": 5}',
                "a directory": None,
            },
            "usage.json": {
                "invalid JSON": b"{{{",
                "days not an object": b'{"version": 1, "days": []}',
                "today not an object": json.dumps({"version": 1, "days": {today: "x"}}).encode(),
                "a provider row not an object": json.dumps(
                    {"version": 1, "days": {today: {"groq": 5}}}).encode(),
                "a directory": None,
            },
        }

    def test_a_corrupt_or_unreadable_state_file_is_moved_aside_with_a_warning(self):
        def run(name, content):
            home = self.new_home()
            path = home / name
            if content is None:
                path.mkdir()
                (path / "inside").write_text("x")
            else:
                path.write_bytes(content)
            upstream = fakes.FakeUpstream("groq").start()
            self.addCleanup(upstream.close)
            gateway = self.gateway_in({"FREERIDE_PROVIDERS": "groq", "GROQ_API_KEY": "gsk-1",
                                       "GROQ_BASE_URL": upstream.url}, home)
            answers = [self.post(gateway), self.call("GET", "/freeride/status", gateway=gateway),
                       self.call("GET", "/metrics", gateway=gateway)]
            gateway.close()
            return home, answers

        jobs = [(name, case, content) for name, cases in self.corrupt_cases().items()
                for case, content in cases.items()]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), \
                concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda job: run(job[0], job[2]), jobs))
        warnings = err.getvalue()
        for (name, case, content), (home, answers) in zip(jobs, results):
            with self.subTest(file=name, case=case):
                chat, status, metrics = answers
                self.assertEqual(chat.status, 200, chat.body[:300])
                self.assertEqual(status.status, 200, status.body[:300])
                self.assertEqual(metrics.status, 200)
                strict_json(status.body)
                path = home / name
                self.assertRegex(warnings, rf"warning: {re.escape(str(path))}\b")
                aside = [p for p in home.iterdir() if p.name.startswith(name + ".corrupt")]
                self.assertEqual(len(aside), 1, sorted(p.name for p in home.iterdir()))
                if content is not None:
                    self.assertEqual(aside[0].read_bytes(), content)
                self.assertTrue(path.is_file())
                strict_json(path.read_bytes())

    def test_an_impossible_cooldown_time_in_the_file_does_not_cool_a_key_forever(self):
        upstream = self.fake("groq")
        key = freeride.key_id("groq", "gsk-1")
        (self.home / "cooldown.json").write_text(
            '{"version": 1, "cooldowns": [{"provider": "groq", "key": "%s", "model": "*", '
            '"until": 1e999, "class": "RATE_LIMIT", "reason": "edited by hand"}]}' % key)
        with contextlib.redirect_stderr(io.StringIO()):
            self.start_gateway(groq="gsk-1")
            answer = self.chat()
            status = self.call("GET", "/freeride/status")
        self.assertEqual(answer.status, 200, "the key is not cooling: the row was left out")
        self.assertEqual(status.status, 200)
        self.assertEqual(strict_json(status.body)["providers"][0]["cooling"], [])
        self.assertEqual(len(upstream.requests), 1)

    def test_odd_cooldown_rows_are_left_out_and_the_rest_keeps_saving(self):
        self.fake("groq").on(fakes.error("groq", "rate_rpm"), key="gsk-1")
        key = freeride.key_id("groq", "gsk-2")
        later = time.time() + 3600
        rows = [{"provider": 7, "key": "k", "model": "*", "until": later, "class": "AUTH"},
                {"provider": ["x"], "key": "k", "model": "*", "until": later, "class": "AUTH"},
                {"provider": "groq", "key": "k", "model": "*", "until": "soon", "class": "AUTH"},
                {"provider": "groq", "key": "k", "model": "*", "until": 1e999, "class": "AUTH"},
                "not a row",
                {"provider": "nvidia", "key": key, "model": "*", "until": later, "class": "AUTH",
                 "reason": "kept"}]
        (self.home / "cooldown.json").write_text(json.dumps({"version": 1, "cooldowns": rows}))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.start_gateway(groq=["gsk-1", "gsk-2"])
            self.assertEqual(self.chat().status, 200)
            saved = self.cooldown_file()
            for _ in range(200):  # the writer saves soon after the 429
                if len(saved) == 2:
                    break
                time.sleep(0.01)
                saved = self.cooldown_file()
        self.assertIn("5 unreadable cooldown row(s) left out", err.getvalue())
        self.assertEqual(sorted(r["provider"] for r in saved), ["groq", "nvidia"],
                         "the good row kept, the new cooldown saved")
        self.assertFalse([p for p in self.home.iterdir() if ".corrupt" in p.name])

    def test_a_corrupt_settings_file_is_moved_aside_with_a_warning(self):
        (self.home / "config.json").write_bytes(b"{not json")
        result = run_cli("telemetry", env=clean_env(FREERIDE_HOME=str(self.home)))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("config.json", result.stderr)
        self.assertIn("warning", result.stderr)
        self.assertTrue([p for p in self.home.iterdir() if p.name.startswith("config.json.corrupt")])
        strict_json((self.home / "config.json").read_bytes())


# ---------------------------------------------------------------------------------- SIGTERM

class ShutdownTest(Hardening):
    def test_sigterm_stops_accepting_finishes_requests_in_flight_flushes_state_and_exits_0(self):
        upstream = self.fake("groq")
        upstream.on(fakes.error("groq", "rate_rpm", retry_after=600), key="gsk-a", times=None)

        def slow(request):
            if request.body.get("stream"):
                return fakes.chat_stream(pieces=("one ", "two ", "three"), event_delay=0.3)
            return fakes.Reply(body=fakes.chat_ok(text="slow answer").body, delay=1.2,
                               headers={"Content-Type": "application/json"})
        upstream.default(slow)
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PROVIDERS="groq",
                        GROQ_API_KEY='["gsk-a", "gsk-b"]', GROQ_BASE_URL=upstream.url,
                        FREERIDE_FIRST_BYTE_TIMEOUT="10")
        server = ServeProcess(env=env)
        self.addCleanup(lambda: server.process.poll() is None and server.process.kill())
        results = {}

        def client(stream):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            try:
                conn.request("POST", "/v1/chat/completions", json.dumps(dict(CHAT, stream=stream)),
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                results[stream] = (response.status, response.read())
            except (OSError, http.client.HTTPException) as e:
                results[stream] = ("lost", repr(e))
            finally:
                conn.close()

        clients = [threading.Thread(target=client, args=(s,)) for s in (False, True)]
        for c in clients:
            c.start()
        self.assertTrue(wait_until(lambda: len(self.keys_seen("groq")) >= 2 and
                                   self.keys_seen("groq").count("gsk-b") >= 2, 10))
        server.process.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
                return False
            except OSError:
                return True
        self.assertTrue(wait_until(refused, 1.0, step=0.02),
                        "the gateway still accepts connections after SIGTERM")
        self.assertTrue(any(c.is_alive() for c in clients))  # refused while still answering
        for c in clients:
            c.join(20)
        _, err = server.process.communicate(timeout=20)
        code = server.process.returncode
        self.assertEqual(code, 0, err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(results[False][0], 200, results[False])
        # The plain request went upstream streamed too (issue 16), and was assembled whole.
        self.assertEqual(strict_json(results[False][1])["choices"][0]["message"]["content"],
                         "one two three")
        self.assertEqual(results[True][0], 200, results[True])
        text, payloads = streamed_text(results[True][1])
        self.assertEqual(text, "one two three")
        self.assertEqual(payloads[-1], "[DONE]")
        rows = strict_json((self.home / "cooldown.json").read_bytes())["cooldowns"]
        self.assertIn(freeride.key_id("groq", "gsk-a"), {r["key"] for r in rows})
        usage = strict_json((self.home / "usage.json").read_bytes())["days"]
        self.assertEqual(usage[time.strftime("%Y-%m-%d", time.gmtime())]["groq"]["requests"], 2)
        events = [strict_json(l) for l in (self.home / "events.jsonl").read_bytes().splitlines()]
        finished = {e["req"] for e in events if e["event"] in ("complete", "interrupted")}
        self.assertEqual(len(finished), 2, events)  # both outcomes reached the log before exit

    def test_closing_waits_for_requests_in_flight_only_as_long_as_the_grace(self):
        upstream = self.fake("groq")
        upstream.default(fakes.Reply(hang=True))
        self.start_gateway({"FREERIDE_FIRST_BYTE_TIMEOUT": "30", "FREERIDE_REQUEST_DEADLINE": "60"},
                           groq="gsk-1")
        outcome = {}

        def client():
            started = time.monotonic()
            try:
                r = self.chat()
                outcome["status"] = r.status
            except (OSError, http.client.HTTPException) as e:
                outcome["status"] = repr(e)
            outcome["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=client)
        thread.start()
        self.assertTrue(upstream.wait_requests(1, 5))
        started = time.monotonic()
        self.gateway.close(grace=1.0)
        self.assertLess(time.monotonic() - started, 4.0)
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertLess(outcome["seconds"], 6.0)
        if isinstance(outcome["status"], int):
            self.assertGreaterEqual(outcome["status"], 500)


if __name__ == "__main__":
    unittest.main()
