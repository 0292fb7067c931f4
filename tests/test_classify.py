"""The failure classifier, fed each provider's recorded answers (tests/fakes.py, taken from
shared/providers.md): class, cooldown scope and cooldown length for every case."""
import calendar
import shutil
import tempfile
import email.utils
import http.client
import time
import unittest
from pathlib import Path

import freeride
import providers
from providers import (AUTH, CLIENT, CONTEXT, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA,
                       RATE_LIMIT, UPSTREAM)
from tests import fakes

NOW = 1_790_000_000
DAY = MONTH = "until next 00:00 UTC"  # a monthly cap is probed again daily (providers.md)

# provider, case -> class, scope, cooldown seconds (a number, DAY, MONTH, or None: not cooled)
EXPECTED = {
    ("openrouter", "rate_minute"): (RATE_LIMIT, KEY, 30),
    ("openrouter", "daily_cap"): (QUOTA, KEY, DAY),
    ("openrouter", "daily_cap_high"): (QUOTA, KEY, DAY),
    ("openrouter", "upstream_rate"): (RATE_LIMIT, MODEL, 17),
    ("openrouter", "auth_missing"): (AUTH, KEY, 3600),
    ("openrouter", "auth_invalid"): (AUTH, KEY, 3600),
    ("openrouter", "credits"): (QUOTA, KEY, 3600),
    ("openrouter", "bad_model"): (MODEL_NOT_FOUND, MODEL, 86400),
    ("openrouter", "no_endpoints"): (MODEL_NOT_FOUND, MODEL, 3600),
    ("openrouter", "context"): (CONTEXT, KEY, None),
    ("openrouter", "context_502"): (CONTEXT, KEY, None),
    ("openrouter", "moderation"): (CLIENT, KEY, None),
    ("openrouter", "provider_error"): (UPSTREAM, MODEL, 15),
    ("openrouter", "no_provider"): (UPSTREAM, MODEL, 30),
    ("openrouter", "timeout"): (UPSTREAM, MODEL, 30),
    ("openrouter", "bad_request"): (CLIENT, KEY, None),
    ("groq", "rate_tpm"): (RATE_LIMIT, KEY_MODEL, 2),
    ("groq", "rate_rpm"): (RATE_LIMIT, KEY_MODEL, 2),
    ("groq", "daily_tpd"): (QUOTA, KEY_MODEL, 579),
    ("groq", "daily_rpd"): (QUOTA, KEY_MODEL, 3723),
    ("groq", "too_large"): (CONTEXT, KEY, None),
    ("groq", "auth"): (AUTH, KEY, 3600),
    ("groq", "model_not_found"): (MODEL_NOT_FOUND, MODEL, 86400),
    ("groq", "context"): (CONTEXT, KEY, None),
    ("groq", "flex"): (UPSTREAM, MODEL, 20),
    ("groq", "tool_use_failed"): (CLIENT, KEY, None),
    ("groq", "server"): (UPSTREAM, MODEL, 15),
    ("groq", "unavailable"): (UPSTREAM, MODEL, 15),
    ("nvidia", "rate"): (RATE_LIMIT, KEY, 120),
    ("nvidia", "auth_missing"): (AUTH, KEY, 3600),
    ("nvidia", "auth"): (AUTH, KEY, 3600),
    ("nvidia", "not_found"): (MODEL_NOT_FOUND, MODEL, 3600),
    ("nvidia", "not_found_empty"): (MODEL_NOT_FOUND, MODEL, 3600),
    ("nvidia", "gone"): (MODEL_NOT_FOUND, MODEL, 86400),
    ("nvidia", "context"): (CONTEXT, KEY, None),
    ("nvidia", "server"): (UPSTREAM, MODEL, 15),
    ("nvidia", "unavailable"): (UPSTREAM, MODEL, 15),
    ("nvidia", "gateway_timeout"): (UPSTREAM, MODEL, 30),
    ("cloudflare", "neurons"): (QUOTA, KEY, DAY),
    ("cloudflare", "neurons_3036"): (QUOTA, KEY, DAY),
    ("cloudflare", "rate"): (RATE_LIMIT, KEY_MODEL, 1),
    ("cloudflare", "capacity"): (UPSTREAM, MODEL, 30),
    ("cloudflare", "auth"): (AUTH, KEY, 3600),
    ("cloudflare", "route"): (AUTH, KEY, 3600),
    ("cloudflare", "no_model"): (MODEL_NOT_FOUND, MODEL, 86400),
    ("cloudflare", "invalid_model"): (MODEL_NOT_FOUND, MODEL, 86400),
    ("cloudflare", "too_large"): (CONTEXT, KEY, None),
    ("cloudflare", "timeout"): (UPSTREAM, MODEL, 30),
    ("cloudflare", "invalid_input"): (CLIENT, KEY, None),
    ("cloudflare", "agreement"): (MODEL_NOT_FOUND, KEY_MODEL, 86400),
    ("huggingface", "credits"): (QUOTA, KEY, MONTH),
    ("huggingface", "credits_new"): (QUOTA, KEY, MONTH),
    ("huggingface", "model_not_supported"): (MODEL_NOT_FOUND, MODEL, 86400),
    ("huggingface", "auth"): (AUTH, KEY, 3600),
    ("huggingface", "rate"): (RATE_LIMIT, KEY, 120),
    ("huggingface", "busy"): (UPSTREAM, MODEL, 30),
}


