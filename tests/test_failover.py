"""Chat completions through a real gateway in front of fake providers: which key and which
provider answer after each kind of failure, what is cooled and for how long, and what the
client sees when nothing is left."""
import calendar
import json
import time
import unittest

import freeride
import providers
from tests import fakes
from tests.support import GatewayTest


def next_midnight(now=None):
    t = time.gmtime(now)
    return calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400

GROQ_DEFAULT = providers.REGISTRY["groq"].models[0].id  # what `auto` asks Groq for


class KeyRotationTest(GatewayTest):
    def test_rate_limit_rotates_to_the_second_key(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=47), key="or-k1")
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        response = self.chat()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "openrouter")
        self.assertEqual(response.json()["_freeride_provider"], "openrouter")
        self.assertTrue(response.headers["X-FreeRide-Request-Id"].startswith("req_"))
        self.assertEqual(self.keys_seen("openrouter"), ["or-k1", "or-k2"])
        [row] = self.cooldown_file()
        self.assertEqual((row["class"], row["model"]), ("RATE_LIMIT", "*"))
        self.assertAlmostEqual(row["until"] - time.time(), 47, delta=3)

    def test_daily_cap_cools_the_key_until_next_utc_midnight(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "daily_cap"), key="or-k1")
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.assertEqual(self.chat().status, 200)
        [row] = self.cooldown_file()
        self.assertEqual(row["class"], "QUOTA")
        self.assertAlmostEqual(row["until"], next_midnight(), delta=2)

    def test_cloudflare_neuron_cap_without_a_time_cools_until_midnight(self):
        cloudflare = self.fake("cloudflare")
        cloudflare.on(fakes.error("cloudflare", "neurons"), key="cf-1")
        self.start_gateway(cloudflare=["cf-1", "cf-2"])
        self.assertEqual(self.chat().status, 200)
        self.assertEqual(self.keys_seen("cloudflare"), ["cf-1", "cf-2"])
        [row] = self.cooldown_file()
        self.assertEqual(row["class"], "QUOTA")
        self.assertAlmostEqual(row["until"], next_midnight(), delta=2)

    def test_bad_key_is_cooled_and_the_next_key_serves(self):
        groq = self.fake("groq")
        groq.on(fakes.error("groq", "auth"), key="gsk-bad", times=None)
        self.start_gateway(groq=["gsk-bad", "gsk-good"])
        for _ in range(3):
            self.assertEqual(self.chat().status, 200)
        # The bad key was tried once; while it cools every request goes to the good one.
        self.assertEqual(self.keys_seen("groq"), ["gsk-bad", "gsk-good", "gsk-good", "gsk-good"])
        [row] = self.cooldown_file()
        self.assertEqual(row["class"], "AUTH")
        self.assertGreaterEqual(row["until"] - time.time(), 3500)

    def test_json_array_of_three_keys_spreads_requests_over_them(self):
        self.fake("groq")
        self.start_gateway(groq=["g-1", "g-2", "g-3"])
        for _ in range(6):
            self.assertEqual(self.chat().status, 200)
        self.assertEqual(sorted(self.keys_seen("groq")), ["g-1", "g-1", "g-2", "g-2", "g-3", "g-3"])
        self.assertEqual(self.keys_seen("groq")[:3], ["g-1", "g-2", "g-3"])


