"""The OpenClaw (v2) commands: `freeride auto` picks the primary model and fallbacks,
`freeride rotate` swaps a failing primary for the first fallback that answers, and the
watcher does that in a loop until SIGINT or SIGTERM. Every model answer comes from a fake
provider on loopback."""
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import unittest
from unittest import mock

import freeride
from tests import fakes
from tests.support import ROOT, clean_env
from tests.temphome import HomeTest

CONFIG = ".openclaw/openclaw.json"
WATCH_SECONDS = 20  # the longest a watcher test waits for the line it expects


def unavailable(message="no capacity"):
    return fakes.Reply(503, body={"error": {"message": message, "code": 503}})


class OpenClawHome(HomeTest):
    def setUp(self):
        super().setUp()
        self.upstream = fakes.FakeUpstream("openrouter").start()
        self.addCleanup(self.upstream.close)

    def write_config(self, doc, mode=0o600):
        return self.write(CONFIG, json.dumps(doc, indent=2) + "\n", mode)

    def config(self):
        return json.loads((self.home / CONFIG).read_text())

    def bound(self, primary="freeride/auto", fallbacks=(), **extra):
        """An OpenClaw config bound to a 'gateway' that is the fake upstream."""
        return {"models": {"mode": "merge", "providers": {"freeride": {
            "baseUrl": self.upstream.url, "apiKey": "freeride-local", "api": "openai-completions",
            "models": [{"id": "auto"}]}}},
            "agents": {"defaults": {"model": {"primary": primary, "fallbacks": list(fallbacks)},
                                    **extra}}}

    def model_setting(self):
        return self.config()["agents"]["defaults"]["model"]


class AutoTest(OpenClawHome):
    def openrouter_env(self):
        return {"OPENROUTER_API_KEY": "sk-or-v1-test", "OPENROUTER_BASE_URL": self.upstream.url}

    def test_without_the_gateway_it_picks_openrouters_best_free_models(self):
        self.write_config({"agents": {"defaults": {"workspace": "~/w", "models": {"a/b": {}}}}})
        self.upstream.on(fakes.models_ok("openrouter", [
            {"id": "small/tools:free", "context_length": 32768},
            {"id": "big/tools:free", "context_length": 262144},
            {"id": "huge/no-tools:free", "context_length": 1000000,
             "supported_parameters": ["max_tokens"]},
            {"id": "paid/model", "context_length": 2000000},
            {"id": "zero/priced", "context_length": 65536,
             "pricing": {"prompt": "0", "completion": "0"}},
            {"id": "image/maker:free", "architecture": {"output_modalities": ["image"]}},
        ]), path="/models")
        result = self.run_cli("auto", "--count", "3", **self.openrouter_env())
        self.assertEqual(result.code, 0, result)
        self.assertEqual(self.model_setting(), {
            "primary": "openrouter/big/tools:free",
            "fallbacks": ["openrouter/zero/priced", "openrouter/small/tools:free",
                          "openrouter/huge/no-tools:free"]})
        defaults = self.config()["agents"]["defaults"]
        self.assertEqual(defaults["workspace"], "~/w")
        self.assertEqual(list(defaults["models"]), ["a/b", "openrouter/big/tools:free",
                                                    "openrouter/zero/priced",
                                                    "openrouter/small/tools:free",
                                                    "openrouter/huge/no-tools:free"])
        [request] = self.upstream.requests
        self.assertEqual((request.method, request.key), ("GET", "sk-or-v1-test"))
        self.assertEqual(len(self.backups(self.home / CONFIG)), 1)
        self.assertIn("restart needed", result.out)

    def test_when_the_gateway_is_bound_the_models_go_through_it(self):
        self.write_config(self.bound())
        result = self.run_cli("auto", "--count", "3")
        self.assertEqual(result.code, 0, result)
        fallbacks = freeride.gateway_fallbacks("auto", 3)
        self.assertEqual(len(fallbacks), 3)
        self.assertEqual(self.model_setting(), {
            "primary": "freeride/auto", "fallbacks": [f"freeride/{f}" for f in fallbacks]})
        models = self.config()["models"]["providers"]["freeride"]["models"]
        self.assertEqual([m["id"] for m in models], ["auto", *fallbacks])
        self.assertEqual(self.upstream.requests, [])
        self.assertIn("through the FreeRide gateway", result.out)

    def test_gateway_fallbacks_are_tool_capable_families_served_most_widely(self):
        fallbacks = freeride.gateway_fallbacks("auto", 20)
        routes = freeride.all_routes()
        served = [len({r.name for r, _ in freeride.resolve(routes, f, tools=True)})
                  for f in fallbacks]
        self.assertTrue(all(served), "each is served with tools somewhere")
        self.assertEqual(served, sorted(served, reverse=True), "most providers first")
        untooled = [f for f in freeride.FAMILIES if not freeride.resolve(routes, f, tools=True)]
        self.assertEqual(sorted(fallbacks + untooled), sorted(freeride.FAMILIES))
        self.assertNotIn(fallbacks[0], freeride.gateway_fallbacks(fallbacks[0], 20))

    def test_without_the_gateway_or_an_openrouter_key_it_says_what_to_do(self):
        self.write_config({"gateway": {"port": 1}})
        before = self.snapshot()
        result = self.run_cli("auto")
        self.assertEqual(result.code, 2)
        self.assertIn("freeride bind openclaw", result.err)
        self.assertIn("OPENROUTER_API_KEY", result.err)
        self.assertEqual(self.snapshot(), before)

    def test_an_openrouter_error_changes_nothing(self):
        self.write_config({})
        self.upstream.on(fakes.error("openrouter", "auth_invalid"), path="/models")
        before = self.snapshot()
        result = self.run_cli("auto", **self.openrouter_env())
        self.assertEqual(result.code, 1)
        self.assertIn("HTTP 401: User not found.", result.err)
        self.assertNotIn("sk-or-v1-test", result.err)
        self.assertEqual(self.snapshot(), before)

    def test_dry_run_and_a_missing_or_commented_config_write_nothing(self):
        self.assertEqual(self.run_cli("auto").code, 1)
        self.assertFalse((self.home / CONFIG).exists())
        self.write_config(self.bound())
        before = self.snapshot()
        result = self.run_cli("auto", "--dry-run")
        self.assertIn("+++ ", result.out)
        self.assertEqual(self.snapshot(), before)
        self.write(CONFIG, '{\n  // mine\n  "agents": {}\n}\n')
        before = self.snapshot()
        self.assertEqual(self.run_cli("auto").code, 1)
        self.assertEqual(self.snapshot(), before)


