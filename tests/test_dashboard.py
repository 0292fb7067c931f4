"""The status page (issue 17): served by the gateway at /, its figures the ones `freeride
status` shows, its requests live over server-sent events, the same guards as every route,
and carried by the zipapp."""
import html.parser
import http.client
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import unittest
import zipfile
from pathlib import Path

import freeride
from tests import fakes
from tests.fakes import Reply
from tests.support import ROOT, GatewayTest, clean_env, python310, run_cli
from tests.test_cli import ServeProcess

PAGE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
DATA_ROUTES = ("/freeride/dashboard", "/freeride/events")
PAGE_ROUTES = ("/", "/freeride/dashboard.css", "/freeride/dashboard.js")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Markup(html.parser.HTMLParser):
    """Checks that tags balance, and collects every src and href."""

    def __init__(self):
        super().__init__()
        self.open, self.links, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href")]
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def check_markup(test, text):
    markup = Markup()
    markup.feed(text)
    markup.close()
    test.assertEqual(markup.errors, [])
    test.assertEqual(markup.open, [], "tags left open")
    for link in markup.links:
        test.assertTrue(link.startswith("data:") or (link.startswith("/")
                                                     and not link.startswith("//")), link)
    return markup


class EventStream:
    """GET /freeride/events, read event by event."""

    def __init__(self, port, headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/freeride/events", headers=headers or {})
        self.response = self.conn.getresponse()
        self.raw = []

    def next(self):
        """The next event's JSON (comments skipped); None at the stream's end."""
        data = []
        while True:
            line = self.response.readline()
            self.raw.append(line)
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                return json.loads("\n".join(data))

    def until(self, predicate):
        seen = []
        while True:
            event = self.next()
            if event is None:
                raise AssertionError(f"the stream ended before the event looked for: {seen}")
            seen.append(event)
            if predicate(event):
                return seen

    def close(self):
        self.conn.close()


class PageTest(GatewayTest):
    def get(self, path, headers=None):
        return self.call("GET", path, headers=headers)

    def test_a_browser_gets_a_well_formed_page_that_loads_nothing_from_outside(self):
        self.start_gateway(groq="gsk-1")
        self.assertEqual(self.chat().status, 200)
        page = self.get("/", PAGE)
        self.assertEqual(page.status, 200)
        self.assertEqual(page.headers["Content-Type"], "text/html; charset=utf-8")
        csp = page.headers["Content-Security-Policy"]
        for rule in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                     "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"):
            self.assertIn(rule, csp)
        text = page.body.decode()
        markup = check_markup(self, text)
        self.assertIn("/freeride/dashboard.js", markup.links)
        self.assertIn("/freeride/dashboard.css", markup.links)
        self.assertNotRegex(text, r"https?://(?!127\.0\.0\.1:\d+\b)")  # only its own address
        # script off: the figures are in plain tables, and the page reloads itself
        self.assertIn('<noscript><meta http-equiv="refresh" content="10"></noscript>', text)
        self.assertRegex(text, r"<td>groq</td><td>1</td><td>none</td>")
        self.assertRegex(text, r"<td>auto</td><td>groq k0 [^<]+: OK</td><td>groq</td>")
        for name, kind in (("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")):
            asset = self.get(f"/freeride/{name}")
            self.assertEqual(asset.status, 200)
            self.assertTrue(asset.headers["Content-Type"].startswith(kind))
            self.assertEqual(asset.body, (ROOT / "dashboard" / name).read_bytes())
            # the one http:// is the SVG namespace, a name and never fetched
            urls = re.findall(rb"(?:https?:)?//[\w.-]+\.\w+[^\s'\"`)]*", asset.body)
            self.assertEqual(set(urls) - {b"http://www.w3.org/2000/svg"}, set(), name)
            self.assertNotIn(b"@import", asset.body)
            self.assertNotIn(b"url(", asset.body)
        self.assertNotIn(b"innerHTML", self.get("/freeride/dashboard.js").body)

    def test_what_a_client_sends_is_escaped_on_the_plain_page(self):
        self.start_gateway(groq="gsk-1")
        self.chat(model="<script>alert(1)</script>")
        text = self.get("/", PAGE).body.decode()
        self.assertNotIn("<script>alert", text)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", text)
        check_markup(self, text)

    def test_head_and_a_non_browser_accept_still_get_the_json_claude_code_checks(self):
        self.start_gateway(groq="gsk-1")
        for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
            with self.subTest(headers=headers):
                answer = self.get("/", headers)
                self.assertEqual(answer.status, 200)
                self.assertEqual(answer.headers["Content-Type"], "application/json")
                self.assertEqual(answer.json()["status"], "ok")
        head = self.call("HEAD", "/", headers=PAGE)
        self.assertEqual((head.status, head.headers["Content-Type"], head.body),
                         (200, "application/json", b""))

    def test_the_data_is_what_freeride_status_json_says_for_the_same_state(self):
        groq = self.fake("groq")
        groq.on(fakes.error("groq", "rate_rpm"), key="gsk-1")
        headers = {"x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": "990",
                   "x-ratelimit-reset-requests": "6h", "x-ratelimit-limit-tokens": "12000",
                   "x-ratelimit-remaining-tokens": "11000", "x-ratelimit-reset-tokens": "30s"}
        reply = fakes.chat_ok("hi")
        reply.headers.update(headers)
        groq.default(reply)
        gateway = self.start_gateway(groq=["gsk-1", "gsk-2"])
        for _ in range(2):
            self.assertEqual(self.chat().status, 200)
        data = self.get("/freeride/dashboard").json()
        status = json.loads(run_cli("status", "--json", "--url", gateway.url,
                                    env=clean_env(FREERIDE_HOME=str(self.home))).stdout)
        [mine] = [p for p in data["status"]["providers"] if p["name"] == "groq"]
        [theirs] = [p for p in status["providers"] if p["name"] == "groq"]
        for field in ("keys", "key_ids", "quota", "today", "local", "answering"):
            self.assertEqual(mine[field], theirs[field], field)
        self.assertEqual(mine["today"], {"requests": 2, "tokens": mine["today"]["tokens"]})
        self.assertEqual([{k: c[k] for k in ("key", "model", "class", "reason", "until")}
                          for c in mine["cooling"]],
                         [{k: c[k] for k in ("key", "model", "class", "reason", "until")}
                          for c in theirs["cooling"]])
        self.assertEqual(mine["cooling"][0]["class"], "RATE_LIMIT")
        self.assertEqual(data["status"]["capacity_today"], status["capacity_today"])
        self.assertEqual(data["status"]["gateway"]["pid"], status["gateway"]["pid"])
        self.assertEqual(mine["key_ids"], [k.id for r in gateway.config.routes for k in r.keys])
        # the chart's today is status's today; the models are /v1/models
        self.assertEqual(data["usage"][freeride.today()]["groq"], mine["today"])
        self.assertEqual(data["models"], self.get("/v1/models").json()["data"])


