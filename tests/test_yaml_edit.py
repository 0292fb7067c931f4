"""The small YAML editor and the JSON reader behind `freeride bind`: what they read, what an
edit changes (only the lines of the settings it touches), and what they refuse."""
import unittest

from freeride import CannotEdit, YamlDocument, dump_json_config, read_json_config, yaml_scalar

CONTINUE = """\
# Continue config
name: My Assistant   # shown in the menu
version: 1.0.0
schema: v1
models:
  - name: Local
    provider: ollama   # runs on my laptop
    model: "qwen2.5-coder:7b"
    roles:
      - autocomplete
  # the paid one

  - name: 'Claude'
    provider: anthropic
    roles: [chat, edit]
context:
- provider: code
rules:
  - |
    Prefer pathlib.
    - not: a list item, just text
prompt: >-
  folded
  text
"""


class ReadingTest(unittest.TestCase):
    def test_reads_mappings_lists_quotes_and_flow_lists(self):
        doc = YamlDocument(CONTINUE)
        self.assertEqual(doc.get(("name",)), "My Assistant")
        self.assertEqual(doc.get(("models", 0, "model")), "qwen2.5-coder:7b")
        self.assertEqual(doc.get(("models", 0, "roles")), ["autocomplete"])
        self.assertEqual(doc.get(("models", 1, "name")), "Claude")
        self.assertEqual(doc.get(("models", 1, "roles")), ["chat", "edit"])
        self.assertEqual(doc.get(("context",)), [{"provider": "code"}])
        self.assertIsNone(doc.find(("missing",)))
        self.assertEqual(YamlDocument("- - a\n  - b\n- - - c\n").get(()), [["a", "b"], [["c"]]])

    def test_scalars_read_as_the_agents_yaml_loaders_read_them(self):
        doc = YamlDocument("a: yes\nb: 12\nc: 1.5\nd: ~\ne: 'it''s'\nf: \"tab\\there \\u00e9\"\n"
                           "g: http://x:1/v1 # comment\nh: 'a # not a comment'\n")
        self.assertEqual([doc.get((k,)) for k in "abcdefgh"],
                         [True, 12, 1.5, None, "it's", "tab\there \u00e9", "http://x:1/v1",
                          "a # not a comment"])

    def test_block_scalars_and_multi_line_values_are_kept_but_never_read(self):
        doc = YamlDocument(CONTINUE)
        self.assertEqual(doc.find(("rules", 0)).kind, "block")
        self.assertEqual(doc.find(("prompt",)).kind, "block")
        text = ('a: one\n  two\nb: "quoted # not a comment\n# nor this\n  over lines"  # c\n'
                "c: [x, # a comment inside\n  'y, z']\nd: {k: v,\n  l: w}\ne: 1\n")
        doc = YamlDocument(text)
        self.assertEqual([doc.find((k,)).kind for k in "abcde"],
                         ["text", "text", "text", "text", "scalar"])
        doc.set(("e",), 2)
        doc.set(("f",), 3)
        self.assertEqual(doc.text(), text.replace("e: 1\n", "e: 2\nf: 3\n"))


