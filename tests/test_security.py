"""Safe by default: a web page, a rebinding DNS name or a stranger cannot use the gateway."""
import http.client
import json

from tests.support import GatewayTest

CHAT = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})


class BrowserTest(GatewayTest):
    def raw(self, method, headers, body=CHAT, path="/v1/chat/completions"):
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host="Host" in headers)
            for name, value in headers.items():
                conn.putheader(name, value)
            data = body.encode() if body else b""
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def test_foreign_host_names_are_refused(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        for host in ("evil.example", "attacker.test:11343", "127.0.0.1.nip.io"):
            with self.subTest(host=host):
                status, _, body = self.raw("POST", {"Host": host})
                self.assertEqual(status, 403)
                self.assertEqual(json.loads(body)["error"]["code"], "forbidden_host")
        for host in ("localhost", f"127.0.0.1:{self.gateway.port}", "[::1]:11343", "LOCALHOST"):
            with self.subTest(host=host):
                self.assertEqual(self.raw("POST", {"Host": host})[0], 200)
        self.assertEqual(len(self.fakes["groq"].requests), 4)

    def test_web_pages_are_refused_unless_allowed(self):
        self.fake("groq")
        self.start_gateway({"FREERIDE_ALLOWED_ORIGINS": "http://localhost:3000"}, groq="gsk-1")
        status, _, body = self.raw("POST", {"Origin": "https://evil.example"})
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["error"]["code"], "forbidden_origin")
        status, _, _ = self.raw("OPTIONS", {"Origin": "https://evil.example",
                                            "Access-Control-Request-Method": "POST"}, body="")
        self.assertEqual(status, 403)
        status, headers, _ = self.raw("OPTIONS", {"Origin": "http://localhost:3000",
                                                  "Access-Control-Request-Method": "POST"}, body="")
        self.assertEqual(status, 204)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "http://localhost:3000")
        status, headers, _ = self.raw("POST", {"Origin": "http://localhost:3000"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "http://localhost:3000")
        self.assertEqual(len(self.fakes["groq"].requests), 1)

    def test_no_origin_is_allowed_by_default(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        self.assertEqual(self.raw("POST", {"Origin": "http://localhost:3000"})[0], 403)
        self.assertEqual(self.fakes["groq"].requests, [])


class TracebackTest(GatewayTest):
    def test_debug_tracebacks_never_show_a_configured_key(self):
        import contextlib
        import io
        import freeride
        config = freeride.Config(env={"FREERIDE_HOME": str(self.home),
                                      "GROQ_API_KEY": "gsk-secret-in-a-traceback"})
        err = io.StringIO()
        try:
            raise ValueError("the upstream refused key gsk-secret-in-a-traceback")
        except ValueError:
            with contextlib.redirect_stderr(err):
                freeride.print_traceback(config.redact)
        self.assertIn("Traceback", err.getvalue())
        self.assertIn("ValueError: the upstream refused key [redacted]", err.getvalue())
        self.assertNotIn("gsk-secret", err.getvalue())
