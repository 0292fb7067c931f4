"""What a careful user found (issue 18): header injection, keys slipping through, state that
stops saving, junk model names, connections without bound, and the request id missing from
error answers. Real gateway on loopback, fake providers."""
import http.client
import io
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import unittest

import freeride
from tests import fakes
from tests.fakes import Reply
from tests.support import ROOT, GatewayTest, clean_env
from tests.temphome import closed_port

KEY = "sk-or-v1-" + "a1b2c3d4" * 8  # key-sized: whole answers are scanned for keys this long


class Headers(GatewayTest):
    def test_a_model_name_with_line_breaks_or_outside_latin1_never_reaches_a_header_raw(self):
        self.start_gateway({"FREERIDE_CATALOGS": "0"}, openrouter="or-key-12345678")
        for name in ("evil\r\nX-Injected: yes\r\nx:free", "модель:free", "tab\there:free"):
            with self.subTest(model=name):
                response = self.chat(name)
                self.assertLess(response.status, 500, response.body)
                self.assertIsNone(response.headers["X-Injected"])
                value = response.headers["X-FreeRide-Model"] or ""
                self.assertTrue(value.isascii() and value.isprintable(), value)

    def test_every_answer_the_gateway_writes_carries_its_request_id(self):
        self.fake("groq").default(fakes.error("groq", "rate_rpm"))
        self.start_gateway({"FREERIDE_API_KEY": "local-key"}, groq="gsk-1")
        key = {"Authorization": "Bearer local-key"}
        cases = {
            "404": ("GET", "/v1/nothing", None, key),
            "405": ("DELETE", "/v1/models", None, key),
            "401": ("GET", "/v1/models", None, {}),
            "403 host": ("GET", "/v1/models", None, {**key, "Host": "evil.example"}),
            "403 origin": ("GET", "/v1/models", None, {**key, "Origin": "https://evil.example"}),
            "400": ("POST", "/v1/chat/completions", b"{not json", key),
            "413": ("POST", "/v1/chat/completions", b"x" * 10, {**key, "Content-Length": "99999999999"}),
            "429": ("POST", "/v1/chat/completions",
                    {"model": "auto", "messages": [{"role": "user", "content": "x"}]}, key),
        }
        for name, (method, path, body, headers) in cases.items():
            with self.subTest(case=name):
                response = self.call(method, path, body, headers)
                self.assertEqual(str(response.status), name.split()[0], response.body)
                self.assertRegex(response.headers["X-FreeRide-Request-Id"] or "", r"^req_\w+$")

    def test_the_no_provider_503_carries_its_request_id(self):
        self.start_gateway({"FREERIDE_PROVIDERS": ""})
        response = self.chat()
        self.assertEqual(response.status, 503)
        self.assertRegex(response.headers["X-FreeRide-Request-Id"] or "", r"^req_\w+$")

    def test_a_json_body_starting_with_a_utf8_bom_is_accepted(self):
        self.start_gateway(groq="gsk-1")
        body = b"\xef\xbb\xbf" + json.dumps(
            {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
        self.assertEqual(self.call("POST", "/v1/chat/completions", body).status, 200)


class KeysNeverSlipThrough(GatewayTest):
    def test_a_key_across_the_cut_of_an_echoed_error_leaves_no_prefix(self):
        for offset in (3, 20, len(KEY) - 2):
            with self.subTest(offset=offset):
                self.fakes = {}
                head = '{"error": {"message": "bad request", "code": 400, "detail": "'
                body = head + "x" * (65536 - offset - len(head)) + KEY + ' y"}}'
                self.assertEqual(body.index(KEY), 65536 - offset)  # the key straddles the cut
                self.fake("openrouter").default(Reply(400, {"Content-Type": "application/json"},
                                                      body))
                self.start_gateway(openrouter=KEY)
                response = self.chat()
                self.assertEqual(response.status, 400)
                self.assertNotIn(KEY[:min(offset, 12)].encode() + b"\"", response.body)
                self.assertNotIn(KEY[:offset].encode(), response.body[-200:])

    def test_a_key_echoed_in_a_plain_answer_or_a_stream_is_redacted(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.chat_ok(f"your key is {KEY}"))
        openrouter.on(fakes.chat_stream(("your key is ", KEY)), times=1)
        self.start_gateway(openrouter=KEY)
        plain = self.chat()
        self.assertEqual(plain.status, 200)
        self.assertNotIn(KEY.encode(), plain.body)
        self.assertIn(b"[redacted]", plain.body)
        stream = self.chat(stream=True)
        self.assertNotIn(KEY.encode(), stream.body)
        self.assertIn(b"[redacted]", stream.body)


class StateStaysSane(GatewayTest):
    def test_two_writers_of_usage_lose_no_count(self):
        path = self.home / "usage.json"
        writers = [freeride.Stats(path) for _ in range(2)]

        def write(stats):
            for i in range(150):
                stats.observe({"event": "request", "req": f"r{id(stats)}{i}", "path": "/x"})
                stats.observe({"event": "complete", "req": f"r{id(stats)}{i}",
                               "provider": "groq", "tokens": 2})
                stats.flush()

        threads = [threading.Thread(target=write, args=(w,)) for w in writers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        row = json.loads(path.read_text())["days"][freeride.today()]["groq"]
        self.assertEqual(row, {"requests": 300, "tokens": 600})

    def test_thousands_of_junk_model_names_grow_no_table(self):
        openrouter = self.fake("openrouter")
        openrouter.default(lambda request: fakes.error("openrouter", "bad_model",
                                                       model=request.model))
        self.start_gateway({"FREERIDE_CATALOGS": "0"}, openrouter="or-key-12345678",
                           groq="gsk-1")
        for i in range(1000):
            self.assertEqual(self.chat(f"junk{i}:free").status, 503)
        self.assertEqual(self.gateway.cooldowns.active(), {})
        self.assertEqual(self.gateway.catalogs.dropped, {})
        status = self.call("GET", "/freeride/status")
        self.assertLess(len(status.body), 4096)


class Connections(GatewayTest):
    def test_connections_beyond_the_cap_get_a_503_at_once(self):
        self.start_gateway({"FREERIDE_MAX_CONNECTIONS": "4"}, groq="gsk-1")
        idle = [socket.create_connection(("127.0.0.1", self.gateway.port)) for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in idle])
        time.sleep(0.2)  # accepted, each waiting for its request
        extra = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=5)
        self.addCleanup(extra.close)
        answer = extra.recv(65536)
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 "), answer[:100])
        self.assertIn(b"too_many_connections", answer)
        self.assertIn(b"X-FreeRide-Request-Id: req_", answer)
        idle[0].close()
        for _ in range(200):  # a freed slot serves again, once the gateway saw it close
            with self.gateway.server.live_lock:
                if len(self.gateway.server.live) < 4:
                    break
            time.sleep(0.01)
        self.assertEqual(self.chat().status, 200)

    def test_a_client_trickling_its_head_gets_a_408(self):
        self.start_gateway({"FREERIDE_CLIENT_TIMEOUT": "0.3"}, groq="gsk-1")
        sock = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=5)
        self.addCleanup(sock.close)
        started = time.monotonic()
        answer = b""
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.02)
            if time.monotonic() - started > 3:
                break
        sock.settimeout(3)
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except OSError:
            pass
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer[:200])
        self.assertIn(b"X-FreeRide-Request-Id: req_", answer)

    def test_out_of_descriptors_the_accept_loop_does_not_spin(self):
        port = closed_port()
        code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40)); "
                "import freeride; sys.exit(freeride.main(['serve', '--port', sys.argv[1]]))")
        home = self.home / "spin"
        process = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT,
                                   env=clean_env(FREERIDE_HOME=str(home)),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (process.kill(), process.wait(), process.stdout.close(),
                                 process.stderr.close()))
        self.assertIn(b"listening", process.stdout.readline())
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(60):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                break
        time.sleep(0.3)

        def cpu():
            with open(f"/proc/{process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = cpu()
        time.sleep(1.0)
        self.assertLess(cpu() - before, 0.3, "the accept loop spins at the descriptor limit")


class WhatANewcomerMeets(GatewayTest):
    def test_an_unserved_model_404_names_it_and_blames_tools_only_when_there_were_tools(self):
        self.start_gateway(groq="gsk-1")
        plain = self.chat("deepseek")  # a family Groq does not serve
        self.assertEqual(plain.status, 404)
        self.assertIn("'deepseek'", plain.error["message"])
        self.assertNotIn("tools", plain.error["message"])
        self.assertEqual(plain.headers["x-should-retry"], "false")

    def test_the_no_provider_503_tells_sdks_not_to_retry_and_is_logged(self):
        self.start_gateway({"FREERIDE_PROVIDERS": ""})
        response = self.chat()
        self.assertEqual((response.status, response.headers["x-should-retry"]), (503, "false"))
        [failed] = self.logged("failed")
        self.assertEqual(failed["status"], 503)

    def test_the_demo_echo_is_one_short_line_an_agent_cannot_take_for_an_edit(self):
        gateway = freeride.Gateway(freeride.Config(env={"FREERIDE_HOME": str(self.home)},
                                                   port=0, demo=True)).start()
        self.addCleanup(gateway.close)
        text = "```js\n// path/to/filename.js\n" + "x = 1;\n" * 100 + "```"
        response = self.call("POST", "/v1/chat/completions", {
            "model": "auto", "messages": [{"role": "user", "content": text}]}, gateway=gateway)
        answer = response.json()["choices"][0]["message"]["content"]
        self.assertNotIn("```", answer)
        self.assertNotIn("\n", answer)
        self.assertLess(len(answer), 200)

    def test_serve_refuses_a_port_out_of_range_in_one_line(self):
        from tests.support import run_cli
        result = run_cli("serve", "--port", "99999", env=clean_env(FREERIDE_HOME=str(self.home)))
        self.assertEqual(result.returncode, 2)
        self.assertIn("not a port", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    unittest.main()
