"""What `freeride bind` and `unbind` do to the files around the settings they own: numbers in
a JSON config come back spelled as the user wrote them, anything that is not a regular file
is refused at once (a FIFO or a device would hang the command), and the folders bind made
for a new config file go again at unbind once they are empty."""
import json
import os
import unittest

import freeride
from tests.support import run_cli
from tests.temphome import HomeTest

# Numbers that json.loads and json.dumps do not give back as written: 1e400 becomes Infinity,
# 1.10 becomes 1.1, 1E5 becomes 100000.0.
NUMBERS = """\
{
  "numbers": {
    "huge": 1e400,
    "big": 12345678901234567890123,
    "tenth": 1.10,
    "negative_zero": -0.0,
    "exponent": 1E5,
    "small": 2.5e-7,
    "in_a_list": [
      1.10,
      -1E+5,
      0
    ]
  },
  "gateway": {
    "port": 18789"""

JSON_AGENTS = {"openclaw": ".openclaw/openclaw.json", "claude": ".claude/settings.json"}


class NumbersTest(HomeTest):
    def test_numbers_survive_bind_rebind_and_unbind_byte_for_byte(self):
        original = NUMBERS + "\n  }\n}\n"
        for agent, relative in JSON_AGENTS.items():
            with self.subTest(agent):
                path = self.write(relative, original)
                for argv in (("bind", agent), ("bind", agent, "--model", "llama-3.3-70b")):
                    result = self.run_cli(*argv)
                    self.assertEqual(result.code, 0, result)
                    self.assertIn(NUMBERS, path.read_text(), f"after {' '.join(argv)}")
                self.assertEqual(self.run_cli("unbind", agent).code, 0)
                self.assertEqual(path.read_text(), original)

    def test_a_json5_file_with_trailing_commas_keeps_its_numbers(self):
        text = '{\n    "a": [1.10, 1E5,],\n    "b": 1e400,\n}\n'
        doc = freeride.read_json_config(text, "x.json")
        self.assertEqual(freeride.dump_json_config(doc, text),
                         '{\n    "a": [\n        1.10,\n        1E5\n    ],\n    "b": 1e400\n}\n')

    def test_numbers_read_from_a_file_still_compare_as_numbers(self):
        doc = freeride.read_json_config('{"port": 8192, "ratio": 1.10}', "x.json")
        self.assertEqual(doc, {"port": 8192, "ratio": 1.1})
        self.assertTrue(freeride._same(doc, {"port": 8192, "ratio": 1.1}))
        self.assertFalse(freeride._same(doc, {"port": 8192.0, "ratio": 1.1}))

    def test_other_values_are_written_as_json_dumps_writes_them(self):
        doc = {"a": {}, "b": [], "c": [1, 2.5, True, None, "é\n\"", {"d": [[]]}], "e": 1e400}
        for indent, hint in ((2, "{}"), (4, '{\n    "x": 1}'), ("\t", '{\n\t"x": 1}')):
            self.assertEqual(freeride.dump_json_config(doc, hint),
                             json.dumps(doc, indent=indent, ensure_ascii=False) + "\n")


class NotARegularFileTest(HomeTest):
    def run_bounded(self, *argv):
        """`freeride ARGV` in a child process, which a hang would not outlive."""
        return run_cli(*argv, env=self.env, timeout=20)

    def assert_refused(self, result, path):
        self.assertEqual(result.returncode, 1, result)
        self.assertIn(f"freeride: {path} is not a regular file", result.stderr)
        self.assertIn("Nothing was changed", result.stderr)

    def test_a_fifo_is_refused_at_once_and_nothing_is_written(self):
        fifo = self.home / ".openclaw" / "openclaw.json"
        fifo.parent.mkdir()
        os.mkfifo(fifo)
        before = self.snapshot()
        for argv in (("bind", "openclaw", "--dry-run"), ("bind", "openclaw")):
            with self.subTest(argv[-1]):
                self.assert_refused(self.run_bounded(*argv), fifo)
                self.assertEqual(self.snapshot(), before)
                self.assertFalse((self.home / ".freeride" / "bind").exists())

    def test_a_link_to_a_device_is_refused_at_once(self):
        link = self.home / ".claude" / "settings.json"
        link.parent.mkdir()
        link.symlink_to("/dev/zero")
        for argv in (("bind", "claude", "--dry-run"), ("bind", "claude")):
            with self.subTest(argv[-1]):
                self.assert_refused(self.run_bounded(*argv), "/dev/zero")
        self.assertEqual(os.readlink(link), "/dev/zero")
        self.assertFalse((self.home / ".freeride" / "bind").exists())

    def test_unbind_refuses_a_bound_file_that_became_a_fifo(self):
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        path = self.home / ".claude" / "settings.json"
        path.unlink()
        os.mkfifo(path)
        self.assert_refused(self.run_bounded("unbind", "claude"), path)
        self.assertTrue((self.home / ".freeride" / "bind" / "claude.json").exists())


