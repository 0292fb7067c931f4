"""`freeride run <agent>` (issue 20): the agent runs with the environment that points it at
the gateway, no file changes, a gateway is started for its lifetime when none answers, and the
agent owns the terminal (its arguments, its exit status, Ctrl-C and SIGTERM).

A stand-in agent (a small script named claude, codex, aider, llm or mytool on PATH) writes
what it got to a file, asks the gateway's /health, and exits with a chosen status or sleeps
until signalled."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

from tests.support import ROOT, GatewayTest, clean_env

STAND_IN = textwrap.dedent('''\
    #!{python}
    import json, os, signal, sys, time, urllib.request
    out = os.environ["STANDIN_OUT"]
    def health():
        url = (os.environ.get("ANTHROPIC_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
               or "").removesuffix("/v1")
        try:
            return json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())["status"]
        except Exception as e:
            return repr(e)
    def write(**extra):
        with open(out, "w") as f:
            json.dump(dict(argv=sys.argv[1:], env={{k: v for k, v in os.environ.items()
                      if k.startswith(("ANTHROPIC_", "OPENAI_"))}}, health=health(), **extra), f)
    def caught(number, frame):
        write(signal=number)
        sys.exit(128 + number)
    signal.signal(signal.SIGTERM, caught)
    signal.signal(signal.SIGINT, caught)
    write()
    if os.environ.get("STANDIN_SLEEP"):
        time.sleep(30)
    sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
''')


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Run(GatewayTest):
    def setUp(self):
        super().setUp()
        self.bin = Path(tempfile.mkdtemp(prefix="freeride-bin-"))
        self.addCleanup(shutil.rmtree, self.bin, True)
        for name in ("claude", "codex", "aider", "llm", "mytool"):
            path = self.bin / name
            path.write_text(STAND_IN.format(python=sys.executable))
            path.chmod(0o755)
        self.out = self.bin / "out.json"
        self.port = free_port()
        self.env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT=str(self.port),
                             HOME=str(self.home), STANDIN_OUT=str(self.out),
                             PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")

    def run_agent(self, *argv, **env):
        return subprocess.run([sys.executable, "-m", "freeride", "run", *argv], cwd=ROOT,
                              env={**self.env, **env}, capture_output=True, text=True, timeout=60)

    def seen(self):
        return json.loads(self.out.read_text())

    def answers(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def test_it_starts_a_gateway_for_the_agents_lifetime_and_stops_it_after(self):
        result = self.run_agent("claude", "-p", "hello world")
        self.assertEqual(result.returncode, 0, result.stderr)
        seen = self.seen()
        self.assertEqual(seen["health"], "ok", "a gateway answered while the agent ran")
        self.assertEqual(seen["argv"], ["-p", "hello world"])
        self.assertEqual(seen["env"]["ANTHROPIC_BASE_URL"], f"http://127.0.0.1:{self.port}")
        self.assertEqual(seen["env"]["ANTHROPIC_AUTH_TOKEN"], "freeride-local")
        self.assertFalse(self.answers(self.port), "and was stopped when the agent exited")
        self.assertIn(f"claude through http://127.0.0.1:{self.port}", result.stderr)
        self.assertTrue((self.home / "serve.log").exists(), "its output went to a log")
        self.assertEqual(sorted(p.name for p in self.home.iterdir() if p.suffix == ".json"
                                and p.name.startswith("settings")), [], "no file changed")

    def test_a_running_gateway_is_used_and_left_running(self):
        gateway = self.start_gateway({"FREERIDE_API_KEY": "local-secret"})
        result = self.run_agent("aider", "--yes", FREERIDE_PORT=str(gateway.port),
                                FREERIDE_API_KEY="local-secret")
        self.assertEqual(result.returncode, 0, result.stderr)
        seen = self.seen()
        self.assertEqual(seen["argv"], ["--model", "openai/auto", "--yes"])
        for var in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
            self.assertEqual(seen["env"][var], f"http://127.0.0.1:{gateway.port}/v1")
        self.assertEqual(seen["env"]["OPENAI_API_KEY"], "local-secret")
        self.assertTrue(self.answers(gateway.port))

    def test_each_agent_gets_its_variables(self):
        for agent in ("codex", "llm"):
            with self.subTest(agent=agent):
                self.assertEqual(self.run_agent("--quiet", agent).returncode, 0)
                seen = self.seen()
                self.assertEqual(seen["env"]["OPENAI_API_KEY"], "freeride-local")
                if agent == "codex":
                    self.assertIn('model_provider="freeride"', seen["argv"])
                    self.assertTrue(any(f'base_url="http://127.0.0.1:{self.port}/v1"' in a
                                        for a in seen["argv"]))
                else:
                    self.assertEqual(seen["env"]["OPENAI_BASE_URL"],
                                     f"http://127.0.0.1:{self.port}/v1")

    def test_any_command_after_two_dashes_gets_the_openai_variables_and_its_arguments(self):
        result = self.run_agent("--quiet", "--", "mytool", "--flag", "x y")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "", "nothing of FreeRide's is printed with --quiet")
        seen = self.seen()
        self.assertEqual(seen["argv"], ["--flag", "x y"])
        self.assertEqual(seen["env"]["OPENAI_API_BASE"], f"http://127.0.0.1:{self.port}/v1")

    def test_the_agents_exit_status_is_runs(self):
        self.assertEqual(self.run_agent("claude", STANDIN_EXIT="7").returncode, 7)

    def test_sigterm_and_ctrl_c_reach_the_agent(self):
        for sig, how in ((signal.SIGTERM, "to run"), (signal.SIGINT, "to the terminal's group")):
            with self.subTest(signal=sig.name):
                self.out.unlink(missing_ok=True)
                process = subprocess.Popen(
                    [sys.executable, "-m", "freeride", "run", "--quiet", "claude"], cwd=ROOT,
                    env={**self.env, "STANDIN_SLEEP": "1"}, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.addCleanup(lambda p=process: p.poll() is None and p.kill())
                for _ in range(300):  # the agent is up once it wrote its file
                    if self.out.exists():
                        break
                    time.sleep(0.05)
                if sig == signal.SIGTERM:
                    process.send_signal(sig)
                else:  # Ctrl-C: the terminal signals the whole foreground group
                    os.killpg(process.pid, sig)
                self.assertEqual(process.wait(30), 128 + sig)
                self.assertEqual(self.seen()["signal"], sig)

    def test_an_agent_that_is_not_installed_is_127_with_how_to_install_it(self):
        (self.bin / "codex").unlink()
        result = self.run_agent("codex", PATH=str(self.bin))
        self.assertEqual(result.returncode, 127)
        self.assertIn("npm install -g @openai/codex", result.stderr)


if __name__ == "__main__":
    unittest.main()
