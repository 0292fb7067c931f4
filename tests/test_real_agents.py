"""Opt-in: a real agent, bound with `freeride bind`, answers through a real gateway in front of
a fake provider on loopback (no network beyond it).

Runs only with FREERIDE_AGENT_TESTS=1, and then needs the agent on PATH; the tests install
nothing. Today: Simon Willison's llm (`pip install llm`), the one agent that installs from a
package registry quickly and runs offline against a loopback base URL.
"""
import os
import shutil
import subprocess
import unittest

import freeride
from tests import fakes
from tests.temphome import HomeTest

if os.environ.get("FREERIDE_AGENT_TESTS") == "1":

    class RealLlmTest(HomeTest):
        def setUp(self):
            super().setUp()
            self.llm = shutil.which("llm")
            if self.llm is None:
                self.fail("FREERIDE_AGENT_TESTS=1 needs llm on PATH (pip install llm); the "
                          "tests install nothing")
            self.upstream = fakes.FakeUpstream("groq").start()
            self.addCleanup(self.upstream.close)
            config = freeride.Config(env={
                "FREERIDE_HOME": str(self.home / "gateway"), "GROQ_API_KEY": "gsk-test",
                "GROQ_BASE_URL": self.upstream.url, "FREERIDE_PROVIDERS": "groq",
                "FREERIDE_API_KEY": "gateway-key-123"}, port=0)
            self.gateway = freeride.Gateway(config).start()
            self.addCleanup(self.gateway.close)
            self.env["LLM_USER_PATH"] = str(self.home / "llm")

        def llm_prompt(self, *args):
            env = {"HOME": str(self.home), "LLM_USER_PATH": self.env["LLM_USER_PATH"],
                   "PATH": os.environ.get("PATH", "")}
            return subprocess.run([self.llm, *args], env=env, capture_output=True, text=True,
                                  timeout=120)

        def test_llm_answers_through_the_gateway_once_bound_and_forgets_it_once_unbound(self):
            result = self.run_cli("bind", "llm", "--gateway-url", self.gateway.url + "/v1",
                                  FREERIDE_API_KEY="gateway-key-123")
            self.assertEqual(result.code, 0, result)
            answer = self.llm_prompt("-m", "freeride", "say hello")
            self.assertEqual((answer.returncode, answer.stdout.strip()), (0, "Hello"),
                             answer.stderr)
            [request] = [r for r in self.upstream.requests if r.path.endswith("/completions")]
            self.assertEqual((request.model, request.key), ("llama-3.3-70b-versatile", "gsk-test"))
            self.assertEqual(self.run_cli("unbind", "llm").code, 0)
            answer = self.llm_prompt("-m", "freeride", "say hello")
            self.assertNotEqual(answer.returncode, 0)
            self.assertIn("freeride", answer.stderr)


if __name__ == "__main__":
    unittest.main()
