"""`freeride pack`: one executable file that runs on a bare Python 3.10, the same bytes every
time, and a copy that behaves exactly like `python -m freeride`."""
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import unittest
import zipfile
from pathlib import Path

import freeride
import providers
from tests.support import ROOT, clean_env, python310, run_cli
from tests.test_cli import ServeProcess

PROVIDER_FILES = sorted(f"providers/{p.name}" for p in (ROOT / "providers").glob("*.py"))
AGENT_FILES = sorted(f"agents/{p.name}" for p in (ROOT / "agents").glob("*.py"))
DASHBOARD_FILES = sorted(f"dashboard/{name}" for name in freeride.DASHBOARD_FILES)
PYZ_FILES = sorted(["__main__.py", "freeride.py", *PROVIDER_FILES, *AGENT_FILES,
                    *DASHBOARD_FILES])


def pack(output, *command):
    """Run `COMMAND pack -o output` from the checkout."""
    result = subprocess.run([*command, "pack", "-o", str(output)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env=clean_env())
    if result.returncode != 0:
        raise AssertionError(f"pack failed ({result.returncode}): {result.stderr}")
    return result


class PyzTest(unittest.TestCase):
    """One pyz is built from the checkout, then copied alone into an empty directory."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="freeride-pack-"))
        cls.built = cls.tmp / "build" / "freeride.pyz"
        cls.built.parent.mkdir()
        cls.pack_result = run_cli("pack", "-o", str(cls.built), env=clean_env())
        cls.alone = cls.tmp / "alone"
        cls.alone.mkdir()
        if cls.built.exists():
            shutil.copy2(cls.built, cls.alone / "freeride.pyz")
        cls.pyz = cls.alone / "freeride.pyz"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        self.assertEqual(self.pack_result.returncode, 0, self.pack_result.stderr)
        self.home = tempfile.TemporaryDirectory(prefix="freeride-pyz-home-")
        self.addCleanup(self.home.cleanup)
        self.env = clean_env(FREERIDE_HOME=self.home.name)

    def run_pyz(self, *args, python=None, env=None):
        """`python3.10 -I -S freeride.pyz ARGS` from the directory holding only the pyz."""
        return subprocess.run([python or python310(), "-I", "-S", "freeride.pyz", *args],
                              cwd=self.alone, env=env or self.env, capture_output=True,
                              text=True, timeout=60)

    def test_pack_writes_an_executable_file_and_prints_its_sha256(self):
        data = self.built.read_bytes()
        self.assertIn(str(self.built), self.pack_result.stdout)
        self.assertIn(f"sha256 {hashlib.sha256(data).hexdigest()}", self.pack_result.stdout)
        self.assertEqual(self.built.stat().st_mode & 0o777, 0o755)
        self.assertTrue(data.startswith(b"#!/usr/bin/env python3\n"))

    def test_two_builds_are_byte_identical(self):
        again = self.tmp / "again.pyz"
        self.addCleanup(again.unlink, True)
        result = run_cli("pack", "-o", str(again), env=clean_env())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(again.read_bytes(), self.built.read_bytes())

    def test_entries_are_sorted_with_fixed_times_and_modes(self):
        with zipfile.ZipFile(self.built) as archive:
            infos = archive.infolist()
        names = [i.filename for i in infos]
        self.assertEqual(names, sorted(names))
        for info in infos:
            self.assertEqual(info.date_time, (1980, 1, 1, 0, 0, 0), info.filename)
            self.assertEqual(info.external_attr >> 16, 0o100644, info.filename)
            self.assertEqual(info.compress_type, zipfile.ZIP_DEFLATED, info.filename)

    def test_it_holds_freeride_the_providers_the_agents_the_page_and_a_main_returning_the_exit_code(self):
        with zipfile.ZipFile(self.built) as archive:
            names = archive.namelist()
            self.assertEqual(sorted(names), PYZ_FILES)
            for name in names[1:]:
                self.assertEqual(archive.read(name), (ROOT / name).read_bytes(), name)
            main = archive.read("__main__.py").decode()
        self.assertIn("sys.exit(freeride.main())", main)

    def test_alone_it_prints_its_version_on_python_3_10_isolated(self):
        result = self.run_pyz("--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), f"freeride {freeride.__version__}")
        self.assertEqual(sorted(p.name for p in self.alone.iterdir()), ["freeride.pyz"])

    def test_exit_codes_and_errors_are_those_of_python_m_freeride(self):
        for args in (["serve", "--host", "0.0.0.0", "--port", "0"], [], ["no-such-command"]):
            with self.subTest(args=args):
                from_pyz = self.run_pyz(*args)
                from_checkout = run_cli(*args, env=self.env)
                self.assertNotEqual(from_pyz.returncode, 0)
                self.assertEqual(from_pyz.returncode, from_checkout.returncode)
                self.assertEqual(from_pyz.stderr, from_checkout.stderr)

    def test_alone_it_binds_an_agent_from_an_empty_folder(self):
        # The pyz carries agents/: copied alone, it binds on a machine with no checkout.
        home = Path(tempfile.mkdtemp(prefix="freeride-pyz-agent-home-"))
        self.addCleanup(shutil.rmtree, home, True)
        env = {k: v for k, v in self.env.items() if k != "LLM_USER_PATH"}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   FREERIDE_HOME=str(home / ".freeride"))
        result = self.run_pyz("bind", "llm", "--dry-run", env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        folder = home / ".config" / "io.datasette.llm"
        self.assertIn(f"+++ {folder / 'extra-openai-models.yaml'}", result.stdout)
        self.assertIn("+- model_id: freeride", result.stdout)
        self.assertIn(f"+++ {folder / 'keys.json'}", result.stdout)
        self.assertIn("(dry run: nothing was written)", result.stdout)
        self.assertEqual(list(home.iterdir()), [])
        self.assertEqual(sorted(p.name for p in self.alone.iterdir()), ["freeride.pyz"])
        bound = self.run_pyz("bind", "llm", env=env)
        self.assertEqual(bound.returncode, 0, bound.stderr)
        self.assertEqual(json.loads((folder / "keys.json").read_text())["freeride"],
                         "freeride-local")
        unbound = self.run_pyz("unbind", "llm", env=env)
        self.assertEqual(unbound.returncode, 0, unbound.stderr)
        self.assertFalse((home / ".config").exists())

    def test_it_runs_by_its_shebang(self):
        result = subprocess.run(["./freeride.pyz", "serve", "--help"], cwd=self.alone,
                                env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--port", result.stdout)

    def test_serve_answers_a_real_request_through_a_fake_provider(self):
        from tests.fakes import FakeUpstream
        upstream = FakeUpstream("groq").start()
        self.addCleanup(upstream.close)
        server = ServeProcess(command=(python310(), "-I", "-S", "freeride.pyz"), cwd=self.alone,
                              env={**self.env, "GROQ_API_KEY": "x", "GROQ_BASE_URL": upstream.url})
        self.addCleanup(lambda: server.process.poll() is None and server.stop())
        self.assertIn("providers: groq", "\n".join(server.lines))
        status, headers, body = server.post(
            "/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["X-FreeRide-Provider"], "groq")
        self.assertEqual(json.loads(body)["_freeride_provider"], "groq")
        self.assertEqual([r.key for r in upstream.requests if r.path.endswith("/completions")],
                         ["x"])
        code, _, err = server.stop()
        self.assertEqual(code, 0, err)
        self.assertNotIn("Traceback", err)

    def test_the_pyz_packs_itself_into_the_same_bytes(self):
        # Both builds by the same interpreter: zlib may differ between Python builds.
        from_checkout = self.tmp / "checkout-310.pyz"
        from_itself = self.tmp / "itself-310.pyz"
        self.addCleanup(from_checkout.unlink, True)
        self.addCleanup(from_itself.unlink, True)
        pack(from_checkout, python310(), "-m", "freeride")
        result = self.run_pyz("pack", "-o", str(from_itself))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(from_itself.read_bytes(), from_checkout.read_bytes())
        digest = hashlib.sha256(from_itself.read_bytes()).hexdigest()
        self.assertIn(f"sha256 {digest}", result.stdout)

    def test_given_a_directory_it_writes_freeride_pyz_inside(self):
        directory = Path(tempfile.mkdtemp(prefix="freeride-pack-dir-"))
        self.addCleanup(shutil.rmtree, directory, True)
        result = run_cli("pack", "-o", str(directory), env=clean_env())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual((directory / "freeride.pyz").read_bytes(), self.built.read_bytes())

    def test_pack_needs_no_provider_settings(self):
        target = self.tmp / "broken-env.pyz"
        self.addCleanup(target.unlink, True)
        result = run_cli("pack", "-o", str(target), env=clean_env(GROQ_API_KEY='["unterminated'))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(target.read_bytes(), self.built.read_bytes())


class SourcesTest(unittest.TestCase):
    def test_the_sources_are_read_through_the_loaders_of_the_running_modules(self):
        files = freeride.pyz_sources()
        self.assertEqual(sorted(files), PYZ_FILES)
        self.assertEqual(files["providers/__init__.py"], (ROOT / "providers/__init__.py").read_bytes())
        for cls in [*providers.REGISTRY.values(), providers.DEMO]:
            self.assertIn(cls.__module__.replace(".", "/") + ".py", files)

    def test_the_same_files_give_the_same_bytes_and_other_files_other_bytes(self):
        files = {"__main__.py": b"print(1)\n", "b.py": b"x = 1\n", "a.py": b"y = 2\n"}
        one = freeride.build_pyz(files)
        self.assertEqual(freeride.build_pyz(dict(reversed(list(files.items())))), one)
        self.assertNotEqual(freeride.build_pyz({**files, "a.py": b"y = 3\n"}), one)

    def test_no_product_code_finds_its_files_through___file__(self):
        # A path built from __file__ points into the zip from inside the pyz and breaks there.
        for path in [ROOT / "freeride.py", *sorted((ROOT / "providers").glob("*.py")),
                     *sorted((ROOT / "agents").glob("*.py"))]:
            self.assertIsNone(re.search(r"\b__file__\b", path.read_text()), path.name)


if __name__ == "__main__":
    unittest.main()
