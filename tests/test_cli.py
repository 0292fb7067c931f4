"""`freeride serve` as a user runs it: a real process, its start-up lines, a busy port, the
offline demo, and a clean stop on SIGTERM."""
import argparse
import contextlib
import http.client
import io
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import freeride
from tests.support import ROOT, clean_env, run_cli


class ServeProcess:
    """`python -m freeride serve ...` on a free port, until its export lines are printed.

    `command` and `cwd` run another build of FreeRide instead (the single-file pyz).
    """

    def __init__(self, *args, env, command=(sys.executable, "-m", "freeride"), cwd=ROOT):
        self.process = subprocess.Popen(
            [*command, "serve", "--port", "0", *args], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if "OPENAI_API_KEY=any" in line:
                break
        url = next(re.search(r"OPENAI_API_BASE=(\S+)", l).group(1) for l in self.lines
                   if "OPENAI_API_BASE=" in l)
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])

    def post(self, path, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, dict(response.headers), response.read()
        finally:
            conn.close()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
        return self.process.returncode, out, err


class ServeTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.TemporaryDirectory(prefix="freeride-cli-")
        self.addCleanup(self.home.cleanup)
        self.env = clean_env(FREERIDE_HOME=self.home.name)

    def serve(self, *args, **env):
        server = ServeProcess(*args, env={**self.env, **env})
        self.addCleanup(lambda: server.process.poll() is None and server.stop())
        return server

    def test_start_up_prints_providers_and_the_lines_to_export(self):
        server = self.serve(GROQ_API_KEY='["gsk-a", "gsk-b"]', NVIDIA_API_KEY="nv-a")
        text = "\n".join(server.lines)
        self.assertIn(f"listening on http://127.0.0.1:{server.port}", text)
        self.assertIn("providers: groq (2 keys), nvidia", text)
        self.assertIn(f"OPENAI_API_BASE=http://127.0.0.1:{server.port}/v1", text)
        self.assertIn(f"OPENAI_BASE_URL=http://127.0.0.1:{server.port}/v1", text)  # openai SDK
        self.assertIn("OPENAI_API_KEY=any", text)
        self.assertNotIn("gsk-a", text)
        code, out, err = server.stop()
        self.assertEqual(code, 0)
        self.assertNotIn("Traceback", err)

    def test_without_any_key_it_starts_says_what_to_set_and_answers_503(self):
        server = self.serve()
        text = "\n".join(server.lines)
        for var in ("OPENROUTER_API_KEY", "GROQ_API_KEY", "NVIDIA_API_KEY", "CLOUDFLARE_API_TOKEN",
                    "CLOUDFLARE_ACCOUNT_ID", "HF_TOKEN"):
            self.assertIn(var, text)
        status, _, body = server.post("/v1/chat/completions",
                                      {"model": "auto", "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(status, 503)
        self.assertIn("GROQ_API_KEY", json.loads(body)["error"]["message"])

    def test_a_busy_port_is_a_one_line_error_and_exit_code(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run_cli("serve", "--port", str(port), env=self.env)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_a_non_loopback_address_needs_freeride_api_key(self):
        result = run_cli("serve", "--host", "0.0.0.0", "--port", "0", env=self.env)
        self.assertEqual(result.returncode, 2)
        self.assertIn("FREERIDE_API_KEY", result.stderr)

    def test_port_and_host_come_from_the_environment(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-m", "freeride", "serve"], cwd=ROOT,
                                   env={**self.env, "FREERIDE_PORT": str(port),
                                        "FREERIDE_HOST": "127.0.0.1"},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = process.stdout.readline()
            self.assertIn(f"http://127.0.0.1:{port}", first)
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
        self.assertEqual(process.returncode, 0)

    def test_demo_shows_failover_offline_with_a_labelled_echo(self):
        server = self.serve("--demo")
        self.assertIn("demo", "\n".join(server.lines))
        status, headers, body = server.post(
            "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "ping"}]})
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-FreeRide-Provider"], "demo")
        content = json.loads(body)["choices"][0]["message"]["content"]
        self.assertIn("demo", content.lower())
        self.assertIn("ping", content)
        server.stop()
        events = [json.loads(l) for l in (Path(self.home.name) / "events.jsonl").read_text().splitlines()]
        results = [(e["key"], e["ok"], e.get("class")) for e in events if e["event"] == "result"]
        self.assertEqual(results, [(0, False, "RATE_LIMIT"), (1, True, None)])

    def test_sigterm_flushes_cooldowns_and_exits_zero(self):
        server = self.serve("--demo")
        server.post("/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": "x"}]})
        code, _, err = server.stop()
        self.assertEqual(code, 0)
        doc = json.loads((Path(self.home.name) / "cooldown.json").read_text())
        self.assertEqual([c["class"] for c in doc["cooldowns"]], ["RATE_LIMIT"])


def subcommands(parser, path=()):
    """Every command path of an argparse parser (("serve",), ...), read from its subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield path + (name,)
                yield from subcommands(command, path + (name,))


class CommandLineTest(unittest.TestCase):
    def test_every_subcommand_answers_help_with_a_usage_line(self):
        commands = list(subcommands(freeride.build_parser()))
        self.assertIn(("serve",), commands)
        self.assertIn(("doctor",), commands)
        for command in commands:
            with self.subTest(command=" ".join(command)):
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                        self.assertRaises(SystemExit) as exited:
                    freeride.main([*command, "--help"])
                self.assertEqual(exited.exception.code, 0, err.getvalue())
                self.assertTrue(out.getvalue().startswith(f"usage: freeride {' '.join(command)}"),
                                out.getvalue())
                self.assertIn("-h, --help", out.getvalue())

    def test_version_and_help(self):
        result = run_cli("--version")
        self.assertEqual(result.stdout.strip(), f"freeride {freeride.__version__}")
        result = run_cli("serve", "--help")
        self.assertEqual(result.returncode, 0)
        for flag in ("--host", "--port", "--demo"):
            self.assertIn(flag, result.stdout)

    def test_help_says_what_pack_carries_and_how_long_list_caches(self):
        pack = " ".join(run_cli("pack", "--help").stdout.split())
        folders = {name.split("/")[0] + "/" for name in freeride.pyz_sources() if "/" in name}
        self.assertEqual(folders, {"providers/", "agents/", "dashboard/"})
        for folder in folders:
            self.assertIn(folder, pack)
        listing = " ".join(run_cli("list", "--help").stdout.split())
        self.assertIn("FREERIDE_CATALOG_TTL, 4 hours by default", listing)
        self.assertEqual(freeride.Config(env={}).catalog_ttl, 4 * 3600)

    def test_a_bad_setting_is_a_one_line_error(self):
        result = run_cli("serve", env=clean_env(GROQ_API_KEY='["unterminated'))
        self.assertEqual(result.returncode, 2)
        self.assertIn("GROQ_API_KEY", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_no_command_prints_help_and_returns_2(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(freeride.main([]), 2)
        self.assertIn("serve", out.getvalue())


class PackagingTest(unittest.TestCase):
    def test_pyproject_version_matches_and_declares_no_dependencies(self):
        text = (ROOT / "pyproject.toml").read_text()
        self.assertIn(f'version = "{freeride.__version__}"', text)
        self.assertIn("dependencies = []", text)
        self.assertIn('freeride = "freeride:main"', text)
        self.assertIn('freeride-watcher = "freeride:watcher_main"', text)
        self.assertIn("requires = []", text)  # nothing to download to build it

    def test_every_import_is_standard_library_or_our_own(self):
        import ast
        own = {"freeride", "providers", "agents", "tests", "build_backend"}
        for path in [ROOT / "freeride.py", ROOT / "build_backend.py", *ROOT.glob("providers/*.py"),
                     *ROOT.glob("agents/*.py"), *ROOT.glob("tests/*.py")]:
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                for name in names:
                    root = name.split(".")[0]
                    self.assertTrue(root in sys.stdlib_module_names or root in own,
                                    f"{path.name} imports {name}")


if __name__ == "__main__":
    unittest.main()
