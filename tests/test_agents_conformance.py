"""The suite every agent in agents.REGISTRY passes, and the boundary between the two sides.

For each registered agent, with its recorded user config (tests/fixtures/agents/<name>.json):
its data and its fixture are whole; bind writes where the fixture says the agent reads, after
a backup, and records what unbind restores; binding twice changes nothing; unbind restores
every file byte for byte; bind in an empty home makes files that unbind deletes, folders and
all; a dry run writes nothing; a file that does not parse is left alone and the settings are
printed to add by hand; every --scope it takes binds and unbinds, and an agent that takes none
refuses it. A failure names the agent, so adding one means: its module, its registry line and
its fixture, until this suite passes.

The gateway never imports agents/: a gateway started by `freeride serve` serves requests with
no agents module loaded.
"""
import ast
import base64
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import agents
from tests.support import ROOT, clean_env
from tests.temphome import HomeTest, closed_port

FIXTURES = ROOT / "tests" / "fixtures" / "agents"
KINDS = ("yaml", "toml", "json")


def fixture(name):
    path = FIXTURES / f"{name}.json"
    if not path.exists():
        raise AssertionError(f"no fixture for the agent {name!r}: write {path.relative_to(ROOT)}")
    return json.loads(path.read_text())


class AgentTest(HomeTest):
    """One agent's round trips in a temp home; each test runs them for every agent."""

    def each_agent(self):
        """(name, agent, fixture) for every registered agent, each in a fresh temp home."""
        for name, cls in agents.REGISTRY.items():
            with self.subTest(agent=name):
                self.setUp()  # a fresh home for each agent (cleaned up with the test)
                data = fixture(name)
                self.env.update({k: str(self.home / v) for k, v in data["env"].items()})
                yield name, cls(), data

    def write_files(self, files, mode=0o640):
        return [self.write(relative, text, mode) for relative, text in files.items()]

    def binding(self):
        return agents.Binding(f"http://127.0.0.1:{self.port}/v1", "auto", "freeride-local")


class DataTest(AgentTest):
    def test_every_agent_is_registered_under_its_name_with_its_data(self):
        for name, cls in agents.REGISTRY.items():
            with self.subTest(agent=name):
                self.assertTrue(issubclass(cls, agents.Agent), "not an agents.Agent")
                self.assertEqual(cls.name, name, "its name is not its registry key")
                self.assertRegex(name, r"^[a-z][a-z0-9-]*$")
                self.assertTrue(cls.title, "no title")
                self.assertTrue(cls.reload.endswith("."), "reload: one sentence, said as is")
                self.assertTrue(cls.use == "" or cls.use.endswith("."), "use: a sentence or ''")
                self.assertIsInstance(cls.hot_reload, bool)
                self.assertIsInstance(cls.scopes, tuple)
                self.assertTrue(not cls.scopes or cls.scopes[0] == "home",
                                "scopes: the default, home, first")
                self.assertIsInstance(cls.secret_files, tuple)
                self.assertIsNot(cls.targets, agents.Agent.targets, "no targets()")
                module = sys.modules[cls.__module__]
                self.assertTrue(module.__name__.startswith("agents."))
                self.assertIn("[D: http", module.__doc__ or "",
                              "its module's docstring gives no source for what it writes")

    def test_every_agent_has_a_fixture_and_every_fixture_an_agent(self):
        self.assertEqual(sorted(p.stem for p in FIXTURES.glob("*.json")),
                         sorted(agents.REGISTRY))
        for name in agents.REGISTRY:
            with self.subTest(agent=name):
                data = fixture(name)
                self.assertEqual(data["agent"], name)
                self.assertTrue(data["sources"], "no sources")
                self.assertTrue(data["files"], "no user config files")
                self.assertTrue(data["broken"], "no file that does not parse")
                self.assertLessEqual(set(data["broken"]), set(data["files"]))
                self.assertTrue(data["secrets"], "no secrets to keep out of the output")
                for secret in data["secrets"]:
                    self.assertTrue(any(secret in text for text in data["files"].values()),
                                    f"the secret {secret!r} is in none of the files")

    def test_targets_name_the_files_of_the_fixture_and_an_editor_for_each(self):
        for name, agent, data in self.each_agent():
            for binding in (self.binding(), None):  # None: the paths only, for unbind --scope
                targets = agent.targets(self.env, self.home, "home", binding)
                self.assertEqual([str(t.path.relative_to(self.home)) for t in targets],
                                 list(data["files"]))
                for target in targets:
                    self.assertIn(target.kind, KINDS)
                    self.assertTrue(callable(target.edit))