def headers_of(reply):
    message = http.client.HTTPMessage()
    for name, value in reply.headers.items():
        message[name] = value
    return message


def verdict_for(provider, reply, now):
    return freeride.classify(providers.REGISTRY[provider](), reply.status, headers_of(reply),
                             reply.body, now=now)


class ClassifierTableTest(unittest.TestCase):
    def test_every_recorded_case_has_an_expectation(self):
        cases = {(p, c) for p, names in fakes.ERROR_CASES.items() for c in names
                 if c not in ("html_502", "html_524", "garbage_200", "truncated_200")}
        self.assertEqual(cases, set(EXPECTED))

    def test_each_recorded_answer_gets_its_class_scope_and_cooldown(self):
        now = time.time()
        midnight = calendar.timegm(time.gmtime(now)[:3] + (0, 0, 0)) + 86400
        for (provider, case), (cls, scope, cooldown) in EXPECTED.items():
            with self.subTest(provider=provider, case=case):
                verdict = verdict_for(provider, fakes.error(provider, case), now)
                self.assertEqual(verdict.cls, cls)
                if cooldown is None:
                    continue
                self.assertEqual(verdict.scope, scope)
                want = {DAY: midnight - now}.get(cooldown, cooldown)
                self.assertAlmostEqual(verdict.seconds, want, delta=2)

    def test_edge_html_pages_are_upstream_failures(self):
        for provider in providers.REGISTRY:
            for case, seconds in (("html_502", 15), ("html_524", 30)):
                with self.subTest(provider=provider, case=case):
                    verdict = verdict_for(provider, fakes.error(provider, case), time.time())
                    self.assertEqual((verdict.cls, verdict.scope, verdict.seconds),
                                     (UPSTREAM, MODEL, seconds))

    def test_messages_are_read_from_every_envelope(self):
        cases = {("nvidia", "auth"): "Authorization failed",
                 ("cloudflare", "neurons"): "4006: you have used up your daily free allocation",
                 ("huggingface", "auth"): "Invalid credentials in Authorization header",
                 ("groq", "auth"): "Invalid API Key",
                 ("openrouter", "html_502"): "Bad gateway"}
        for (provider, case), start in cases.items():
            with self.subTest(provider=provider, case=case):
                verdict = verdict_for(provider, fakes.error(provider, case), time.time())
                self.assertIn(start, verdict.message)


class CooldownHintTest(unittest.TestCase):
    """How long to wait, from the answers' many formats (providers.md, cooldown derivation)."""

    def hint(self, headers=None, body=""):
        message = http.client.HTTPMessage()
        for name, value in (headers or {}).items():
            message[name] = value
        return freeride.classify(providers.Provider(), 429, message, body.encode(), now=NOW)

    def test_durations_in_every_format(self):
        for text, seconds in (("17", 17), ("26.28", 26.28), ("2m59.56s", 179.56), ("7.66s", 7.66),
                              ("825ms", 0.825), ("1m26.4s", 86.4), ("1h2m3s", 3723)):
            with self.subTest(text=text):
                self.assertAlmostEqual(freeride.parse_duration(text), seconds)
        self.assertIsNone(freeride.parse_duration("soon"))
        self.assertIsNone(freeride.parse_duration(""))

    def test_retry_after_ms_wins_over_retry_after(self):
        self.assertEqual(self.hint({"retry-after-ms": "4000", "retry-after": "60"}).seconds, 4)

    def test_retry_after_as_http_date(self):
        date = email.utils.formatdate(NOW + 90, usegmt=True)
        self.assertAlmostEqual(self.hint({"Retry-After": date}).seconds, 90, delta=1)

    def test_epoch_milliseconds_reset_header(self):
        self.assertAlmostEqual(self.hint({"X-RateLimit-Reset": str((NOW + 45) * 1000)}).seconds,
                               45)

    def test_prose_hints_in_the_body(self):
        self.assertAlmostEqual(self.hint(body='{"error":{"message":"Please try again in 1m26.4s."}}')
                               .seconds, 86.4)
        self.assertAlmostEqual(self.hint(body='{"error":{"message":"Please wait 1631 seconds '
                                              'before retrying."}}').seconds, 1631)

    def test_garbage_retry_after_falls_back_to_the_default(self):
        self.assertEqual(self.hint({"retry-after": "whenever"}).seconds, 120)

    def test_an_absurd_retry_after_is_capped_per_class(self):
        for value in (str(365 * 86400), "1e30"):
            with self.subTest(value=value):
                self.assertEqual(self.hint({"retry-after": value}).seconds,
                                 freeride.MAX_COOLDOWN[RATE_LIMIT])

    def test_no_hint_cools_a_rate_limited_key_120_seconds(self):
        self.assertEqual(self.hint().seconds, 120)


