"""install.sh: no network, no pip, idempotent, and --uninstall removes only what it installed."""
import os
import shutil
import subprocess
import tempfile
import unittest
import zipfile
from pathlib import Path

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

    def install(self, *args, script=ROOT / "install.sh", python=None, path=None):
        env = clean_env(PREFIX=str(self.prefix), HOME=str(self.home),
                        PYTHON=python or python310(), PATH=path or os.environ["PATH"])
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
        with zipfile.ZipFile(self.prefix / "lib/freeride/freeride.pyz") as archive:
            self.assertIn("freeride.py", archive.namelist())
        installed = snapshot(self.prefix)

        second = self.install()
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(second.stderr, "")
        self.assertEqual(snapshot(self.prefix), installed)
        self.assertEqual(self.freeride("--version").stdout, version.stdout)

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

    def test_a_prefix_it_cannot_write_is_a_clear_error(self):
        self.prefix.write_text("a file, not a directory")
        result = self.install()
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"cannot write to {self.prefix}", result.stderr)
        self.assertNotIn("sudo ", result.stdout)

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


if __name__ == "__main__":
    unittest.main()
