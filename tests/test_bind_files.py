"""What `freeride bind` and `unbind` do to the files around the settings they own: numbers in
a JSON config come back spelled as the user wrote them, and anything that is not a regular
file is refused at once (a FIFO or a device would hang the command)."""
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


if __name__ == "__main__":
    unittest.main()