class RoundTripTest(AgentTest):
    def test_bind_backs_up_records_and_unbind_restores_byte_for_byte(self):
        for name, agent, data in self.each_agent():
            paths = self.write_files(data["files"])
            before = {p: p.read_bytes() for p in paths}
            result = self.run_cli("bind", name)
            self.assertEqual(result.code, 0, result)
            self.assertIn(f"undo with `freeride unbind {name}`", result.out)
            self.assertIn(("hot reload: " if agent.hot_reload else "restart needed: ")
                          + agent.reload, result.out)
            if agent.use:
                self.assertIn(agent.use, result.out)
            for secret in data["secrets"]:
                self.assertNotIn(secret, result.out + result.err)
            records = json.loads((self.home / ".freeride" / "bind" / f"{name}.json").read_text())
            self.assertEqual(records["agent"], name)
            rows = {row["path"]: row for row in records["files"]}
            for path in paths:
                self.assertNotEqual(path.read_bytes(), before[path], f"{path.name} not bound")
                self.assertEqual(path.stat().st_mode & 0o777, 0o640)
                [backup] = self.backups(path)
                self.assertEqual((backup.read_bytes(), backup.stat().st_mode & 0o777),
                                 (before[path], 0o640))
                row = rows[str(path)]
                self.assertTrue(row["existed"])
                self.assertEqual(base64.b64decode(row["content"]), before[path])
            bound = self.snapshot()
            again = self.run_cli("bind", name)
            self.assertEqual(again.code, 0, again)
            self.assertIn("nothing changed", again.out)
            self.assertEqual(self.snapshot(), bound)
            result = self.run_cli("unbind", name)
            self.assertEqual(result.code, 0, result)
            self.assertIn("restart needed: " if not agent.hot_reload else "hot reload: ",
                          result.out)
            for path in paths:
                self.assertEqual((path.read_bytes(), path.stat().st_mode & 0o777),
                                 (before[path], 0o640))
                self.assertEqual(len(self.backups(path)), 2, "unbind backs up the bound file")
            self.assertFalse((self.home / ".freeride" / "bind" / f"{name}.json").exists())

    def test_bind_in_an_empty_home_makes_files_that_unbind_deletes_with_their_folders(self):
        for name, agent, data in self.each_agent():
            result = self.run_cli("bind", name)
            self.assertEqual(result.code, 0, result)
            for relative in data["files"]:
                path = self.home / relative
                self.assertEqual(path.stat().st_mode & 0o777, 0o600, relative)
                self.assertEqual(self.backups(path), [])
            self.assertEqual(self.run_cli("unbind", name).code, 0)
            left = [p for p in self.home.rglob("*") if ".freeride" not in p.parts]
            self.assertEqual(left, [], "unbind leaves what bind made")

    def test_a_dry_run_prints_the_diff_and_writes_nothing(self):
        for name, agent, data in self.each_agent():
            self.write_files(data["files"])
            before = self.snapshot()
            result = self.run_cli("bind", name, "--dry-run")
            self.assertEqual(result.code, 0, result)
            self.assertIn("+++ ", result.out)
            self.assertIn("(dry run: nothing was written)", result.out)
            for secret in data["secrets"]:
                self.assertNotIn(secret, result.out + result.err)
            self.assertEqual(self.snapshot(), before)
            self.assertEqual(self.run_cli("bind", name).code, 0)
            bound = self.snapshot()
            result = self.run_cli("unbind", name, "--dry-run")
            self.assertEqual(result.code, 0, result)
            self.assertIn("--- ", result.out)
            self.assertEqual(self.snapshot(), bound)

    def test_a_file_that_does_not_parse_is_left_alone_and_the_settings_are_printed(self):
        for name, agent, data in self.each_agent():
            self.write_files({**data["files"], **data["broken"]})
            before = self.snapshot()
            result = self.run_cli("bind", name)
            self.assertEqual(result.code, 1, result)
            self.assertIn(Path(next(iter(data["broken"]))).name, result.err)
            self.assertIn("Nothing was changed", result.err)
            for relative in data["files"]:
                self.assertIn(f"To set it up by hand, put this in {Path(relative).name}:",
                              result.err)
            for secret in data["secrets"]:
                self.assertNotIn(secret, result.out + result.err)
            self.assertEqual(self.snapshot(), before)