class LiveTest(GatewayTest):
    def stream(self, headers=None):
        events = EventStream(self.gateway.port, headers)
        self.addCleanup(events.close)
        self.assertEqual(events.response.status, 200)
        self.assertEqual(events.response.getheader("Content-Type"), "text/event-stream")
        return events

    def test_a_request_made_while_the_stream_is_open_appears_with_its_attempts(self):
        groq = self.fake("groq")
        groq.on(fakes.error("groq", "rate_rpm"), key="gsk-1")
        self.start_gateway(groq=["gsk-1", "gsk-2"])
        events = self.stream()
        answer = self.chat(stream=True)
        self.assertEqual(answer.status, 200)
        rid = answer.headers["X-FreeRide-Request-Id"]
        seen = [e for e in events.until(lambda e: e.get("req") == rid
                                        and e["event"] == "complete") if e.get("req") == rid]
        self.assertEqual([e["event"] for e in seen],
                         ["request", "attempt", "result", "attempt", "result", "complete"])
        self.assertEqual([(e["key"], e["ok"], e.get("class")) for e in seen if e["event"] == "result"],
                         [(0, False, "RATE_LIMIT"), (1, True, None)])
        self.assertEqual(seen[0]["model"], "auto")
        done = seen[-1]
        self.assertEqual(done["provider"], "groq")
        self.assertIsInstance(done["ttft_ms"], int)
        self.assertIsInstance(done["ms"], int)

    def test_a_page_that_opens_gets_the_latest_requests_first(self):
        self.start_gateway(groq="gsk-1")
        rid = self.chat().headers["X-FreeRide-Request-Id"]
        events = self.stream()
        self.assertEqual(events.until(lambda e: e.get("req") == rid and e["event"] == "complete")
                         [0]["event"], "request")

    def test_the_stream_ends_when_the_gateway_closes_without_waiting_for_the_grace(self):
        self.start_gateway(groq="gsk-1")
        events = self.stream()
        self.chat()
        events.until(lambda e: e["event"] == "complete")
        started = time.monotonic()
        self.gateway.close(grace=20)
        while events.next() is not None:
            pass
        self.assertLess(time.monotonic() - started, 5)

    def test_an_idle_stream_gets_keep_alive_comments(self):
        self.start_gateway(groq="gsk-1")
        self.gateway.feed.KEEP_ALIVE = 0.05
        events = self.stream()
        lines = [events.response.readline() for _ in range(6)]  # the stream opened quiet
        self.assertEqual(lines, [b": keep-alive\n", b"\n"] * 3)
        self.chat()
        self.assertEqual(events.next()["event"], "request")

    def test_a_page_that_does_not_read_loses_its_oldest_events_and_blocks_nothing(self):
        feed = freeride.Feed()
        queue = feed.join()
        started = time.monotonic()
        for i in range(feed.QUEUED + 500):
            feed.publish({"n": i})
        self.assertLess(time.monotonic() - started, 1)
        items = feed.take(queue, 0)
        self.assertEqual(len(items), feed.QUEUED)
        self.assertEqual(items[0]["n"], 500)
        self.assertEqual(len(feed.recent), feed.RECENT)