class RotateTest(OpenClawHome):
    def test_a_working_primary_is_kept(self):
        self.write_config(self.bound(fallbacks=["freeride/gpt-oss-120b"]))
        before = self.snapshot()
        result = self.run_cli("rotate")
        self.assertEqual(result.code, 0, result)
        self.assertIn("primary freeride/auto answers", result.out)
        self.assertEqual(self.snapshot(), before)
        [request] = self.upstream.requests
        self.assertEqual((request.model, request.key), ("auto", "freeride-local"))
        self.assertLessEqual(request.body["max_tokens"], 16)

    def test_a_failing_primary_is_swapped_for_the_first_fallback_that_answers(self):
        self.write_config(self.bound(fallbacks=["freeride/gpt-oss-120b", "freeride/llama-3.3-70b",
                                                "freeride/deepseek"]), mode=0o640)
        self.upstream.on(unavailable(), model="auto", times=None)
        self.upstream.on(fakes.error("openrouter", "rate_minute"), model="gpt-oss-120b", times=None)
        result = self.run_cli("rotate")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(self.model_setting(), {
            "primary": "freeride/llama-3.3-70b",
            "fallbacks": ["freeride/gpt-oss-120b", "freeride/deepseek", "freeride/auto"]})
        self.assertEqual([r.model for r in self.upstream.requests],
                         ["auto", "gpt-oss-120b", "llama-3.3-70b"])
        self.assertIn("HTTP 503: no capacity", result.out)
        self.assertEqual(len(self.backups(self.home / CONFIG)), 1)
        self.assertEqual((self.home / CONFIG).stat().st_mode & 0o777, 0o640)

    def test_when_nothing_answers_nothing_changes(self):
        self.write_config(self.bound(fallbacks=["freeride/deepseek"]))
        self.upstream.default(unavailable())
        before = self.snapshot()
        result = self.run_cli("rotate")
        self.assertEqual(result.code, 1)
        self.assertIn("no fallback answered", result.out)
        self.assertEqual(self.snapshot(), before)

    def test_openrouter_refs_are_tested_with_the_openrouter_key(self):
        self.write_config({"agents": {"defaults": {"model": {
            "primary": "openrouter/a:free",
            "fallbacks": ["anthropic/claude", "openrouter/b:free"]}}}})
        self.upstream.on(unavailable(), model="a:free")
        result = self.run_cli("rotate", OPENROUTER_API_KEY="sk-or-v1-test",
                              OPENROUTER_BASE_URL=self.upstream.url)
        self.assertEqual(result.code, 0, result)
        self.assertEqual(self.model_setting()["primary"], "openrouter/b:free")
        self.assertIn("fallback anthropic/claude failed: FreeRide tests only", result.out)
        self.assertEqual({r.key for r in self.upstream.requests}, {"sk-or-v1-test"})

    def test_a_primary_it_cannot_test_is_left_alone(self):
        self.write_config({"agents": {"defaults": {"model": "anthropic/claude"}}})
        result = self.run_cli("rotate")
        self.assertEqual(result.code, 2)
        self.assertIn("cannot test the primary model anthropic/claude", result.out)
        self.write_config({"agents": {}})
        self.assertIn("run `freeride auto` first", self.run_cli("rotate").out)

    def test_dry_run_shows_the_swap_and_writes_nothing(self):
        self.write_config(self.bound(fallbacks=["freeride/deepseek"]))
        self.upstream.on(unavailable(), model="auto")
        before = self.snapshot()
        result = self.run_cli("rotate", "--dry-run")
        self.assertIn('+        "primary": "freeride/deepseek"', result.out)
        self.assertIn("primary would become freeride/deepseek", result.out)
        self.assertEqual(self.snapshot(), before)