class CapFloorTest(unittest.TestCase):
    """A daily or monthly cap is never retried within 15 minutes, whatever its hint says."""

    def test_a_short_hint_on_a_daily_or_monthly_cap_still_cools_fifteen_minutes(self):
        for provider, case, extra in (("openrouter", "daily_cap", {"retry_after": 17}),
                                      ("openrouter", "daily_cap", {"reset_ms": (NOW - 5) * 1000}),
                                      ("cloudflare", "neurons", {"retry_after": 1}),
                                      ("huggingface", "credits", {"retry_after": 3})):
            with self.subTest(provider=provider, case=case, **extra):
                verdict = verdict_for(provider, fakes.error(provider, case, **extra), NOW)
                self.assertEqual(verdict.cls, QUOTA)
                self.assertGreaterEqual(verdict.seconds, freeride.CAP_FLOOR)

    def test_a_minute_limit_keeps_its_short_hint(self):
        verdict = verdict_for("openrouter", fakes.error("openrouter", "rate_minute",
                                                        retry_after=17), NOW)
        self.assertEqual(verdict.cls, RATE_LIMIT)
        self.assertLess(verdict.seconds, 60)


class UpstreamBackoffTest(unittest.TestCase):
    """An upstream that keeps failing is left alone longer each time (providers.md, rule 5)."""

    def setUp(self):
        home = Path(tempfile.mkdtemp(prefix="freeride-test-"))
        self.addCleanup(shutil.rmtree, home, True)
        self.cooldowns = freeride.Cooldowns(home / "cooldown.json", None)
        self.now = NOW

    def waits(self, times, base=15, gap=1.0):
        """The waits of `times` failures, each `gap` seconds after the previous wait ended."""
        out = []
        for _ in range(times):
            wait = self.cooldowns.backoff("groq", "*", "m", base, now=self.now)
            out.append(wait)
            self.now += wait + gap
        return out

    def test_repeated_failures_double_the_wait_up_to_the_cap_with_jitter(self):
        for wait, nominal in zip(self.waits(7), (15, 30, 60, 120, 240, 300, 300)):
            self.assertGreaterEqual(wait, nominal * 0.9)
            self.assertLessEqual(wait, nominal * 1.1)

    def test_a_success_or_a_long_quiet_spell_starts_again_from_the_short_wait(self):
        self.waits(3)
        self.cooldowns.recovered("groq", "key-id", "m")
        self.assertLessEqual(self.waits(1)[0], 15 * 1.1)
        self.waits(3)
        self.now += 10_000
        self.assertLessEqual(self.waits(1)[0], 15 * 1.1)


class ResolveTest(unittest.TestCase):
    """Which (provider, model) candidates a requested model name becomes."""

    def routes(self, *names):
        return [freeride.Route(providers.REGISTRY[n](), [freeride.Key(n, 0, "k", "", "id")])
                for n in names]

    def resolved(self, model, *names, **features):
        return [(r.name, m) for r, m in freeride.resolve(self.routes(*names), model, **features)]

    def test_aliases_and_unknown_names_go_to_each_default(self):
        defaults = [("openrouter", "openrouter/free"), ("groq", "openai/gpt-oss-120b"),
                    ("nvidia", "nvidia/nemotron-3-super-120b-a12b")]
        for name in ("auto", "free", "openrouter/free", "gpt-4o", "claude-3-5-sonnet"):
            with self.subTest(model=name):
                self.assertEqual(self.resolved(name, "openrouter", "groq", "nvidia"), defaults)

    def test_exact_id_goes_first_to_its_provider_then_the_family(self):
        self.assertEqual(self.resolved("@cf/openai/gpt-oss-120b", "groq", "cloudflare", "nvidia"),
                         [("cloudflare", "@cf/openai/gpt-oss-120b"),
                          ("groq", "openai/gpt-oss-120b"),
                          ("nvidia", "openai/gpt-oss-120b")])

    def test_family_spellings_map_to_each_providers_own(self):
        self.assertEqual(self.resolved("GPT-OSS-20B", "groq", "cloudflare"),
                         [("groq", "openai/gpt-oss-20b"),
                          ("cloudflare", "@cf/openai/gpt-oss-20b")])
        self.assertEqual(self.resolved("gemma", "groq", "nvidia"),
                         [("nvidia", "google/gemma-4-31b-it")])

    def test_images_go_only_to_vision_models(self):
        self.assertEqual(self.resolved("auto", "groq", "nvidia", vision=True),
                         [("groq", "qwen/qwen3.8-27b"),
                          ("nvidia", "google/gemma-4-31b-it")])

    def test_tools_skip_models_without_tool_support(self):
        self.assertEqual(self.resolved("deepseek", "cloudflare", tools=True), [])
        self.assertEqual(self.resolved("deepseek", "cloudflare"),
                         [("cloudflare", "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b")])

    def test_free_model_override_adds_models(self):
        groq = providers.REGISTRY["groq"](None, ["moonshotai/kimi-k2-instruct"])
        self.assertTrue(groq.serves("moonshotai/kimi-k2-instruct"))
        self.assertEqual(groq.models[0].id, "openai/gpt-oss-120b")


if __name__ == "__main__":
    unittest.main()
