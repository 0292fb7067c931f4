"""Installing with no network: install.sh (idempotent, --uninstall removes only what it
installed) and `pip install .` through the standard-library build backend."""
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile
from pathlib import Path

import build_backend
import freeride
from tests.support import ROOT, clean_env, python310, run_cli


def snapshot(directory):
    """{relative path: (mode, bytes)} of every file under directory."""
    return {str(p.relative_to(directory)): (p.stat().st_mode, p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file()}


class InstallScriptTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="freeride-install-")
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.prefix = self.tmp / "prefix"
        self.home = self.tmp / "home"
        self.home.mkdir()

    def install(self, *args, script=ROOT / "install.sh", python=None, path=None, **extra):
        env = clean_env(PREFIX=str(self.prefix), HOME=str(self.home),
                        PYTHON=python or python310(), PATH=path or os.environ["PATH"], **extra)
        return subprocess.run(["sh", str(script), *args], env=env, capture_output=True,
                              text=True, timeout=60)

    def freeride(self, *args, name="freeride"):
        return subprocess.run([str(self.prefix / "bin" / name), *args], capture_output=True,
                              text=True, timeout=60, env=clean_env(HOME=str(self.home)))

    def test_it_installs_a_working_freeride_and_running_it_again_changes_nothing(self):
        first = self.install()
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn(f"installed freeride {freeride.__version__}", first.stdout)
        version = self.freeride("--version")
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertEqual(version.stdout.strip(), f"freeride {freeride.__version__}")
        watcher = self.prefix / "bin" / "freeride-watcher"
        self.assertTrue(watcher.is_file() and os.access(watcher, os.X_OK))
        help_ = self.freeride("--help", name="freeride-watcher")
        self.assertEqual(help_.returncode, 0, help_.stderr)
        self.assertIn("usage: freeride watcher", help_.stdout)
        self.assertIn("--interval", help_.stdout)
        with zipfile.ZipFile(self.prefix / "lib/freeride/freeride.pyz") as archive:
            self.assertIn("freeride.py", archive.namelist())
            self.assertIn("dashboard/index.html", archive.namelist())
        installed = snapshot(self.prefix)

        second = self.install()
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(second.stderr, "")
        self.assertEqual(snapshot(self.prefix), installed)
        self.assertEqual(self.freeride("--version").stdout, version.stdout)

    def test_with_claude_code_present_it_offers_the_skill_and_uninstall_takes_it_back(self):
        skill = self.home / ".claude" / "skills" / "freeride" / "SKILL.md"
        skill.parent.parent.parent.mkdir(parents=True)
        offered = self.install()  # no terminal and no answer: it says how, installs nothing
        self.assertIn("FREERIDE_SKILL=1", offered.stdout)
        self.assertFalse(skill.exists())
        yes = self.install(FREERIDE_SKILL="1")
        self.assertEqual(yes.returncode, 0, yes.stderr)
        self.assertEqual(skill.read_bytes(), (ROOT / "skills/freeride/SKILL.md").read_bytes())
        skill.write_text("my own notes")
        self.assertIn("left", self.install(FREERIDE_SKILL="1").stdout,
                      "a SKILL.md that is not ours stays")
        self.assertEqual(skill.read_text(), "my own notes")
        skill.write_bytes((ROOT / "skills/freeride/SKILL.md").read_bytes())
        self.assertEqual(self.install("--uninstall").returncode, 0)
        self.assertFalse(skill.exists())

    def test_the_launchers_run_the_interpreter_it_was_given(self):
        self.assertEqual(self.install().returncode, 0)
        for name in ("freeride", "freeride-watcher"):
            self.assertIn(f"exec '{python310()}' ", (self.prefix / "bin" / name).read_text())

    def test_it_says_how_to_put_bin_on_path_only_when_it_is_not(self):
        bin_dir = self.prefix / "bin"
        away = self.install(path=os.environ["PATH"])
        self.assertIn(f'export PATH="{bin_dir}:$PATH"', away.stdout)
        on_path = self.install(path=f"{bin_dir}:{os.environ['PATH']}")
        self.assertEqual(on_path.returncode, 0, on_path.stderr)
        self.assertNotIn("PATH", on_path.stdout)

    def test_uninstall_removes_what_it_installed_and_nothing_else(self):
        (self.prefix / "bin").mkdir(parents=True)
        (self.prefix / "bin" / "other-tool").write_text("#!/bin/sh\n")
        (self.prefix / "lib" / "other").mkdir(parents=True)
        (self.prefix / "lib" / "other" / "data").write_text("keep me")
        before = snapshot(self.prefix)
        self.assertEqual(self.install().returncode, 0)
        self.assertGreater(len(snapshot(self.prefix)), len(before))

        removed = self.install("--uninstall")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertEqual(snapshot(self.prefix), before)
        self.assertFalse((self.prefix / "lib" / "freeride").exists())
        again = self.install("--uninstall")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("nothing to remove", again.stdout)

    def test_a_freeride_pyz_it_did_not_install_is_kept_by_uninstall_and_install(self):
        lib = self.prefix / "lib" / "freeride"
        lib.mkdir(parents=True)
        foreign = lib / "freeride.pyz"
        foreign.write_bytes(b"#!/usr/bin/env python3\nnot install.sh's\n")
        before = snapshot(self.prefix)
        removed = self.install("--uninstall")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertIn(f"left {foreign}: install.sh did not install it", removed.stdout)
        self.assertIn("nothing to remove", removed.stdout)
        self.assertEqual(snapshot(self.prefix), before)
        refused = self.install()
        self.assertEqual(refused.returncode, 1)
        self.assertIn(f"{foreign} exists and install.sh did not install it", refused.stderr)
        self.assertEqual(snapshot(self.prefix), before)

    def test_a_pyz_replaced_after_install_is_kept_by_uninstall(self):
        self.assertEqual(self.install().returncode, 0)
        pyz = self.prefix / "lib" / "freeride" / "freeride.pyz"
        pyz.write_bytes(b"#!/usr/bin/env python3\ncopied over by hand\n")
        removed = self.install("--uninstall")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertIn(f"left {pyz}: it changed after install.sh installed it", removed.stdout)
        self.assertEqual(pyz.read_bytes(), b"#!/usr/bin/env python3\ncopied over by hand\n")
        self.assertEqual(os.listdir(pyz.parent), ["freeride.pyz"])
        self.assertFalse((self.prefix / "bin" / "freeride").exists())

    def test_a_freeride_command_it_did_not_install_is_left_alone(self):
        (self.prefix / "bin").mkdir(parents=True)
        foreign = self.prefix / "bin" / "freeride"
        foreign.write_text("#!/bin/sh\necho installed by pip\n")
        result = self.install()
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{foreign} exists and install.sh did not install it", result.stderr)
        self.assertEqual(foreign.read_text(), "#!/bin/sh\necho installed by pip\n")
        self.assertFalse((self.prefix / "lib" / "freeride").exists())
        self.assertEqual(self.install("--uninstall").returncode, 0)
        self.assertTrue(foreign.exists())

    def test_an_old_python_is_refused_with_a_clear_message(self):
        old = self.tmp / "python3"
        old.write_text('#!/bin/sh\n[ "$1" = -V ] && echo "Python 3.8.18" && exit 0\nexit 1\n')
        old.chmod(0o755)
        result = self.install(python=str(old))
        self.assertEqual(result.returncode, 1)
        self.assertIn("needs Python 3.10 or newer", result.stderr)
        self.assertIn("Python 3.8.18", result.stderr)
        self.assertIn("PYTHON=", result.stderr)
        self.assertFalse(self.prefix.exists())

    def test_a_missing_python_is_refused_with_a_clear_message(self):
        result = self.install(python="no-such-python3")
        self.assertEqual(result.returncode, 1)
        self.assertIn("no-such-python3 not found", result.stderr)
        self.assertFalse(self.prefix.exists())

    def test_a_prefix_it_cannot_write_is_a_clear_error_and_it_never_runs_sudo(self):
        self.prefix.write_text("a file, not a directory")
        spy = self.tmp / "spy"  # a sudo first on PATH that records being run
        spy.mkdir()
        (spy / "sudo").write_text(f'#!/bin/sh\necho "$@" > \'{self.tmp / "sudo-ran"}\'\nexit 1\n')
        (spy / "sudo").chmod(0o755)
        result = self.install(path=f"{spy}:{os.environ['PATH']}")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"cannot write to {self.prefix}", result.stderr)
        self.assertIn(f"(for example: sudo PREFIX={self.prefix} sh install.sh)", result.stderr,
                      "sudo is only ever advised, as a command for the user to run")
        self.assertEqual(result.stderr.count("sudo "), 1)
        self.assertEqual(result.stdout, "")
        self.assertFalse((self.tmp / "sudo-ran").exists(), "install.sh ran sudo")

    def test_beside_a_freeride_pyz_and_no_checkout_it_installs_that_file(self):
        dist = self.tmp / "dist"
        dist.mkdir()
        shutil.copy(ROOT / "install.sh", dist / "install.sh")
        built = run_cli("pack", "-o", str(dist / "freeride.pyz"), env=clean_env())
        self.assertEqual(built.returncode, 0, built.stderr)
        result = self.install(script=dist / "install.sh")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual((self.prefix / "lib/freeride/freeride.pyz").read_bytes(),
                         (dist / "freeride.pyz").read_bytes())
        self.assertEqual(self.freeride("--version").stdout.strip(), f"freeride {freeride.__version__}")

    def test_an_unknown_option_is_a_usage_error(self):
        result = self.install("--prefix=/usr")
        self.assertEqual(result.returncode, 2)
        self.assertIn("usage: sh install.sh [--uninstall]", result.stderr)
        self.assertFalse(self.prefix.exists())