class ProviderFailoverTest(GatewayTest):
    def test_unknown_model_skips_to_the_next_provider_without_cooling_the_key(self):
        groq, nvidia = self.fake("groq"), self.fake("nvidia")
        groq.on(fakes.error("groq", "model_not_found"), model="llama-3.3-70b-versatile")
        self.start_gateway(groq="gsk-1", nvidia="nv-1")
        response = self.chat("llama-3.3-70b")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
        self.assertEqual(nvidia.requests[0].model, "meta/llama-3.3-70b-instruct")
        # The model is gone for every key (dropped until the catalog lists it again), and the
        # key is not cooled: it still serves other models at once.
        self.assertEqual(self.chat("llama-3.3-70b").headers["X-FreeRide-Provider"], "nvidia")
        self.assertEqual([r.model for r in groq.requests], ["llama-3.3-70b-versatile"])
        self.assertEqual(self.gateway.cooldowns.active(), {})
        response = self.chat("llama-3.1-8b-instant")
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")

    def test_server_error_moves_to_the_next_provider_not_the_next_key(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        openrouter.on(fakes.error("openrouter", "provider_error"))
        self.start_gateway(openrouter=["or-k1", "or-k2"], groq="gsk-1")
        response = self.chat()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        self.assertEqual(self.keys_seen("openrouter"), ["or-k1"])

    def test_plain_500_moves_to_the_next_provider_after_one_key(self):
        groq, nvidia = self.fake("groq"), self.fake("nvidia")
        groq.on(fakes.error("groq", "server"), times=None)  # every Groq key would answer 500
        self.start_gateway(groq=["gsk-1", "gsk-2"], nvidia="nv-1")
        response = self.chat()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
        self.assertEqual(len(self.keys_seen("groq")), 1, "a server error is not the key's fault")
        self.assertEqual(self.keys_seen("nvidia"), ["nv-1"])
        results = [(e["provider"], e.get("status"), e.get("class"))
                   for e in self.events() if e["event"] == "result"]
        self.assertEqual(results, [("groq", 500, "UPSTREAM"), ("nvidia", None, None)])
        rows = self.cooldown_file()  # the model cools on every Groq key, briefly
        self.assertEqual([(r["provider"], r["key"], r["model"], r["class"]) for r in rows],
                         [("groq", "*", GROQ_DEFAULT, "UPSTREAM")])

    def test_html_edge_page_and_broken_json_fail_over(self):
        for case in ("html_524", "garbage_200", "truncated_200"):
            with self.subTest(case=case):
                self.setUp()
                openrouter, groq = self.fake("openrouter"), self.fake("groq")
                openrouter.on(fakes.error("openrouter", case))
                self.start_gateway(openrouter="or-k1", groq="gsk-1")
                response = self.chat()
                self.assertEqual(response.status, 200)
                self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")

    def test_client_error_is_returned_with_the_providers_status_and_no_failover(self):
        groq, nvidia = self.fake("groq"), self.fake("nvidia")
        groq.on(fakes.error("groq", "tool_use_failed"))
        self.start_gateway(groq="gsk-1", nvidia="nv-1")
        response = self.chat()
        self.assertEqual(response.status, 400)
        error = response.error
        self.assertIn("Failed to call a function", error["message"])
        self.assertEqual(error["upstream"]["error"]["code"], "tool_use_failed")
        self.assertEqual(error["provider"], "groq")
        self.assertEqual(nvidia.requests, [])
        self.assertFalse((self.home / "cooldown.json").exists())

    def test_context_too_large_tries_the_next_candidate_without_cooling(self):
        groq, nvidia = self.fake("groq"), self.fake("nvidia")
        groq.on(fakes.error("groq", "too_large"))
        self.start_gateway(groq="gsk-1", nvidia="nv-1")
        self.assertEqual(self.chat().headers["X-FreeRide-Provider"], "nvidia")
        self.assertFalse((self.home / "cooldown.json").exists())

    def test_openrouter_free_is_served_by_groq_with_a_groq_model_when_openrouter_is_capped(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        openrouter.on(fakes.error("openrouter", "daily_cap"), times=None)
        self.start_gateway(openrouter="or-k1", groq="gsk-1")
        response = self.chat("openrouter/free")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        self.assertEqual(response.json()["_freeride_provider"], "groq")
        self.assertEqual(groq.requests[0].model, GROQ_DEFAULT)
        self.assertEqual(openrouter.requests[0].model, "openrouter/free")
        # Capped until midnight: the next request goes straight to Groq.
        self.chat("openrouter/free")
        self.assertEqual(len(openrouter.requests), 1)

    def test_exact_model_goes_first_to_the_provider_that_serves_it(self):
        self.fake("openrouter"), self.fake("groq")
        self.start_gateway(openrouter="or-k1", groq="gsk-1")
        response = self.chat("llama-3.1-8b-instant")
        self.assertEqual(response.headers["X-FreeRide-Provider"], "groq")
        self.assertEqual(self.fakes["groq"].requests[0].model, "llama-3.1-8b-instant")
        self.assertEqual(self.fakes["openrouter"].requests, [])


class ExhaustedTest(GatewayTest):
    def test_all_rate_limited_answers_429_with_retry_after_and_every_attempt(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=40), times=None)
        groq.on(fakes.error("groq", "rate_tpm", retry_after=9), times=None)
        self.start_gateway(openrouter=["or-k1", "or-k2"], groq="gsk-1")
        response = self.chat()
        self.assertEqual(response.status, 429)
        self.assertEqual(response.headers["Retry-After"], "9")
        error = response.error
        self.assertEqual(error["code"], "all_providers_exhausted")
        self.assertTrue(error["hint"])
        self.assertEqual([(a["provider"], a["key"], a["class"]) for a in error["attempts"]],
                         [("openrouter", 0, "RATE_LIMIT"), ("openrouter", 1, "RATE_LIMIT"),
                          ("groq", 0, "RATE_LIMIT")])
        self.assertEqual([a["model"] for a in error["attempts"]],
                         ["openrouter/free", "openrouter/free", GROQ_DEFAULT])
        self.assertEqual([a["cooldown_s"] for a in error["attempts"]], [40, 40, 9])
        # While they cool, the next request is answered at once without calling anyone.
        again = self.chat()
        self.assertEqual(again.status, 429)
        self.assertTrue(all(a["skipped"] == "cooling" for a in again.error["attempts"]))
        self.assertEqual(len(openrouter.requests) + len(groq.requests), 3)

    def test_failures_that_waiting_cannot_fix_answer_503(self):
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        openrouter.on(fakes.error("openrouter", "auth_invalid"), times=None)
        groq.on(fakes.error("groq", "server"), times=None)
        self.start_gateway(openrouter="or-k1", groq="gsk-1")
        response = self.chat()
        self.assertEqual(response.status, 503)
        self.assertNotIn("Retry-After", response.headers)
        self.assertEqual([a["class"] for a in response.error["attempts"]], ["AUTH", "UPSTREAM"])
        self.assertEqual(response.error["code"], "no_provider_available")

    def test_connection_refused_is_an_upstream_failure(self):
        groq = self.fake("groq")
        env = self.provider_env(groq="gsk-1")
        env["GROQ_BASE_URL"] = groq.url
        groq.close()
        self.start_gateway(env)
        response = self.chat()
        self.assertEqual(response.status, 503)
        [attempt] = response.error["attempts"]
        self.assertEqual((attempt["class"], attempt["status"]), ("UPSTREAM", 0))
        self.assertIn("cannot reach upstream", attempt["message"])

    def test_no_key_at_all_answers_503_naming_the_variables(self):
        self.start_gateway()
        response = self.chat()
        self.assertEqual(response.status, 503)
        self.assertEqual(response.error["code"], "no_providers_configured")
        for var in ("OPENROUTER_API_KEY", "GROQ_API_KEY", "CLOUDFLARE_ACCOUNT_ID", "HF_TOKEN"):
            self.assertIn(var, response.error["message"])


class StateTest(GatewayTest):
    def test_cooldowns_survive_a_restart(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute", retry_after=600), key="or-k1")
        first = self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.assertEqual(self.chat().status, 200)
        self.assertEqual(self.keys_seen("openrouter"), ["or-k1", "or-k2"])
        first.close()
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        for _ in range(2):
            self.assertEqual(self.chat().status, 200)
        self.assertEqual(self.keys_seen("openrouter"), ["or-k2", "or-k2"])

    def test_a_corrupt_cooldown_file_is_set_aside_not_fatal(self):
        (self.home / "cooldown.json").write_text("{not json")
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        self.assertEqual(self.chat().status, 200)
        aside = list(self.home.glob("cooldown.json.corrupt-*"))
        self.assertEqual(len(aside), 1)
        self.assertEqual(aside[0].read_text(), "{not json")

    def test_state_files_are_private(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute"), key="or-k1")
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        self.chat()
        self.cooldown_file()
        self.events()
        for name in ("cooldown.json", "events.jsonl"):
            self.assertEqual((self.home / name).stat().st_mode & 0o777, 0o600, name)

    def test_no_key_appears_in_responses_events_or_state(self):
        secrets = ["sk-or-v1-AAAAsecretOne", "sk-or-v1-BBBBsecretTwo", "gsk_CCCCsecretThree"]
        openrouter, groq = self.fake("openrouter"), self.fake("groq")
        # Providers that echo the key back in their error must not leak it through us.
        for secret in secrets[:2]:
            openrouter.on(fakes.error("openrouter", "auth_invalid",
                                      message=f"User not found for key {secret}"), key=secret)
        groq.on(fakes.error("groq", "rate_tpm", message=f"slow down, {secrets[2]}"))
        groq.on(fakes.error("groq", "tool_use_failed", message=f"bad tool from {secrets[2]}"))
        self.start_gateway(openrouter=secrets[:2], groq=secrets[2])
        seen = [self.chat(), self.chat("llama-3.1-8b-instant")]
        self.assertEqual([r.status for r in seen], [503, 400])
        texts = [r.body.decode() + str(dict(r.headers)) for r in seen]
        texts += [(self.home / "events.jsonl").read_text() if self.events() else "",
                  (self.home / "cooldown.json").read_text()]
        for text in texts:
            for secret in secrets:
                self.assertNotIn(secret, text)
                self.assertNotIn(secret[8:], text)
        for response in seen:
            self.assertIn("[redacted]", response.body.decode())

    def test_events_trace_each_request_attempt_and_outcome(self):
        openrouter = self.fake("openrouter")
        openrouter.on(fakes.error("openrouter", "rate_minute"), key="or-k1")
        self.start_gateway(openrouter=["or-k1", "or-k2"])
        rid = self.chat().headers["X-FreeRide-Request-Id"]
        rows = [e for e in self.events() if e["req"] == rid]
        self.assertEqual([e["event"] for e in rows],
                         ["request", "attempt", "result", "attempt", "result", "complete"])
        self.assertEqual([(e.get("key"), e.get("ok"), e.get("class")) for e in rows[1:5]],
                         [(0, None, None), (0, False, "RATE_LIMIT"), (1, None, None),
                          (1, True, None)])
        self.assertTrue(all(isinstance(e["ts"], float) for e in rows))
        self.assertIn("ms", rows[2])

    def test_events_can_be_turned_off(self):
        self.fake("groq")
        self.start_gateway({"FREERIDE_EVENTS": "0"}, groq="gsk-1")
        self.assertEqual(self.chat().status, 200)
        self.assertEqual(self.events(), [])


class FrontTest(GatewayTest):
    def test_any_client_key_or_none_is_accepted(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        for headers in ({}, {"Authorization": "Bearer any"}, {"x-api-key": "no-key-required"}):
            with self.subTest(headers=headers):
                self.assertEqual(self.call("POST", "/v1/chat/completions", body, headers).status,
                                 200)

    def test_freeride_api_key_is_required_when_set(self):
        self.fake("groq")
        self.start_gateway({"FREERIDE_API_KEY": "local-secret-key"}, groq="gsk-1")
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        for headers, status in (({}, 401), ({"Authorization": "Bearer any"}, 401),
                                ({"Authorization": "Bearer local-secret-key"}, 200),
                                ({"x-api-key": "local-secret-key"}, 200)):
            with self.subTest(headers=headers):
                response = self.call("POST", "/v1/chat/completions", body, headers)
                self.assertEqual(response.status, status)
                if status == 401:
                    self.assertEqual(response.error["type"], "authentication_error")
                    self.assertNotIn("local-secret-key", response.body.decode())
        self.assertEqual(self.call("GET", "/health").status, 200)

    def test_health(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        response = self.call("GET", "/health")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.json()["providers"], ["groq"])
        self.assertNotIn("gsk-1", response.body.decode())

    def test_unknown_paths_and_methods_get_openai_shaped_errors(self):
        self.start_gateway()
        for method, path, status in (("GET", "/api/tags", 404), ("GET", "/v1/props", 404),
                                     ("DELETE", "/v1/chat/completions", 405),
                                     ("PUT", "/health", 405)):
            with self.subTest(path=path, method=method):
                response = self.call(method, path)
                self.assertEqual(response.status, status)
                self.assertEqual(set(response.error), {"message", "type", "code", "param"})

    def test_malformed_requests_get_400_and_the_gateway_keeps_serving(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        for body, param in ((b"{not json", None), (b"[1, 2]", None), (b"\xff\xfe", None),
                            ({"messages": [{"role": "user", "content": "x"}]}, "model"),
                            ({"model": "auto"}, "messages"),
                            ({"model": "auto", "messages": "hi"}, "messages"),
                            ({"model": "auto", "messages": [{"role": "user", "content": "x"}],
                              "stream": "yes"}, "stream")):
            with self.subTest(body=body):
                response = self.call("POST", "/v1/chat/completions", body)
                self.assertEqual(response.status, 400)
                self.assertEqual(response.error["param"], param)
        self.assertEqual(self.chat().status, 200)
        self.assertEqual(len(self.fakes["groq"].requests), 1)

    def test_chat_without_v1_prefix_is_served_too(self):
        self.fake("groq")
        self.start_gateway(groq="gsk-1")
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        self.assertEqual(self.call("POST", "/chat/completions", body).status, 200)

    def test_the_upstream_gets_the_providers_model_and_the_clients_fields(self):
        groq = self.fake("groq")
        self.start_gateway(groq="gsk-1")
        self.chat("auto", temperature=0.2, max_tokens=7,
                  tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
        sent = groq.requests[0]
        self.assertEqual(sent.body["model"], GROQ_DEFAULT)
        self.assertEqual((sent.body["temperature"], sent.body["max_tokens"]), (0.2, 7))
        self.assertEqual(sent.headers["authorization"], "Bearer gsk-1")
        self.assertEqual(sent.body["tools"][0]["function"]["name"], "f")


class ConfigTest(unittest.TestCase):
    def test_bad_key_array_names_the_variable_not_the_value(self):
        with self.assertRaises(freeride.ConfigError) as caught:
            freeride.Config(env={"GROQ_API_KEY": '["gsk-secret", '})
        self.assertIn("GROQ_API_KEY", str(caught.exception))
        self.assertNotIn("gsk-secret", str(caught.exception))

    def test_a_timeout_must_be_a_finite_number_above_zero(self):
        for value, says in (("0", "greater than 0"), ("-1", "greater than 0"),
                            ("nan", "greater than 0"), ("inf", "a finite number"),
                            ("soon", "a number")):
            with self.assertRaises(freeride.ConfigError, msg=value) as caught:
                freeride.Config(env={"FREERIDE_IDLE_TIMEOUT": value})
            self.assertIn(f"FREERIDE_IDLE_TIMEOUT must be {says}", str(caught.exception))
        self.assertEqual(freeride.Config(env={"FREERIDE_IDLE_TIMEOUT": "2.5"}).idle_timeout, 2.5)

    def test_half_configured_cloudflare_is_reported_not_used(self):
        config = freeride.Config(env={"CLOUDFLARE_API_TOKEN": "cf-token", "FREERIDE_LOCAL": "0"})
        self.assertEqual(config.routes, [])
        self.assertIn(("cloudflare", "CLOUDFLARE_API_TOKEN is set but CLOUDFLARE_ACCOUNT_ID is "
                       "missing"), config.unconfigured)

    def test_cloudflare_account_fills_the_base_url(self):
        config = freeride.Config(env={"CLOUDFLARE_API_TOKEN": '["t1", "t2"]',
                                      "CLOUDFLARE_ACCOUNT_ID": '["a1", "a2"]', "FREERIDE_LOCAL": "0"})
        [route] = config.routes
        self.assertEqual([route.provider.url("/chat/completions", k.account) for k in route.keys],
                         ["https://api.cloudflare.com/client/v4/accounts/a1/ai/v1/chat/completions",
                          "https://api.cloudflare.com/client/v4/accounts/a2/ai/v1/chat/completions"])

    def test_freeride_providers_chooses_and_orders(self):
        config = freeride.Config(env={"GROQ_API_KEY": "g", "OPENROUTER_API_KEY": "o",
                                      "NVIDIA_API_KEY": "n", "FREERIDE_PROVIDERS": "groq, openrouter"})
        self.assertEqual([r.name for r in config.routes], ["groq", "openrouter"])
        with self.assertRaises(freeride.ConfigError):
            freeride.Config(env={"FREERIDE_PROVIDERS": "groq,paidai"})

    def test_hf_base_url_and_keys_are_read(self):
        config = freeride.Config(env={"HF_TOKEN": "hf_x", "HF_BASE_URL": "http://127.0.0.1:9/v1", "FREERIDE_LOCAL": "0"})
        [route] = config.routes
        self.assertEqual(route.provider.url("/chat/completions"),
                         "http://127.0.0.1:9/v1/chat/completions")


if __name__ == "__main__":
    unittest.main()