class GuardTest(GatewayTest):
    KEY = "gsk_" + "Q7x2" * 9                 # key-sized, so the redaction looks for it
    API_KEY = "fr-local-" + "k3Y9" * 8

    def test_a_wrong_host_or_a_foreign_origin_is_refused_on_every_route_of_the_page(self):
        self.start_gateway(groq="gsk-1")
        for path in PAGE_ROUTES + DATA_ROUTES + ("/freeride/status",):
            for headers in ({"Host": "evil.example:11343"}, {"Origin": "http://evil.example"},
                            {"Origin": "http://localhost:9999"}):
                with self.subTest(path=path, headers=headers):
                    answer = self.call("GET", path, headers={**PAGE, **headers})
                    self.assertEqual(answer.status, 403)
                    self.assertNotIn("Access-Control-Allow-Origin", answer.headers)

    def test_with_a_gateway_key_the_page_is_served_but_its_data_needs_the_key(self):
        self.start_gateway({"FREERIDE_API_KEY": self.API_KEY}, groq="gsk-1")
        page = self.call("GET", "/", headers=PAGE)
        self.assertEqual(page.status, 200)
        self.assertIn(b"needs its key", page.body)
        self.assertNotIn(b"groq", page.body)
        for path in PAGE_ROUTES[1:]:
            self.assertEqual(self.call("GET", path).status, 200, path)
        for path in DATA_ROUTES + ("/freeride/status",):
            self.assertEqual(self.call("GET", path).status, 401, path)
        self.assertEqual(self.call("GET", "/").status, 401, "the JSON at / keeps its guard")
        bearer = {"Authorization": f"Bearer {self.API_KEY}"}
        self.assertEqual(self.call("GET", "/freeride/dashboard", headers=bearer).status, 200)
        self.assertIn(b"<td>groq</td>", self.call("GET", "/", headers={**PAGE, **bearer}).body)

    def test_no_key_appears_in_anything_the_page_receives(self):
        groq = self.fake("groq")
        echo = {"error": {"message": f"Invalid API Key {self.KEY}", "type": "invalid_request_error",
                          "code": "invalid_api_key"}}
        groq.on(Reply(401, {"Content-Type": "application/json"}, json.dumps(echo)),
                key=self.KEY)
        self.start_gateway({"FREERIDE_API_KEY": self.API_KEY},
                           groq=[self.KEY, "gsk_" + "Z8w1" * 9])
        bearer = {"Authorization": f"Bearer {self.API_KEY}"}
        self.assertEqual(self.call("POST", "/v1/chat/completions", {
            "model": "auto", "messages": [{"role": "user", "content": "hi"}]}, bearer).status, 200)
        events = EventStream(self.gateway.port, bearer)
        self.addCleanup(events.close)
        seen = events.until(lambda e: e["event"] == "complete")
        self.assertIn("[redacted]", json.dumps(seen))  # the echo was there, and is gone
        received = [b"".join(events.raw)]
        for headers in ({}, bearer):
            received.append(self.call("GET", "/", headers={**PAGE, **headers}).body)
        for path in PAGE_ROUTES[1:] + ("/freeride/dashboard", "/freeride/status", "/v1/models"):
            answer = self.call("GET", path, headers=bearer)
            self.assertEqual(answer.status, 200, path)
            received.append(answer.body + str(answer.headers).encode())
        for body in received:
            for secret in (self.KEY, "gsk_" + "Z8w1" * 9, self.API_KEY):
                self.assertNotIn(secret.encode(), body)


