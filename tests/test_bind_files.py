"""What `freeride bind` and `unbind` do to the files around the settings they own: numbers in
a JSON config come back spelled as the user wrote them."""
import json
import unittest

import freeride
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


if __name__ == "__main__":
    unittest.main()