class EditingTest(unittest.TestCase):
    def test_setting_a_value_replaces_only_it_and_keeps_the_comment(self):
        doc = YamlDocument(CONTINUE)
        self.assertTrue(doc.set(("name",), "Other"))
        self.assertEqual(doc.text(), CONTINUE.replace("name: My Assistant   #",
                                                      "name: Other   #"))

    def test_setting_the_same_value_changes_nothing(self):
        doc = YamlDocument('model: "openai/auto"  # quoted on purpose\nflag: yes\n')
        self.assertFalse(doc.set(("model",), "openai/auto"))
        self.assertFalse(doc.set(("flag",), True))
        self.assertEqual(doc.text(), 'model: "openai/auto"  # quoted on purpose\nflag: yes\n')

    def test_a_missing_key_is_added_at_the_end_of_its_mapping(self):
        doc = YamlDocument("model:\n  default: x\n  # provider: later\n\nother: 1\n")
        doc.set(("model", "api_key"), "k-12345678")
        self.assertEqual(doc.text(), "model:\n  default: x\n  api_key: k-12345678\n"
                                     "  # provider: later\n\nother: 1\n")

    def test_a_missing_top_level_key_goes_at_the_end_of_the_file(self):
        doc = YamlDocument("a: 1\n# trailing comment\n")
        doc.set(("b",), 2)
        self.assertEqual(doc.text(), "a: 1\n# trailing comment\nb: 2\n")

    def test_missing_mappings_are_created_and_a_single_value_becomes_a_mapping(self):
        doc = YamlDocument("model: anthropic/claude  # old style\nagent:\n    turns: 3\n")
        doc.set(("model", "default"), "auto")
        doc.set(("new", "deep"), True)
        self.assertEqual(doc.text(), "model:  # old style\n    default: auto\nagent:\n"
                                     "    turns: 3\nnew:\n    deep: true\n")

    def test_an_empty_value_with_a_comment_gets_the_value_before_the_comment(self):
        doc = YamlDocument("model:   # pick one\n")
        doc.set(("model",), "auto")
        self.assertEqual(doc.text(), "model: auto   # pick one\n")

    def test_a_block_list_value_is_replaced_by_a_flow_list(self):
        doc = YamlDocument("roles:  # mine\n  - chat\n  - edit\nnext: 1\n")
        self.assertFalse(doc.set(("roles",), ["chat", "edit"]))
        doc.set(("roles",), ["chat", "apply"])
        self.assertEqual(doc.text(), "roles: [chat, apply]  # mine\nnext: 1\n")

    def test_a_new_list_item_goes_first_with_the_lists_own_indentation(self):
        doc = YamlDocument(CONTINUE)
        doc.upsert_item(("models",), "name", {"name": "FreeRide", "roles": ["chat"]}, first=True)
        self.assertEqual(doc.text(), CONTINUE.replace(
            "models:\n", "models:\n  - name: FreeRide\n    roles: [chat]\n"))

    def test_the_matching_list_item_is_updated_in_place(self):
        doc = YamlDocument(CONTINUE)
        doc.upsert_item(("models",), "name", {"name": "Claude", "provider": "openai",
                                              "apiKey": "k-12345678"})
        self.assertEqual(doc.text(), CONTINUE.replace(
            "    provider: anthropic\n    roles: [chat, edit]\n",
            "    provider: openai\n    roles: [chat, edit]\n    apiKey: k-12345678\n"))
        self.assertFalse(doc.upsert_item(("models",), "name", {"name": "Claude",
                                                               "provider": "openai"}))

    def test_indentless_lists_stay_indentless(self):
        doc = YamlDocument("context:\n- provider: code\n")
        doc.upsert_item(("models",), "name", {"name": "FreeRide"})
        self.assertEqual(doc.text(), "context:\n- provider: code\nmodels:\n- name: FreeRide\n")

    def test_an_empty_flow_list_becomes_a_block_list(self):
        doc = YamlDocument("name: x\nmodels: []   # none yet\n")
        doc.upsert_item(("models",), "name", {"name": "FreeRide", "model": "auto"})
        self.assertEqual(doc.text(), "name: x\nmodels:   # none yet\n  - name: FreeRide\n"
                                     "    model: auto\n")

    def test_a_top_level_list_gets_items_appended(self):
        doc = YamlDocument("# mine\n- model_id: a\n  model_name: b\n")
        doc.upsert_item((), "model_id", {"model_id": "freeride", "supports_tools": True})
        self.assertEqual(doc.text(), "# mine\n- model_id: a\n  model_name: b\n"
                                     "- model_id: freeride\n  supports_tools: true\n")

    def test_an_empty_file_becomes_the_settings_alone(self):
        doc = YamlDocument("")
        doc.set(("a", "b"), "c")
        self.assertEqual(doc.text(), "a:\n  b: c\n")

    def test_crlf_line_endings_a_bom_and_a_missing_final_newline_are_kept(self):
        doc = YamlDocument("\ufeffa: 1\r\nb: 2")
        doc.set(("a",), 3)
        self.assertEqual(doc.text(), "\ufeffa: 3\r\nb: 2")
        doc.set(("c",), 4)
        self.assertEqual(doc.text(), "\ufeffa: 3\r\nb: 2\r\nc: 4\r\n")

    def test_written_scalars_read_back_as_the_same_value(self):
        for value in ("plain", "http://127.0.0.1:11343/v1", "openai/auto", "yes", "123", "1.5",
                      "", " padded ", "a: b", "a #b", "#x", "-x", "@cf/meta/llama", "*star",
                      "it's", 'say "hi"', "tab\there", "line\nbreak", "null", "~", "[x]",
                      "caf\u00e9", "x\u2028y", "0x1F", ".inf", "2026-01-01", "<<", "=", "y", "N", "1_000",
                      "Local Assistant", "1.0.0", 7, True, None, 1.25):
            with self.subTest(value=value):
                doc = YamlDocument("k: " + yaml_scalar(value) + "\n")
                self.assertEqual(doc.get(("k",)), value)
                doc = YamlDocument("k: [" + yaml_scalar(value) + "]\n")
                self.assertEqual(doc.get(("k",)), [value])


