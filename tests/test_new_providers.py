"""Every provider added by issue 14 behind a real gateway, its fake answering with the recorded
errors of its fixture file (tests/fixtures/providers/<name>.json): a per-minute limit rotates
to the next key, a cap cools the key until its documented reset, a bad key moves on, an unknown
model moves to the next provider without cooling the key, and a stream that fails before its
first content is answered by the next provider unseen."""
import json
import time
import unittest

import freeride
import providers
from tests import fakes
from tests.support import ROOT, GatewayTest, clean_env, run_cli
from tests.temphome import closed_port

NEW = ("gemini", "mistral", "zai", "requesty", "kilo", "llm7", "ovh")
FIXTURES = ROOT / "tests" / "fixtures" / "providers"


def recorded(name, cls, scopes=("key", "key-model", "model")):
    """The first recorded error case of that class (and scope), or None."""
    cases = json.loads((FIXTURES / f"{name}.json").read_text())["errors"]
    return next((case for case, e in cases.items()
                 if e["expect"]["class"] == cls and e["expect"]["scope"] in scopes), None)


def expected_wait(name, case, now):
    cooldown = json.loads((FIXTURES / f"{name}.json").read_text())["errors"][case]["expect"]["cooldown"]
    if isinstance(cooldown, str):
        return freeride.calendar_reset(cooldown, now)
    return cooldown


