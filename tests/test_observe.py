"""Seeing what FreeRide does: watch, status, list, doctor, telemetry and /metrics, each run
the way a user runs it, against a real gateway in front of fake providers or against state
files alone."""
import http.server
import json
import re
import subprocess
import sys
import threading
import time
import unittest

import freeride
from tests import fakes
from tests.support import ROOT, GatewayTest, clean_env, run_cli


def start_watch(env, count, *args):
    """`freeride watch --count N` in the background; it ends by itself after N events."""
    return subprocess.Popen([sys.executable, "-m", "freeride", "watch", "--count", str(count),
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout=30):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"watch did not finish; it printed:\n{out}\n{err}")
    return out.splitlines(), err


class WatchTest(GatewayTest):
    def test_watch_renders_a_failover_sequence_in_order(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        self.start_gateway(openrouter="or-k1", groq="gsk-1")
        self.chat()  # the log exists before watch starts: only new events are shown
        self.events()
        watch = start_watch(clean_env(FREERIDE_HOME=str(self.home), NO_COLOR="1"), 6)
        time.sleep(0.5)  # let watch reach the end of the existing log
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=47))
        rid = self.chat("openrouter/free", stream=True).headers["X-FreeRide-Request-Id"]
        lines, _ = finish(watch)
        stamp = r"^\[\d\d:\d\d:\d\d\.\d{3}\] " + rid + "  "
        expected = [r"▶ request model=openrouter/free stream",
                    r"→ openrouter\[k0\] openrouter/free",
                    r"← openrouter\[k0\] \d+ms RATE_LIMIT ✗ \(retry-after 47s\)",
                    r"→ groq\[k0\] llama-3.3-70b-versatile",
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
        watch = start_watch(clean_env(FREERIDE_HOME=str(self.home)), 6, "--since-start")
        lines, _ = finish(watch)
        texts = [line.split("  ", 1)[1] for line in lines]
        self.assertEqual(texts[0], "▶ request model=auto")
        self.assertEqual(texts[1], "→ openrouter[k0] openrouter/free")
        self.assertRegex(texts[2], r"← openrouter\[k0\] \d+ms RATE_LIMIT ✗ \(retry-after 47s\)")
        self.assertRegex(texts[4], r"← openrouter\[k1\] \d+ms OK ✓")
        self.assertRegex(texts[5], r"■ complete via openrouter")

    def test_watch_waits_for_the_log_and_follows_rotation_without_losing_lines(self):
        total = 3000  # about 1.3 MiB of events: the log rotates in the middle of the burst
        watch = start_watch(clean_env(FREERIDE_HOME=str(self.home)), total)
        time.sleep(0.5)  # watch starts before the log exists
        writer = freeride.Writer(self.home, True)
        padding = "x" * 380
        for i in range(total):
            writer.event(req=f"req_{i:08x}", event="note", seq=i, pad=padding)
        writer.close()
        lines, err = finish(watch, timeout=60)
        self.assertTrue((self.home / "events.jsonl.1").exists(), "the burst did not rotate")
        self.assertEqual(len(lines), total, err)
        seqs = [int(re.search(r'"seq": (\d+)', line).group(1)) for line in lines]
        self.assertEqual(seqs, list(range(total)))

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


class TelemetryTest(GatewayTest):
    def serve_briefly(self, env, seconds):
        process = subprocess.Popen([sys.executable, "-m", "freeride", "serve", "--port", "0"],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(seconds)
        finally:
            process.terminate()
            process.communicate(timeout=30)

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
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_TELEMETRY_INTERVAL="0.2",
                        FREERIDE_TELEMETRY_URL=f"http://127.0.0.1:{collector.server_port}/beacon")
        self.serve_briefly(env, 1.0)  # off (the default), URL set
        run_cli("telemetry", "on", env=clean_env(FREERIDE_HOME=str(self.home)))
        self.serve_briefly({k: v for k, v in env.items() if k != "FREERIDE_TELEMETRY_URL"}, 1.0)
        self.assertEqual(collector.received, [])

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
