"""The quota ledger (issue 15): what each key has left, from every answer's headers and from
counting documented free limits, routing by headroom before any 429 round trip.

Real gateway on loopback; the fakes send the providers' real rate-limit headers."""
import json
import time
import unittest

import freeride
import providers
from tests import fakes
from tests.fakes import Reply
from tests.support import GatewayTest, clean_env, run_cli
from tests.temphome import closed_port

GROQ = [m.id for m in providers.REGISTRY["groq"].models]


def groq_headers(requests_left, tokens_left=11800, resets="6h12m0s"):
    return {"x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests":
            str(requests_left), "x-ratelimit-reset-requests": resets,
            "x-ratelimit-limit-tokens": "12000", "x-ratelimit-remaining-tokens": str(tokens_left),
            "x-ratelimit-reset-tokens": "30s"}


def ok(headers, text="ok"):
    reply = fakes.chat_ok(text)
    reply.headers.update(headers)
    return reply


class Ledger(GatewayTest):
    def start(self, **keys):
        # the documented limits stay as shipped here, except Groq's 30 a minute
        return self.start_gateway({"FREERIDE_LIMITS": json.dumps(
            {"groq": {"requests/minute": 10 ** 6}})}, **keys)

    def test_a_key_whose_headers_said_zero_left_is_not_called_before_its_reset(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(0)), key="gsk-1", path="/chat/completions")
        self.start(groq=["gsk-1", "gsk-2"])
        self.assertEqual(self.chat(GROQ[0]).status, 200)  # gsk-1 answers, and says it is spent
        for _ in range(3):
            self.assertEqual(self.chat(GROQ[0]).status, 200)
        self.assertEqual(self.keys_seen("groq"), ["gsk-1", "gsk-2", "gsk-2", "gsk-2"])
        self.assertEqual(self.gateway.cooldowns.active(), {}, "no 429 was needed")
        groq.on(ok(groq_headers(0)), key="gsk-2", path="/chat/completions")
        self.chat(GROQ[0])  # gsk-2 spends its last
        answer = self.chat(GROQ[0])
        self.assertEqual(answer.status, 429)
        self.assertEqual(len(self.keys_seen("groq")), 5, "both skipped without a call")
        skips = self.logged("skip")
        self.assertEqual(skips[-1]["skipped"], "no requests left this day")
        self.assertAlmostEqual(skips[-1]["cooldown_s"], 6 * 3600 + 12 * 60, delta=5)

    def test_another_provider_serves_with_no_429_round_trip(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(0)), path="/chat/completions")
        self.start(groq="gsk-1", nvidia="nv-1")
        self.chat("gpt-oss-120b")  # a family both serve
        answer = self.chat("gpt-oss-120b")
        self.assertEqual(answer.headers["X-FreeRide-Provider"], "nvidia")
        self.assertEqual(len(groq.requests), 1)

    def test_a_big_request_skips_a_key_with_too_few_minute_tokens_left(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(1000, tokens_left=500)), key="gsk-1", path="/chat/completions",
                times=None)  # all its requests left, but 500 tokens this minute
        groq.on(ok(groq_headers(900)), key="gsk-2", path="/chat/completions", times=None)
        self.start(groq=["gsk-1", "gsk-2"])
        self.chat()
        self.chat()  # both have reported
        self.chat(text="x " * 100, max_tokens=4000)
        self.assertEqual(self.keys_seen("groq")[2], "gsk-2", "gsk-1 goes first, but skipped")
        self.chat(max_tokens=10)  # a small one still fits in gsk-1's minute
        self.assertEqual(self.keys_seen("groq")[3], "gsk-1")

    def test_the_key_with_more_headroom_goes_first(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(100)), key="gsk-1", path="/chat/completions", times=None)
        groq.on(ok(groq_headers(900)), key="gsk-2", path="/chat/completions", times=None)
        self.start(groq=["gsk-1", "gsk-2"])
        self.chat()
        self.chat()  # both keys have now reported
        for _ in range(4):
            self.chat()
        self.assertEqual(self.keys_seen("groq")[2:], ["gsk-2"] * 4)

    def test_auto_moves_to_groqs_next_model_when_the_first_models_day_is_spent(self):
        groq = self.fake("groq")
        groq.on(fakes.error("groq", "daily_rpd", model=GROQ[0]), model=GROQ[0], times=None)
        self.start(groq=["gsk-1", "gsk-2"])
        answer = self.chat("auto")
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.headers["X-FreeRide-Model"], GROQ[1])
        self.assertEqual([r.model for r in groq.requests], [GROQ[0], GROQ[0], GROQ[1]])
        named = self.chat(GROQ[0])
        self.assertEqual(named.status, 429, "asked by name, the model never changes")
        self.assertEqual(len(groq.requests), 3, "and no call is made for it")

    def test_the_ledger_survives_a_restart_and_resets_when_its_window_has_passed(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(0, resets="2s")), key="gsk-1", path="/chat/completions")
        first = self.start(groq=["gsk-1", "gsk-2"])
        self.chat()
        first.close()
        self.start(groq=["gsk-1", "gsk-2"])
        self.chat()
        self.assertEqual(self.keys_seen("groq"), ["gsk-2"], "still spent after the restart")
        time.sleep(2.1)
        self.chat()
        self.chat()
        self.assertIn("gsk-1", self.keys_seen("groq")[1:], "the window reset by itself")

    def test_a_damaged_ledger_is_set_aside_and_the_gateway_serves_on(self):
        good = {"provider": "groq", "key": "k", "model": "*", "unit": "requests",
                "window": "day", "limit": 5, "remaining": 1, "reset": time.time() + 3600,
                "told": True}
        for name, text in (("not JSON", "{oops"),
                           ("a bad row after a good one",
                            json.dumps({"version": 1, "rows": [good, {"provider": "groq"}]}))):
            with self.subTest(case=name):
                path = self.home / "ledger.json"
                path.write_text(text)
                self.fake("groq")
                gateway = self.start(groq="gsk-1")
                self.assertEqual(gateway.ledger.snapshot(), [], "no row of a damaged file is used")
                aside = list(self.home.glob("ledger.json.corrupt-*"))
                self.assertTrue(any(p.read_text() == text for p in aside), "kept for the user")
                self.assertEqual(self.chat().status, 200)
                gateway.close()
                for p in aside:
                    p.unlink()

    def test_answers_that_tell_nothing_and_count_against_nothing_leave_the_file_alone(self):
        self.fake("gemini")
        gateway = self.start(gemini="AIza-1")  # no quota headers, no documented limit
        for _ in range(3):
            self.assertEqual(self.chat().status, 200)
        gateway.ledger.flush()  # what the writer thread does every TICK
        self.assertFalse((self.home / "ledger.json").exists(), "nothing to write, nothing written")

    def test_documented_limits_are_counted_where_nothing_is_reported(self):
        self.fake("openrouter")
        self.start_gateway({"FREERIDE_LIMITS": json.dumps(
            {"openrouter": {"requests/day": 3, "requests/minute": 100}})},
            openrouter="or-1", groq="gsk-1")
        served = [self.chat().headers["X-FreeRide-Provider"] for _ in range(5)]
        self.assertEqual(served, ["openrouter"] * 3 + ["groq"] * 2)
        self.assertEqual(len(self.fakes["openrouter"].requests), 3)

    def test_openrouters_key_endpoint_says_how_many_free_requests_a_day_a_key_has(self):
        openrouter = self.fake("openrouter")
        openrouter.on(Reply(body={"data": {"label": "sk-or-v1-x...", "is_free_tier": False,
                                           "limit": None, "usage": 12.5}}),
                      key="or-credit", path="/key")
        openrouter.on(Reply(body={"data": {"label": "sk-or-v1-y...", "is_free_tier": True}}),
                      key="or-free", path="/key")
        self.start_gateway({"FREERIDE_LIMITS": json.dumps({"openrouter": {"requests/minute": 99}})},
                           openrouter=["or-credit", "or-free"])
        for _ in range(2):
            self.assertEqual(self.chat().status, 200)
        days = {q["key"]: q["limit"] for q in self.call("GET", "/freeride/status").json()
                ["providers"][0]["quota"] if q["window"] == "day"}
        self.assertEqual(days, {0: 1000, 1: 50})

    def test_when_all_is_spent_the_429_retry_after_is_the_soonest_reset(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(0, resets="1h0m0s")), path="/chat/completions")
        self.start(groq="gsk-1")
        self.chat(GROQ[0])
        answer = self.chat(GROQ[0])
        self.assertEqual(answer.status, 429, answer.body)
        self.assertAlmostEqual(int(answer.headers["Retry-After"]), 3600, delta=5)

    def test_status_metrics_and_models_show_the_figures(self):
        groq = self.fake("groq")
        groq.on(ok(groq_headers(812)), path="/chat/completions", times=None)
        self.start(groq="gsk-1")
        self.chat()
        status = self.call("GET", "/freeride/status").json()
        [row] = [q for q in status["providers"][0]["quota"]
                 if q["unit"] == "requests" and q["window"] == "day"]
        self.assertEqual((row["key"], row["model"], row["remaining"], row["limit"]),
                         (0, GROQ[0], 812, 1000))
        self.assertEqual(status["capacity_today"]["requests"], 812)
        metrics = self.call("GET", "/metrics").body.decode()
        self.assertIn(f'freeride_quota_remaining{{provider="groq",key="0",model="{GROQ[0]}",'
                      'window="day",unit="requests"} 812', metrics)
        self.assertIn('freeride_quota_limit{provider="groq"', metrics)
        models = {e["id"]: e for e in self.call("GET", "/v1/models").json()["data"]}
        self.assertEqual(models[GROQ[0]]["requests_left_today"], 812)
        env = clean_env(FREERIDE_HOME=str(self.home), NO_COLOR="1", GROQ_API_KEY="gsk-1",
                        FREERIDE_PROVIDERS="groq", GROQ_BASE_URL=groq.url)
        text = run_cli("status", "--url", self.gateway.url, env=env).stdout
        self.assertRegex(text, rf"k0 {GROQ[0]}  812/1000 requests today, resets \d\d:\d\d UTC")
        self.assertIn("free capacity left today: 812 requests", text)

    def test_a_bad_limits_variable_is_a_clear_error(self):
        with self.assertRaises(freeride.ConfigError) as caught:
            freeride.Config(env={"FREERIDE_LIMITS": '{"groq": {"requests/fortnight": 3}}'})
        self.assertIn("FREERIDE_LIMITS", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