class WatcherTest(OpenClawHome):
    def test_once_is_one_rotation(self):
        self.write_config(self.bound(fallbacks=["freeride/deepseek"]))
        self.upstream.on(unavailable(), model="auto")
        result = self.run_cli("watcher", "--once")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(self.model_setting()["primary"], "freeride/deepseek")
        self.assertEqual(len(self.upstream.requests), 2)

    def test_the_console_script_entry_point_runs_the_watcher(self):
        self.write_config(self.bound())
        self.upstream.default(unavailable())
        out = io.StringIO()
        with mock.patch.dict(os.environ, self.env, clear=True), contextlib.redirect_stdout(out):
            code = freeride.watcher_main(["--once", "--timeout", "5"])
        self.assertEqual(code, 1)
        self.assertIn("no fallback answered", out.getvalue())
        self.assertEqual(len(self.upstream.requests), 1)

    def watch(self, stop_signal, config=None, interval="3600",
              until="primary freeride/auto answers; nothing changed"):
        """Run the watcher until a line holding `until`, then send it stop_signal; (exit code,
        stdout, stderr). A watcher that never prints that line fails the test within
        WATCH_SECONDS instead of hanging it."""
        self.write_config(config or self.bound())
        env = clean_env(**{k: v for k, v in self.env.items() if k != "PATH"})
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys, freeride; sys.exit(freeride.watcher_main())",
             "--interval", interval], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

        def stop():
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)  # also closes the pipes
        self.addCleanup(stop)
        deadline = threading.Timer(WATCH_SECONDS, process.kill)  # ends the read loop below
        deadline.start()
        lines = []
        try:
            for line in process.stdout:
                lines.append(line)
                if until in line:
                    break
            else:
                self.fail(f"the watcher never printed {until!r} within {WATCH_SECONDS} s; "
                          f"it printed:\n{''.join(lines)}")
        finally:
            deadline.cancel()
            deadline.join()
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
        return process.returncode, "".join(lines) + out, err

    def test_sigterm_stops_the_loop_cleanly(self):
        code, out, err = self.watch(signal.SIGTERM)
        self.assertEqual(code, 0, err)
        self.assertIn("primary freeride/auto answers", out)
        self.assertTrue(out.rstrip().endswith("freeride watcher: stopped"))
        self.assertNotIn("Traceback", err)

    def test_sigint_stops_the_loop_cleanly(self):
        code, out, err = self.watch(signal.SIGINT)
        self.assertEqual(code, 0, err)
        self.assertNotIn("KeyboardInterrupt", err)
        self.assertEqual(len(self.upstream.requests), 1)

    def test_it_tests_again_every_interval_and_sigterm_still_stops_it(self):
        self.upstream.on(unavailable(), model="auto")  # only the first pass's probe fails
        code, out, err = self.watch(signal.SIGTERM, self.bound(fallbacks=["freeride/deepseek"]),
                                    interval="0.2", until="primary freeride/deepseek answers")
        self.assertEqual(code, 0, err)
        self.assertNotIn("Traceback", err)
        passes = re.findall(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] primary (\S+) (\w+)", out, re.M)
        self.assertGreaterEqual(len(passes), 2, out)
        self.assertEqual(passes[:2], [("freeride/auto", "failed"), ("freeride/deepseek", "answers")])
        self.assertIn("primary is now freeride/deepseek", out)
        self.assertTrue(out.rstrip().endswith("freeride watcher: stopped"))
        self.assertEqual([r.model for r in self.upstream.requests][:3], ["auto", "deepseek", "deepseek"])
        self.assertEqual(self.model_setting()["primary"], "freeride/deepseek")
        self.assertEqual(len(self.backups(self.home / CONFIG)), 1, "only the first pass wrote")


if __name__ == "__main__":
    unittest.main()