class CommandsTest(GatewayTest):
    def test_freeride_open_opens_the_page_in_the_default_browser(self):
        gateway = self.start_gateway(groq="gsk-1")
        opened = self.home / "opened"
        browser = self.home / "browser"
        browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
        browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
        result = run_cli("open", "--url", gateway.url, env=clean_env(BROWSER=str(browser)))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(opened.read_text(), gateway.url + "/")
        self.assertIn(gateway.url + "/", result.stdout)

    def test_freeride_open_says_when_no_gateway_answers(self):
        from tests.temphome import closed_port
        result = run_cli("open", "--url", f"http://127.0.0.1:{closed_port()}",
                         env=clean_env(BROWSER="false"))
        self.assertEqual(result.returncode, 1)
        self.assertIn("freeride serve", result.stderr)

    def test_freeride_status_prints_the_link(self):
        gateway = self.start_gateway(groq="gsk-1")
        result = run_cli("status", "--url", gateway.url, env=clean_env(
            FREERIDE_HOME=str(self.home), NO_COLOR="1"))
        self.assertIn(f"page     {gateway.url}/", result.stdout)


class PackTest(unittest.TestCase):
    def test_the_pyz_carries_the_page_and_serves_it(self):
        tmp = Path(tempfile.mkdtemp(prefix="freeride-dash-pack-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        result = run_cli("pack", "-o", str(tmp), env=clean_env())
        self.assertEqual(result.returncode, 0, result.stderr)
        with zipfile.ZipFile(tmp / "freeride.pyz") as archive:
            for name in freeride.DASHBOARD_FILES:
                self.assertEqual(archive.read(f"dashboard/{name}"),
                                 (ROOT / "dashboard" / name).read_bytes())
        server = ServeProcess("--demo", command=(python310(), "-I", "-S", "freeride.pyz"), cwd=tmp,
                              env=clean_env(FREERIDE_HOME=str(tmp / "home")))
        self.addCleanup(lambda: server.process.poll() is None and server.stop())
        self.assertIn(f"status page: http://127.0.0.1:{server.port}/", "\n".join(server.lines))
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        self.addCleanup(conn.close)
        for path, headers in (("/", PAGE), ("/freeride/dashboard.js", {})):
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            self.assertEqual(answer.status, 200, body)
            if path == "/":
                self.assertIn(b"<td>demo</td>", body)
            else:
                self.assertEqual(body, (ROOT / "dashboard/dashboard.js").read_bytes())
        code, _, err = server.stop()
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()