class RefusingTest(unittest.TestCase):
    def test_shapes_it_does_not_understand_are_refused_with_the_line(self):
        cases = {
            "anchors": ("a: &x 1\nb: *x\n", "line 1: anchors"),
            "aliases": ("a:\n  - *x\n", "line 2: anchors"),
            "tags": ("a: !!str 1\n", "line 1: anchors, aliases and tags"),
            "merge keys": ("<<: {a: 1}\n", "line 1: merge keys"),
            "several documents": ("a: 1\n---\nb: 2\n", "line 2: several YAML documents"),
            "directives": ("%YAML 1.2\n---\na: 1\n", "line 1: YAML directives"),
            "tab indentation": ("a:\n\tb: 1\n", "line 2: tabs"),
            "duplicate keys": ("a: 1\nb: 2\na: 3\n", "line 3: the key 'a' appears twice"),
            "a second colon": ("a: b: c\n", "line 1: a second ':'"),
            "a quote that never ends": ('a: "x\n  y\n', "line 1: a quoted or [..] value"),
            "a list that never ends": ("a: [1,\n  2\n", "line 1: a quoted or [..] value"),
            "text after a multi-line value": ('a: "x\n  y" z\n', "line 2: unexpected text"),
            "complex keys": ("? a\n: b\n", "line 1: complex keys"),
            "a bare value": ("just text\n", "line 1: the file holds a single value"),
            "bad indentation": ("a:\n  b: 1\n   c: 2\n", "line 3: unexpected indentation"),
            "a list where keys are": ("a: 1\n- b\n", "line 2: a list item where a key"),
            "unknown escapes": ('a: "\\q"\n', "line 1: unknown escape"),
        }
        for what, (text, message) in cases.items():
            with self.subTest(what):
                with self.assertRaises(CannotEdit) as caught:
                    YamlDocument(text, "cfg.yaml")
                self.assertIn("cfg.yaml " + message, str(caught.exception))

    def test_a_block_scalar_it_must_change_is_refused(self):
        doc = YamlDocument("model: |\n  text\nother: 1\n", "cfg.yaml")
        with self.assertRaises(CannotEdit) as caught:
            doc.set(("model",), "auto")
        self.assertIn("line 1: 'model' is a multi-line value", str(caught.exception))
        self.assertEqual(doc.text(), "model: |\n  text\nother: 1\n")

    def test_a_multi_line_value_it_must_change_is_refused(self):
        doc = YamlDocument('model: "a\n  b"\n', "cfg.yaml")
        with self.assertRaises(CannotEdit) as caught:
            doc.set(("model",), "auto")
        self.assertIn("line 1: 'model' is a multi-line value", str(caught.exception))

    def test_a_list_where_a_mapping_belongs_is_refused(self):
        doc = YamlDocument("model:\n  - a\n", "cfg.yaml")
        with self.assertRaises(CannotEdit) as caught:
            doc.set(("model", "default"), "auto")
        self.assertIn("'model' is a list here, not the mapping", str(caught.exception))

    def test_two_matching_list_items_are_refused(self):
        doc = YamlDocument("models:\n  - name: FreeRide\n  - name: FreeRide\n", "cfg.yaml")
        with self.assertRaises(CannotEdit) as caught:
            doc.upsert_item(("models",), "name", {"name": "FreeRide", "model": "auto"})
        self.assertIn("line 3: two list items have name: FreeRide", str(caught.exception))


class JsonConfigTest(unittest.TestCase):
    def test_trailing_commas_are_accepted(self):
        self.assertEqual(read_json_config('{"a": [1, 2,], "b": {"c": "x,}",},}', "f"),
                         {"a": [1, 2], "b": {"c": "x,}"}})

    def test_comments_are_refused_so_they_are_not_lost(self):
        for text in ('{\n  // mine\n  "a": 1\n}', '{"a": /* x */ 1}'):
            with self.assertRaises(CannotEdit) as caught:
                read_json_config(text, "openclaw.json")
            self.assertIn("openclaw.json has comments", str(caught.exception))

    def test_a_slash_inside_a_string_is_not_a_comment(self):
        self.assertEqual(read_json_config('{"url": "http://x//y/*z*/", "q": "\\"//"}', "f"),
                         {"url": "http://x//y/*z*/", "q": '"//'})
        with self.assertRaises(CannotEdit) as caught:
            read_json_config("{'url': 'http://x'}", "f")
        self.assertIn("is not JSON FreeRide can read", str(caught.exception))

    def test_what_it_cannot_read_is_refused(self):
        for text, message in (("{a: 1}", "is not JSON"), ('{"a": 1, "a": 2}', "appears twice"),
                              ("[1]", "holds a JSON list"), ('{"a": ', "is not JSON")):
            with self.subTest(text):
                with self.assertRaises(CannotEdit) as caught:
                    read_json_config(text, "f")
                self.assertIn(message, str(caught.exception))

    def test_an_empty_file_is_an_empty_object(self):
        self.assertEqual(read_json_config(" \n", "f"), {})

    def test_the_rewrite_keeps_the_files_indentation_and_line_endings(self):
        self.assertEqual(dump_json_config({"a": {"b": 1}}, '{\r\n    "a": 0\r\n}\r\n'),
                         '{\r\n    "a": {\r\n        "b": 1\r\n    }\r\n}\r\n')
        self.assertEqual(dump_json_config({"a": 1}, '{"a": 0}'), '{\n  "a": 1\n}\n')


if __name__ == "__main__":
    unittest.main()