class ScopeTest(AgentTest):
    def test_every_scope_an_agent_takes_binds_and_unbinds_and_the_others_refuse_it(self):
        for name, agent, data in self.each_agent():
            repo = self.home / "work" / "repo"
            (repo / ".git").mkdir(parents=True)
            self.cwd = repo / "src"
            self.cwd.mkdir()
            if not agent.scopes:
                result = self.run_cli("bind", name, "--scope", "cwd")
                self.assertEqual(result.code, 2, result)
                self.assertIn("--scope is for", result.err)
                self.assertEqual(self.run_cli("unbind", name, "--scope", "cwd").code, 2)
                continue
            before = self.snapshot()
            for scope in agent.scopes:
                result = self.run_cli("bind", name, "--scope", scope)
                self.assertEqual(result.code, 0, f"--scope {scope}: {result}")
                self.assertNotEqual(self.snapshot(), before, f"--scope {scope} wrote nothing")
                self.assertEqual(self.run_cli("unbind", name, "--scope", scope).code, 0)
                self.assertEqual(self.snapshot(), before, f"--scope {scope} not undone")


SERVE_AND_LOOK = r"""
import json, os, signal, sys, threading, urllib.request
import freeride

def client(port):
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/health", timeout=5).read()
            break
        except OSError:
            threading.Event().wait(0.05)
    statuses = []
    for path, body in (("/v1/models", None),
                       ("/v1/chat/completions", {"model": "auto", "messages": [
                           {"role": "user", "content": "hi"}]}),
                       ("/v1/chat/completions", {"model": "auto", "stream": True, "messages": [
                           {"role": "user", "content": "hi"}]})):
        request = urllib.request.Request(base + path, json.dumps(body).encode() if body else None,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            statuses.append(response.status)
    loaded = sorted(m for m in sys.modules if m == "agents" or m.startswith("agents."))
    print(json.dumps({"statuses": statuses, "agents": loaded}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=client, args=(sys.argv[1],), daemon=True).start()
sys.exit(freeride.main(["serve", "--demo", "--port", sys.argv[1]]))
"""


class BoundaryTest(unittest.TestCase):
    def test_a_gateway_serves_requests_without_importing_agents(self):
        home = tempfile.TemporaryDirectory(prefix="freeride-boundary-")
        self.addCleanup(home.cleanup)
        result = subprocess.run([sys.executable, "-c", SERVE_AND_LOOK, str(closed_port())],
                                cwd=ROOT, env=clean_env(FREERIDE_HOME=home.name),
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(report["statuses"], [200, 200, 200], "the gateway did not serve")
        self.assertEqual(report["agents"], [], "the gateway imported agents/")

    def test_freeride_py_imports_agents_only_inside_functions(self):
        tree = ast.parse((ROOT / "freeride.py").read_text())
        for node in tree.body:  # module level: no import of agents, in any form
            for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef,
                                                                ast.ClassDef)) else ():
                if isinstance(sub, ast.Import):
                    self.assertNotIn("agents", [a.name.split(".")[0] for a in sub.names])
                if isinstance(sub, ast.ImportFrom):
                    self.assertNotEqual((sub.module or "").split(".")[0], "agents")

    def test_providers_never_import_agents(self):
        for path in (ROOT / "providers").glob("*.py"):
            self.assertNotIn("import agents", path.read_text(), path.name)
            self.assertNotIn("from agents", path.read_text(), path.name)


if __name__ == "__main__":
    unittest.main()