class FoldersTest(HomeTest):
    def test_unbind_removes_the_folder_bind_made(self):
        folder = self.home / ".claude"
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        self.assertTrue((folder / "settings.json").is_file())
        result = self.run_cli("unbind", "claude")
        self.assertEqual(result.code, 0, result)
        self.assertFalse(folder.exists(), list(folder.iterdir()) if folder.exists() else None)

    def test_every_level_bind_made_goes_and_the_ones_before_stay(self):
        (self.home / "a").mkdir()
        self.env["CLAUDE_CONFIG_DIR"] = str(self.home / "a" / "b" / "c")
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        self.assertEqual(self.run_cli("unbind", "claude").code, 0)
        self.assertEqual(list((self.home / "a").iterdir()), [])

    def test_two_files_in_one_new_folder_both_go_and_then_the_folder(self):
        folder = self.home / ".config" / "io.datasette.llm"  # XDG_CONFIG_HOME is not there yet
        self.assertEqual(self.run_cli("bind", "llm").code, 0)
        self.assertEqual(sorted(p.name for p in folder.iterdir()),
                         ["extra-openai-models.yaml", "keys.json"])
        self.assertEqual(self.run_cli("unbind", "llm").code, 0)
        self.assertFalse((self.home / ".config").exists())

    def test_binding_again_leaves_no_backup_of_what_bind_wrote_itself(self):
        folder = self.home / ".claude"
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        self.assertEqual(self.run_cli("bind", "claude", "--model", "llama-3.3-70b").code, 0)
        self.assertEqual(self.backups(folder / "settings.json"), [])
        self.assertEqual(self.run_cli("unbind", "claude").code, 0)
        self.assertFalse(folder.exists())

    def test_a_folder_that_was_there_before_bind_stays_even_empty(self):
        folder = self.home / ".claude"
        folder.mkdir()
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        self.assertEqual(self.run_cli("unbind", "claude").code, 0)
        self.assertTrue(folder.is_dir())
        self.assertEqual(list(folder.iterdir()), [])

    def test_a_folder_bind_made_stays_while_something_else_is_in_it(self):
        folder = self.home / ".claude"
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        (folder / "history.jsonl").write_text("{}\n")
        self.assertEqual(self.run_cli("unbind", "claude").code, 0)
        self.assertEqual([p.name for p in folder.iterdir()], ["history.jsonl"])

    def test_a_new_file_changed_after_bind_is_backed_up_and_its_folder_kept(self):
        path = self.home / ".claude" / "settings.json"
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        edited = path.read_text().replace('"1"', '"0"')
        path.write_text(edited)
        self.assertEqual(self.run_cli("unbind", "claude").code, 0)
        self.assertFalse(path.exists())
        [backup] = self.backups(path)
        self.assertEqual(backup.read_text(), edited)

    def test_dry_run_unbind_removes_no_folder(self):
        folder = self.home / ".claude"
        self.assertEqual(self.run_cli("bind", "claude").code, 0)
        self.assertEqual(self.run_cli("unbind", "claude", "--dry-run").code, 0)
        self.assertTrue((folder / "settings.json").is_file())


if __name__ == "__main__":
    unittest.main()