BUILD_INPUTS = ["pyproject.toml", "README.md", "build_backend.py", "install.sh", "freeride.py",
                *sorted(f"providers/{p.name}" for p in (ROOT / "providers").glob("*.py")),
                *sorted(f"agents/{p.name}" for p in (ROOT / "agents").glob("*.py")),
                *sorted(f"dashboard/{p.name}" for p in (ROOT / "dashboard").iterdir())]
WHEEL_FILES = ["freeride.py", *BUILD_INPUTS[5:]]


def pip(python, *args):
    """`python -m pip ARGS`, never touching an index, a cache or the user's pip config."""
    env = clean_env(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1")
    return subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir",
                           *args], env=env, capture_output=True, text=True, timeout=120)


class PipInstallTest(unittest.TestCase):
    """pip builds FreeRide offline: its backend is build_backend.py, which needs nothing."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="freeride-pip-")
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.source = self.tmp / "source"  # a copy, as pip may write into the tree it builds
        for name in BUILD_INPUTS:
            (self.source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, self.source / name)

    def pip_install(self, python, *args):
        target = self.tmp / "target"
        result = pip(python, "install", "--no-index", "--target", str(target), *args)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return target

    def run_installed(self, python, target, *args):
        return subprocess.run([python, *args], cwd=self.tmp, capture_output=True, text=True,
                              timeout=60, env=clean_env(PYTHONPATH=str(target)))

    def test_pip_install_works_offline_with_build_isolation(self):
        target = self.pip_install(sys.executable, str(self.source))
        version = subprocess.run([str(target / "bin" / "freeride"), "--version"],
                                 capture_output=True, text=True, timeout=60,
                                 env=clean_env(PYTHONPATH=str(target)))
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertEqual(version.stdout.strip(), f"freeride {freeride.__version__}")
        watcher = target / "bin" / "freeride-watcher"
        self.assertTrue(watcher.is_file() and os.access(watcher, os.X_OK))
        self.assertIn("watcher_main", watcher.read_text())
        for name in WHEEL_FILES:
            self.assertEqual((target / name).read_bytes(), (ROOT / name).read_bytes(), name)

    def test_the_documented_no_build_isolation_install_works_on_python_3_10(self):
        target = self.pip_install(python310(), "--no-build-isolation", str(self.source))
        result = self.run_installed(python310(), target, "-m", "freeride", "--version")
        self.assertEqual(result.stdout.strip(), f"freeride {freeride.__version__}")

    def test_an_installed_copy_packs_the_same_pyz_as_the_checkout(self):
        target = self.pip_install(sys.executable, str(self.source))
        result = self.run_installed(sys.executable, target, "-m", "freeride", "pack", "-o",
                                    str(self.tmp / "installed.pyz"))
        self.assertEqual(result.returncode, 0, result.stderr)
        from_checkout = run_cli("pack", "-o", str(self.tmp / "checkout.pyz"), env=clean_env())
        self.assertEqual(from_checkout.returncode, 0, from_checkout.stderr)
        self.assertEqual((self.tmp / "installed.pyz").read_bytes(),
                         (self.tmp / "checkout.pyz").read_bytes())

    def test_the_sdist_holds_what_pip_needs_to_build_and_install_it(self):
        name = build_backend.build_sdist(str(self.tmp))
        sdist = self.tmp / name
        with tarfile.open(sdist) as archive:
            names = archive.getnames()
        base = f"freeride_gateway-{freeride.__version__}"
        self.assertEqual(sorted(names), sorted(f"{base}/{n}" for n in [*BUILD_INPUTS, "PKG-INFO"]))
        self.assertEqual(build_backend.build_sdist(str(self.tmp)), name)
        self.assertEqual(sdist.read_bytes(), (self.tmp / name).read_bytes())
        target = self.pip_install(sys.executable, str(sdist))
        self.assertTrue((target / "providers" / "groq.py").exists())


class BuildBackendTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="freeride-wheel-")
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)

    def test_it_reads_the_metadata_and_commands_from_pyproject(self):
        project = build_backend.Project(ROOT)
        self.assertEqual((project.name, project.version), ("freeride-gateway", freeride.__version__))
        self.assertEqual(project.scripts, {"freeride": "freeride:main",
                                           "freeride-watcher": "freeride:watcher_main"})
        self.assertEqual(project.sources(), WHEEL_FILES)
        self.assertIn(b"Requires-Python: >=3.10\n", project.metadata())

    def test_its_toml_reader_takes_comments_inline_tables_and_multi_line_arrays(self):
        doc = build_backend.read_toml('''# top
[a]
s = "x # not a comment" # a comment
t = {text = "MIT", n = 2}
list = [
    "one",  # first
    'two',
]
[a.b]
yes = true
''')
        self.assertEqual(doc, {"a": {"s": "x # not a comment", "t": {"text": "MIT", "n": 2},
                                     "list": ["one", "two"], "b": {"yes": True}}})
        with self.assertRaisesRegex(build_backend.TomlError, "line 2"):
            build_backend.read_toml('[a]\nx = """long"""\n')
        with self.assertRaisesRegex(build_backend.TomlError, "line 1"):
            build_backend.read_toml("x = 1 2\n")

    def test_the_wheel_is_reproducible_and_its_record_is_true(self):
        name = build_backend.build_wheel(str(self.tmp))
        self.assertEqual(name, f"freeride_gateway-{freeride.__version__}-py3-none-any.whl")
        first = (self.tmp / name).read_bytes()
        build_backend.build_wheel(str(self.tmp))
        self.assertEqual((self.tmp / name).read_bytes(), first)
        info = f"freeride_gateway-{freeride.__version__}.dist-info"
        with zipfile.ZipFile(self.tmp / name) as wheel:
            self.assertEqual(sorted(wheel.namelist()), sorted(
                [*WHEEL_FILES, *(f"{info}/{n}" for n in ("METADATA", "WHEEL", "entry_points.txt",
                                                         "RECORD"))]))
            record = wheel.read(f"{info}/RECORD").decode().splitlines()
            for line in record[:-1]:
                path, digest, size = line.split(",")
                data = wheel.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                self.assertEqual((digest, int(size)), (f"sha256={expected.decode()}", len(data)))
            self.assertEqual(record[-1], f"{info}/RECORD,,")
            self.assertIn(b"freeride-watcher = freeride:watcher_main",
                          wheel.read(f"{info}/entry_points.txt"))

    def test_an_editable_wheel_points_at_the_checkout(self):
        name = build_backend.build_editable(str(self.tmp))
        with zipfile.ZipFile(self.tmp / name) as wheel:
            self.assertEqual(wheel.read("freeride_gateway.pth").decode().strip(), str(ROOT))
            self.assertNotIn("freeride.py", wheel.namelist())


if __name__ == "__main__":
    unittest.main()