class NewProviders(GatewayTest):
    def gateway_for(self, name, keys=("k1", "k2"), backup=False):
        """A gateway with this provider first (two keys where it takes keys) and Groq after."""
        cls = providers.REGISTRY[name]
        upstream = self.fake(name)
        env = {"FREERIDE_PROVIDERS": name + (",groq" if backup else ""),
               cls.base_url_var or f"{name.upper()}_BASE_URL": upstream.url}
        if cls.keyless:
            env["FREERIDE_KEYLESS"] = "1"
        if cls.key_vars and keys:
            env[cls.key_vars[0]] = json.dumps(list(keys))
        if backup:
            env.update({"GROQ_API_KEY": "gsk-backup", "GROQ_BASE_URL": self.fake("groq").url})
        self.start_gateway(env)
        return upstream

    def each(self, with_keys=False):
        for name in NEW:
            if with_keys and not providers.REGISTRY[name].key_vars:
                continue
            with self.subTest(provider=name):
                self.fakes = {}
                yield name

    def chat_keys(self, upstream):
        return [r.key for r in upstream.requests if r.path.endswith("/chat/completions")]

    def test_a_per_minute_limit_rotates_to_the_second_key(self):
        for name in self.each(with_keys=True):
            case = recorded(name, "RATE_LIMIT", ("key", "key-model"))
            self.assertIsNotNone(case, f"{name} records no per-minute limit")
            upstream = self.gateway_for(name)
            upstream.on(fakes.error(name, case), key="k1")
            response = self.chat()
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual(self.chat_keys(upstream), ["k1", "k2"])

    def test_a_cap_cools_the_key_until_its_documented_reset(self):
        for name in self.each(with_keys=True):
            case = recorded(name, "QUOTA")
            self.assertIsNotNone(case, f"{name} records no daily or monthly cap")
            upstream = self.gateway_for(name)
            upstream.on(fakes.error(name, case), key="k1")
            now = time.time()
            self.assertEqual(self.chat().status, 200)
            cooling = [c for (p, k, m), c in self.gateway.cooldowns.active().items() if p == name]
            self.assertEqual(len(cooling), 1)
            want = max(expected_wait(name, case, now), freeride.CAP_FLOOR)
            self.assertAlmostEqual(cooling[0].until - now, want, delta=max(60, want * 0.11))
            self.assertEqual(self.chat().status, 200)
            self.assertEqual(self.chat_keys(upstream), ["k1", "k2", "k2"], "k1 stays cooled")

    def test_a_bad_key_moves_on_to_the_next(self):
        for name in self.each(with_keys=True):
            case = recorded(name, "AUTH")
            self.assertIsNotNone(case, f"{name} records no bad-key answer")
            upstream = self.gateway_for(name)
            upstream.on(fakes.error(name, case), key="k1")
            self.assertEqual(self.chat().status, 200)
            self.assertEqual(self.chat_keys(upstream), ["k1", "k2"])
            self.assertEqual(self.chat().status, 200)
            self.assertEqual(self.chat_keys(upstream)[-1], "k2")

    def test_an_unknown_model_moves_to_the_next_provider_without_cooling_the_key(self):
        for name in self.each():
            case = recorded(name, "MODEL_NOT_FOUND", ("model",))
            self.assertIsNotNone(case, f"{name} records no unknown-model answer")
            upstream = self.gateway_for(name, backup=True)
            upstream.on(fakes.error(name, case))
            response = self.chat()
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
            self.assertEqual([k for k in self.gateway.cooldowns.active() if k[0] == name], [],
                             "no key of it cools")
            self.assertEqual(self.chat().headers["X-FreeRide-Provider"], name,
                             "its next model serves the next request")

    def test_a_stream_that_fails_before_content_is_answered_by_the_next_provider(self):
        for name in self.each():
            upstream = self.gateway_for(name, backup=True)
            upstream.on(fakes.Reply(events=[
                'data: {"id":"x","object":"chat.completion.chunk","created":0,"model":"m",'
                '"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}'],
                cut_after=1))
            response = self.chat(stream=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
            self.assertIn(b"data: [DONE]", response.body)
            self.assertNotIn(b'"error"', response.body)


class Gemini(GatewayTest):
    def setUp(self):
        super().setUp()
        self.upstream = self.fake("gemini")
        self.start_gateway(gemini=["g1", "g2"], groq="gsk-backup")
        self.model = providers.REGISTRY["gemini"].models[0].id

    def test_a_per_day_quota_cools_that_model_on_that_key_until_pacific_midnight(self):
        case = next(c for c, e in json.loads((FIXTURES / "gemini.json").read_text())["errors"].items()
                    if e["expect"]["cooldown"] == "pacific-day")
        self.upstream.on(fakes.error("gemini", case), key="g1")
        now = time.time()
        self.assertEqual(self.chat().headers["X-FreeRide-Provider"], "gemini")
        [(where, cooling)] = self.gateway.cooldowns.active().items()
        self.assertEqual(where[2], self.model, "the model, not the whole key")
        self.assertAlmostEqual(cooling.until - now,
                               max(freeride.calendar_reset("pacific-day", now), freeride.CAP_FLOOR),
                               delta=60)

    def test_a_per_minute_quota_cools_for_its_retry_delay(self):
        case = recorded("gemini", "RATE_LIMIT", ("key-model",))
        self.upstream.on(fakes.error("gemini", case), key="g1")
        now = time.time()
        self.assertEqual(self.chat().status, 200)
        [(_, cooling)] = self.gateway.cooldowns.active().items()
        self.assertLess(cooling.until - now, 120)

    def test_a_400_bad_key_is_auth_and_moves_on(self):
        case = recorded("gemini", "AUTH")
        self.assertEqual(json.loads((FIXTURES / "gemini.json").read_text())
                         ["errors"][case]["status"], 400)
        self.upstream.on(fakes.error("gemini", case), key="g1")
        self.assertEqual(self.chat().status, 200)
        [((_, key, model), cooling)] = self.gateway.cooldowns.active().items()
        self.assertEqual((model, cooling.cls), ("*", "AUTH"))


class GeminiDoctor(GatewayTest):
    def test_doctor_calls_geminis_400_bad_key_rejected(self):
        gemini = self.fake("gemini")
        gemini.on(fakes.error("gemini", recorded("gemini", "AUTH")), path="/models", times=None)
        env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT=str(closed_port()),
                        NO_COLOR="1", FREERIDE_PROVIDERS="gemini", GEMINI_API_KEY="bad",
                        GEMINI_BASE_URL=gemini.url)
        result = run_cli("doctor", env=env)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("✗ gemini key rejected (400) — replace the key in GEMINI_API_KEY",
                      result.stdout)


if __name__ == "__main__":
    unittest.main()
