"""Seeing what FreeRide does: watch, status, list, doctor, telemetry and /metrics, each run
the way a user runs it, against a real gateway in front of fake providers or against state
files alone."""
import http.server
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

import freeride
import providers
from tests import fakes
from tests.support import ROOT, GatewayTest, clean_env, run_cli
from tests.test_cli import ServeProcess

MARKER = "sync"  # the request id of the events a test writes to see that watch follows the log


def closed_port():
    """A loopback port that nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HangUp:
    """A loopback port held by something that is not FreeRide: it accepts and hangs up at once."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.05)  # how often the accept loop looks at close()
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hang-up", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.socket.accept()
            except socket.timeout:
                continue
            connection.close()
            with self.changed:
                self.accepted += 1
                self.changed.notify_all()

    def wait_connections(self, n, timeout=10):
        """True once n connections were accepted; False on timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: self.accepted >= n, timeout)

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.socket.close()


class Watch:
    """`freeride watch ARGS` in the background; its output is read line by line as it comes."""

    def __init__(self, test, env, *args):
        self.process = subprocess.Popen([sys.executable, "-m", "freeride", "watch", *args],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.out, self.err = queue.Queue(), queue.Queue()
        pipes = ((self.process.stdout, self.out), (self.process.stderr, self.err))
        self.readers = [threading.Thread(target=self._read, args=pipe, daemon=True)
                        for pipe in pipes]
        for reader in self.readers:
            reader.start()
        test.addCleanup(self.close)

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)  # the end of the output

    def line(self, stderr=False, timeout=15):
        """The next line of stdout (or stderr); AssertionError if none comes in time."""
        try:
            line = (self.err if stderr else self.out).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"watch printed nothing more in {timeout}s") from None
        if line is None:
            raise AssertionError(f"watch ended (exit {self.process.wait()}) before printing it")
        return line

    def follow(self, writer, timeout=15):
        """Write marker events until watch shows one: from then on it shows every new event."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            writer.event(req=MARKER, event="note")
            try:
                line = self.out.get(timeout=0.3)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"watch ended (exit {self.process.wait()}) while starting")
            if line.split()[1] != MARKER:
                raise AssertionError(f"watch showed an event logged before it started: {line}")
            return
        raise AssertionError(f"watch did not show a new event within {timeout}s")

    def lines(self, n):
        """The next n lines of stdout, skipping markers that follow() left in the pipe."""
        found = []
        while len(found) < n:
            line = self.line()
            if line.split()[1] != MARKER:
                found.append(line)
        return found

    def finish(self, timeout=30):
        """Every line of stdout and stderr, once watch ends by itself (after --count events)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            shown = list(self.out.queue)
            raise AssertionError(f"watch did not end within {timeout}s; it printed {len(shown)} "
                                 f"lines, the last ones: {shown[-3:]}") from None
        for reader in self.readers:
            reader.join()
        out, err = list(iter(self.out.get_nowait, None)), list(iter(self.err.get_nowait, None))
        return out, "\n".join(err)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for reader in self.readers:
            reader.join()
        self.process.stdout.close()
        self.process.stderr.close()


class WatchTest(GatewayTest):
    def test_watch_renders_a_failover_sequence_in_order(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        self.start_gateway(openrouter="or-k1", groq="gsk-1")
        self.chat()  # the log exists before watch starts: only new events are shown
        self.events()
        watch = Watch(self, clean_env(FREERIDE_HOME=str(self.home), NO_COLOR="1"))
        watch.follow(self.gateway.writer)
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=47))
        rid = self.chat("openrouter/free", stream=True).headers["X-FreeRide-Request-Id"]
        lines = watch.lines(6)
        stamp = r"^\[\d\d:\d\d:\d\d\.\d{3}\] " + rid + "  "
        expected = [r"▶ request model=openrouter/free stream",
                    r"→ openrouter\[k0\] openrouter/free",
                    r"← openrouter\[k0\] \d+ms RATE_LIMIT ✗ \(retry-after 47s\)",
                    r"→ groq\[k0\] " + re.escape(providers.REGISTRY["groq"].models[0].id),
                    r"← groq\[k0\] \d+ms OK ✓",
                    r"■ complete via groq"]
        self.assertEqual(len(lines), 6, lines)
        for line, pattern in zip(lines, expected):
            self.assertRegex(line, stamp + pattern)
        self.assertNotIn("\033[", "".join(lines))

    def test_watch_shows_success_and_replays_since_start(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=47), key="or-k1")
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.chat()
        self.events()
        watch = Watch(self, clean_env(FREERIDE_HOME=str(self.home)), "--count", "6",
                      "--since-start")
        lines, _ = watch.finish()
        texts = [line.split("  ", 1)[1] for line in lines]
        self.assertEqual(texts[0], "▶ request model=auto")
        self.assertEqual(texts[1], "→ openrouter[k0] openrouter/free")
        self.assertRegex(texts[2], r"← openrouter\[k0\] \d+ms RATE_LIMIT ✗ \(retry-after 47s\)")
        self.assertRegex(texts[4], r"← openrouter\[k1\] \d+ms OK ✓")
        self.assertRegex(texts[5], r"■ complete via openrouter")

    def test_watch_waits_for_the_log_and_follows_rotation_without_losing_lines(self):
        total = 3000  # about 1.3 MiB of events: the log rotates in the middle of the burst
        watch = Watch(self, clean_env(FREERIDE_HOME=str(self.home)), "--count", str(total))
        self.assertIn("waiting for", watch.line(stderr=True))  # watch starts before the log exists
        writer = freeride.Writer(self.home, True)
        padding = "x" * 380
        for i in range(total):
            writer.event(req=f"req_{i:08x}", event="note", seq=i, pad=padding)
        writer.close()
        lines, err = watch.finish(timeout=60)
        self.assertTrue((self.home / "events.jsonl.1").exists(), "the burst did not rotate")
        self.assertEqual(len(lines), total, err)
        seqs = [int(re.search(r'"seq": (\d+)', line).group(1)) for line in lines]
        self.assertEqual(seqs, list(range(total)))

    def test_usage_is_saved_every_tick_while_events_keep_coming(self):
        class Writer(freeride.Writer):
            TICK = 0.2
        writer = Writer(self.home, True)
        saved = []
        writer.ticks.append(lambda: saved.append(time.monotonic()))
        started = time.monotonic()
        for i in range(30):  # an event every 50 ms for 1.5 s: never TICK seconds of quiet
            writer.event(req=f"req_{i}", event="note")
            time.sleep(0.05)
        busy = [t for t in saved if t - started < 1.5]
        writer.close()
        self.assertGreaterEqual(len(busy), 3, "the periodic flushes waited for a quiet spell")

    def test_events_are_complete_json_lines_when_many_requests_write_at_once(self):
        self.fake("groq")
        self.start_gateway(groq=["g1", "g2"])
        threads = [threading.Thread(target=self.chat) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows = self.events()  # json.loads of every line: a torn line would raise
        self.assertEqual(sum(r["event"] == "complete" for r in rows), 24)


class StatusTest(GatewayTest):
    def test_status_from_state_files_shows_a_cooling_key_with_reason_and_time_left(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "daily_cap"), key="or-k1")
        gateway = self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.chat()
        gateway.close()
        env = clean_env(FREERIDE_HOME=str(self.home), OPENROUTER_API_KEY='["or-k1", "or-k2"]',
                        FREERIDE_PORT="9", NO_COLOR="1")
        result = run_cli("status", env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("not running", result.stdout)
        self.assertIn("openrouter", result.stdout)
        self.assertRegex(result.stdout, r"k0  QUOTA until \d{4}-\d\d-\d\d 00:00:00 UTC \(in [\dhms]+\): "
                                        r"Rate limit exceeded: free-models-per-day")
        self.assertIn("today: 1 requests", result.stdout)
        self.assertNotIn("or-k1", result.stdout)

    def test_status_asks_the_running_gateway_and_has_json(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=300), key="or-k1")
        gateway = self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.chat()
        result = run_cli("status", "--json", "--url", gateway.url,
                         env=clean_env(FREERIDE_HOME=str(self.home)))
        doc = json.loads(result.stdout)
        self.assertEqual(doc["gateway"]["url"], gateway.url)
        [p] = [p for p in doc["providers"] if p["name"] == "openrouter"]
        self.assertEqual(p["keys"], 2)
        self.assertEqual(p["today"]["requests"], 1)
        [cooling] = p["cooling"]
        self.assertEqual((cooling["key"], cooling["class"]), (0, "RATE_LIMIT"))
        self.assertAlmostEqual(cooling["remaining_s"], 300, delta=5)
        self.assertNotIn("or-k1", result.stdout)


class ListTest(GatewayTest):
    def setUp(self):
        super().setUp()
        self.groq, self.nvidia = self.fake("groq"), self.fake("nvidia")
        self.groq.on(fakes.models_ok("groq", [
            {"id": "openai/gpt-oss-120b", "context_window": 65536},
            "qwen/qwen3.8-27b", "some-new-groq-model"]), path="/models")
        self.nvidia.on(fakes.models_ok("nvidia", ["google/gemma-4-31b-it"]), path="/models",
                       times=None)
        self.env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT=str(closed_port()),
                             **self.provider_env(groq="gsk-1", nvidia="nv-1"))

    def catalog_requests(self):
        return [(name, r.method, r.path, r.key) for name, fake in self.fakes.items()
                for r in fake.requests]

    def run_list(self, *args):
        result = run_cli("list", *args, env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_list_shows_each_free_model_with_its_providers_context_tools_vision_and_status(self):
        header, *lines = self.run_list().split("\n\n")[0].splitlines()
        self.assertEqual(header.split(), ["MODEL", "PROVIDERS", "CONTEXT", "TOOLS", "VISION",
                                          "STATUS"])
        rows = {line.split()[0]: line.split()[1:] for line in lines}
        self.assertEqual(rows["openai/gpt-oss-120b"], ["groq", "65536", "yes", "no", "live"])
        self.assertEqual(rows["qwen/qwen3.8-27b"], ["groq", "131072", "yes", "yes", "live"])
        self.assertEqual(rows["some-new-groq-model"][0], "groq", "Groq: every listed model is free")
        self.assertEqual(rows["google/gemma-4-31b-it"][0], "nvidia")
        self.assertEqual(rows["auto"][0], "groq,nvidia")
        self.assertEqual(rows["auto"][-1], "alias")
        self.assertEqual(rows["openai/gpt-oss-20b"][-1], "gone", "in Groq's table, not its catalog")
        self.assertEqual(rows["nvidia/nemotron-3-super-120b-a12b"][-1], "gone")
        self.assertEqual(self.catalog_requests(), [("groq", "GET", "/v1/models", "gsk-1"),
                                                   ("nvidia", "GET", "/v1/models", "nv-1")])

    def test_a_second_list_comes_from_the_cache_and_refresh_fetches_again(self):
        self.run_list()
        self.groq.on(fakes.models_ok("groq", ["openai/gpt-oss-120b", "openai/gpt-oss-20b"]),
                     path="/models")
        cached = {e["id"]: e for e in json.loads(self.run_list("--json"))}
        self.assertEqual(len(self.catalog_requests()), 2, "the cached list asked the providers")
        self.assertEqual(cached["openai/gpt-oss-120b"]["providers"], ["groq"])
        self.assertEqual(cached["openai/gpt-oss-120b"]["context_length"], 65536)
        self.assertIs(cached["openai/gpt-oss-20b"]["available"], False)
        refreshed = {e["id"]: e for e in json.loads(self.run_list("--refresh", "--json"))}
        self.assertEqual(len(self.catalog_requests()), 4)
        self.assertNotIn("available", refreshed["openai/gpt-oss-20b"])
        self.assertEqual(refreshed["openai/gpt-oss-120b"]["context_length"], 131072)

    def test_the_cache_is_not_used_once_the_keys_change(self):
        self.run_list()
        del self.env["NVIDIA_API_KEY"]
        rows = {e["id"]: e for e in json.loads(self.run_list("--json"))}
        self.assertNotIn("google/gemma-4-31b-it", rows, "nvidia has no key any more")
        self.assertEqual(rows["auto"]["providers"], ["groq"])

    def test_a_damaged_or_future_dated_cache_is_fetched_again(self):
        (self.home / "catalogs.json").write_text("{damaged")
        self.run_list()
        self.assertEqual(len(self.catalog_requests()), 2)
        doc = json.loads((self.home / "catalogs.json").read_text())
        for entry in doc["providers"].values():
            entry["fetched"] = time.time() + 30 * 86400
        (self.home / "catalogs.json").write_text(json.dumps(doc))
        self.run_list()
        self.assertEqual(len(self.catalog_requests()), 4, "a time in the future never holds")


class DoctorTest(GatewayTest):
    def test_doctor_flags_a_bad_key_and_a_missing_cloudflare_account(self):
        groq = self.fake("groq")
        groq.on(fakes.error("groq", "auth"), key="gsk-bad", path="/models", times=None)
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT="9", NO_COLOR="1",
                        GROQ_API_KEY='["gsk-good", "gsk-bad"]', GROQ_BASE_URL=groq.url,
                        CLOUDFLARE_API_TOKEN="cf-token")
        result = run_cli("doctor", env=env)
        self.assertEqual(result.returncode, 1)
        out = result.stdout
        self.assertIn("✓ groq key 0 accepted", out)
        self.assertIn("✗ groq key 1 rejected (401) — replace the key in GROQ_API_KEY", out)
        self.assertIn("✗ cloudflare: half configured: CLOUDFLARE_API_TOKEN is set but "
                      "CLOUDFLARE_ACCOUNT_ID is missing", out)
        self.assertIn("· nvidia: not configured", out)
        self.assertNotIn("gsk-bad", out)

    def test_doctor_passes_on_a_good_set_up_with_a_running_gateway(self):
        groq = self.fake("groq")
        gateway = self.start_gateway(groq="gsk-good")
        env = clean_env(FREERIDE_HOME=str(self.home), NO_COLOR="1", GROQ_API_KEY="gsk-good",
                        GROQ_BASE_URL=groq.url)
        result = run_cli("doctor", "--url", gateway.url, env=env)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn(f"✓ gateway running at {gateway.url}", result.stdout)
        self.assertEqual(groq.requests[0].path, "/v1/models")

    def test_doctor_with_no_provider_fails_and_names_the_variables_to_set(self):
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT=str(closed_port()),
                        NO_COLOR="1")
        result = run_cli("doctor", env=env)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("✗ no provider has a key — set at least one key variable", result.stdout)
        for cls in providers.REGISTRY.values():
            for var in cls.key_vars + ((cls.account_var,) if cls.account_var else ()):
                self.assertIn(var, result.stdout)
        self.assertIn("· no gateway running at", result.stdout)

    def test_doctor_reports_a_port_taken_by_something_that_is_not_freeride(self):
        groq = self.fake("groq")
        squatter = HangUp()
        self.addCleanup(squatter.close)
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT=str(squatter.port),
                        NO_COLOR="1", GROQ_API_KEY="gsk-good", GROQ_BASE_URL=groq.url)
        result = run_cli("doctor", env=env)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("✓ groq key accepted", result.stdout)  # the port is all that is wrong
        self.assertIn(f"✗ 127.0.0.1:{squatter.port} is taken by something that is not a "
                      "FreeRide gateway — stop it or use another FREERIDE_PORT", result.stdout)
        self.assertGreaterEqual(squatter.accepted, 1)


class Collector(http.server.ThreadingHTTPServer):
    """A loopback endpoint that records telemetry beacons."""

    def __init__(self):
        self.received = []
        self.got = threading.Event()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.received.append(json.loads(body))
                collector.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()
        self.thread.join()


INTERVAL = 0.05  # seconds between telemetry beacons in these tests


class TelemetryTest(GatewayTest):
    def serve(self, *args, **env):
        """`freeride serve` with beacons every INTERVAL, once it has printed its start-up lines."""
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_TELEMETRY_INTERVAL=str(INTERVAL),
                        **env)
        server = ServeProcess(*args, env=env)
        self.addCleanup(lambda: server.process.poll() is None and server.stop())
        return server

    def serve_briefly(self, **env):
        """Serve for ten beacon intervals after start-up: a beacon not sent leaves no sign to
        wait for, so this is the one wait measured by the clock."""
        server = self.serve(**env)
        time.sleep(10 * INTERVAL)
        code, _, err = server.stop()
        self.assertEqual(code, 0, err)

    def test_telemetry_is_off_by_default_and_shows_the_exact_payload(self):
        result = run_cli("telemetry", env=clean_env(FREERIDE_HOME=str(self.home)))
        self.assertEqual(result.returncode, 0)
        self.assertIn("telemetry is OFF", result.stdout)
        self.assertIn("nothing is ever sent", result.stdout)
        payload = json.loads(result.stdout[result.stdout.index("{"):])
        self.assertEqual(set(payload), {"installation_id", "version", "os", "tokens_served",
                                        "request_count", "providers_active", "uptime_hours"})

    def test_nothing_is_sent_when_off_or_without_a_url(self):
        collector = Collector()
        self.addCleanup(collector.close)
        self.serve_briefly(  # off (the default), URL set
            FREERIDE_TELEMETRY_URL=f"http://127.0.0.1:{collector.server_port}/beacon")
        run_cli("telemetry", "on", env=clean_env(FREERIDE_HOME=str(self.home)))
        self.serve_briefly()  # on, no URL
        self.assertEqual(collector.received, [])

    def assertServesAndStopsQuietly(self, server):
        chat = {"model": "auto", "messages": [{"role": "user", "content": "x"}]}
        status, _, _ = server.post("/v1/chat/completions", chat)
        self.assertEqual(status, 200)
        code, _, err = server.stop()
        self.assertEqual(code, 0)
        self.assertEqual([line for line in err.splitlines() if "stopping" not in line], [],
                         "a failed beacon must not show on stderr")

    def test_a_refused_beacon_is_silent_and_serve_keeps_serving(self):
        run_cli("telemetry", "on", env=clean_env(FREERIDE_HOME=str(self.home)))
        server = self.serve("--demo", FREERIDE_TELEMETRY_URL=f"http://127.0.0.1:{closed_port()}/b")
        time.sleep(10 * INTERVAL)  # a refused connection leaves no sign to wait for
        self.assertServesAndStopsQuietly(server)

    def test_a_beacon_hung_up_on_is_silent_and_the_next_one_is_still_sent(self):
        run_cli("telemetry", "on", env=clean_env(FREERIDE_HOME=str(self.home)))
        endpoint = HangUp()
        self.addCleanup(endpoint.close)
        server = self.serve("--demo", FREERIDE_TELEMETRY_URL=f"http://127.0.0.1:{endpoint.port}/b")
        self.assertTrue(endpoint.wait_connections(3), "the beacon stopped after a failure")
        self.assertServesAndStopsQuietly(server)

    def test_when_on_it_sends_only_the_documented_fields(self):
        collector = Collector()
        self.addCleanup(collector.close)
        result = run_cli("telemetry", "on", env=clean_env(FREERIDE_HOME=str(self.home)))
        self.assertIn("telemetry is ON", result.stdout)
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_TELEMETRY_INTERVAL="0.2",
                        GROQ_API_KEY="gsk-secret-value",
                        FREERIDE_TELEMETRY_URL=f"http://127.0.0.1:{collector.server_port}/beacon")
        process = subprocess.Popen([sys.executable, "-m", "freeride", "serve", "--port", "0"],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(collector.got.wait(15))
        finally:
            process.terminate()
            process.communicate(timeout=30)
        beacon = collector.received[0]
        self.assertEqual(set(beacon), {"installation_id", "version", "os", "tokens_served",
                                       "request_count", "providers_active", "uptime_hours"})
        self.assertEqual(beacon["providers_active"], ["groq"])
        self.assertNotIn("gsk-secret-value", json.dumps(collector.received))
        settings = json.loads((self.home / "config.json").read_text())
        self.assertEqual(beacon["installation_id"], settings["installation_id"])


PROM_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                         r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? (-?[0-9.e+]+|\+Inf)$')


def parse_prometheus(text):
    """Samples of a Prometheus text exposition; raises AssertionError on any bad line."""
    samples, types = [], {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        m = PROM_SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, f"sample before its TYPE: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((name, labels, float(m.group(3))))
    return samples


class MetricsTest(GatewayTest):
    def test_metrics_parse_as_prometheus_text_and_count_what_happened(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute"), key="or-k1")
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.chat()
        self.chat()
        response = self.call("GET", "/metrics")
        self.assertEqual(response.status, 200)
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        samples = parse_prometheus(response.body.decode())
        values = {(n, tuple(sorted(l.items()))): v for n, l, v in samples}
        route = ("route", "/v1/chat/completions")
        self.assertEqual(values[("freeride_requests_total", (("outcome", "ok"), route))], 2)
        self.assertEqual(values[("freeride_attempts_total",
                                 (("class", "RATE_LIMIT"), ("provider", "openrouter")))], 1)
        self.assertEqual(values[("freeride_attempts_total",
                                 (("class", "OK"), ("provider", "openrouter")))], 2)
        self.assertEqual(values[("freeride_cooling_keys", (("provider", "openrouter"),))], 1)
        buckets = [v for n, l, v in samples if n == "freeride_request_duration_seconds_bucket"]
        self.assertEqual(buckets, sorted(buckets))
        self.assertEqual(buckets[-1], 2)

    def test_the_status_endpoint_reveals_no_key(self):
        self.fake("groq")
        gateway = self.start_gateway(groq="gsk-very-secret")
        response = self.call("GET", "/freeride/status")
        self.assertEqual(response.json()["gateway"]["url"], gateway.url)
        self.assertNotIn("gsk-very-secret", response.body.decode())


if __name__ == "__main__":
    unittest.main()
