"""TomlDocument, the line editor for Codex's config.toml: it reads what a TOML loader reads,
sets a key in place or adds it where it belongs, keeps every other byte, and refuses (with
the line) what it cannot be sure of. On Python 3.11+ every reading is checked against tomllib
too; the editor itself never uses it."""
import importlib
import math
import unittest

import freeride
from freeride import CannotEdit, TomlDocument


def stdlib_toml():
    """Python 3.11's TOML reader, or None on 3.10 (which has none)."""
    try:
        return importlib.import_module("tomllib")
    except ModuleNotFoundError:
        return None


TOMLLIB = stdlib_toml()
PROVIDER = ("model_providers", "freeride")

EVERYTHING = '''\
# every kind of value
title = "TOML \\"example\\" \\u00e9\\t\\\\ end"
path = 'C:\\Users\\me'       # a literal string
bare-key_1 = 1_000
"quoted key" = -17
hex = 0xDEAD_beef
octal = 0o755
binary = 0b1101
pi = 3.1415
big = -6.02e+23
infinite = -inf
yes = true
no = false
site."google.com" = true
poem = """
Roses are red,\\
    violets are blue.
She said "hi"."""""
raw = \'\'\'
C:\\no\\escapes "here"\'\'\'
ports = [ 8000, 8001,
  # a comment in an array
  8002, ]
nested = [[1, 2], ["a", 'b'], [{ x = 1 }]]
point = { x = 1, y.z = "two" }

[servers]

  [servers.alpha]
  ip = "10.0.0.1"

[a."b c".d]
e = 'f'

[[products]]
name = "Hammer"

[products.maker]
country = "SE"

[[products]]   # a second one

[[products]]
name = "Nail"
[products.maker]
country = "NO"
'''

EVERYTHING_DATA = {
    "title": 'TOML "example" \u00e9\t\\ end', "path": "C:\\Users\\me", "bare-key_1": 1000,
    "quoted key": -17, "hex": 0xDEADBEEF, "octal": 0o755, "binary": 13, "pi": 3.1415,
    "big": -6.02e23, "infinite": -math.inf, "yes": True, "no": False,
    "site": {"google.com": True},
    "poem": 'Roses are red,violets are blue.\nShe said "hi".""',
    "raw": 'C:\\no\\escapes "here"',
    "ports": [8000, 8001, 8002], "nested": [[1, 2], ["a", "b"], [{"x": 1}]],
    "point": {"x": 1, "y": {"z": "two"}},
    "servers": {"alpha": {"ip": "10.0.0.1"}},
    "a": {"b c": {"d": {"e": "f"}}},
    "products": [{"name": "Hammer", "maker": {"country": "SE"}}, {},
                 {"name": "Nail", "maker": {"country": "NO"}}],
}

# Each: (text, the line the refusal names). TOML loaders refuse them too.
INVALID = {
    "an unterminated string": ('a = 1\nb = "open\n', 2),
    "no value": ("a =\n", 1),
    "an unclosed header": ("[table\n", 1),
    "text after a value": ('a = "x" y\n', 1),
    "an unterminated multi-line string": ('a = 1\nb = """\nnever closed\n', 2),
    "an unclosed array": ("a = [1,\n2\n", 1),
    "an unknown escape": ('a = "\\q"\n', 1),
    "a word for a value": ("a = yes\n", 1),
    "a key set twice": ('model = "a"\nx = 1\nmodel = "b"\n', 3),
    "a quoted key that is a bare one": ('model = "a"\n"model" = "b"\n', 2),
    "a table defined twice": ("[t]\na = 1\n[t]\nb = 2\n", 3),
    "a header on a value": ("t = 1\n[t.u]\n", 2),
    "a header on a dotted key's table": ("t.u = 1\n[t]\n", 2),
    "a dotted key into a [table]": ("[t.u]\nx = 1\n[t]\nu.y = 2\n", 4),
    "a list of tables after a table": ("[t]\n[[t]]\n", 2),
    "a key into an inline table": ("t = { a = 1 }\nt.b = 2\n", 2),
    "a key twice in an inline table": ("t = { a = 1, a = 2 }\n", 1),
}


def read(text):
    """What the editor reads; on 3.11+ also checked against tomllib."""
    data = TomlDocument(text).data()
    if TOMLLIB:
        assert data == TOMLLIB.loads(text), (data, TOMLLIB.loads(text))
    return data


def bind(text, model="auto", url="http://127.0.0.1:11343/v1", key="freeride-local"):
    """The text after setting what `freeride bind codex` sets."""
    doc = TomlDocument(text, "config.toml")
    doc.update({(): {"model": model, "model_provider": "freeride",
                     "model_context_window": 128000},
                PROVIDER: {"name": "FreeRide", "base_url": url, "wire_api": "responses",
                           "experimental_bearer_token": key}})
    return doc.text()


class Reading(unittest.TestCase):
    def test_every_kind_of_value_reads_as_a_toml_loader_reads_it(self):
        self.assertEqual(read(EVERYTHING), EVERYTHING_DATA)

    def test_dates_and_times_are_kept_but_not_read(self):
        text = "a = 1979-05-27 07:32:00Z\nb = 1979-05-27T00:32:00.5-07:00\nc = 07:32:00\n" \
               "d = 1979-05-27\n"
        doc = TomlDocument(text)
        self.assertEqual(doc.data(), {k: freeride.OPAQUE for k in "abcd"})
        doc.set((), "model", "auto")
        self.assertEqual(doc.text(), text + 'model = "auto"\n')

    def test_what_is_not_toml_is_refused_with_its_line(self):
        for what, (text, line) in INVALID.items():
            with self.subTest(what):
                with self.assertRaises(CannotEdit) as caught:
                    TomlDocument(text, "config.toml")
                self.assertIn(f"config.toml line {line}:", str(caught.exception))
                if TOMLLIB:
                    with self.assertRaises(TOMLLIB.TOMLDecodeError):
                        TOMLLIB.loads(text)

    def test_a_new_table_for_each_entry_of_a_list_of_tables_may_repeat(self):
        self.assertEqual(read("[[a]]\n[a.b]\nx = 1\n[[a]]\n[a.b]\nx = 2\n"),
                         {"a": [{"b": {"x": 1}}, {"b": {"x": 2}}]})

    def test_secrets_are_the_strings_of_keys_named_like_one(self):
        doc = TomlDocument('[mcp_servers.gh]\nenv = { GITHUB_TOKEN = "ghp_x" }\n'
                           'bearer_token = "b"\napi_key = 3\nname = "n"\n')
        self.assertEqual(doc.secrets(freeride.SECRET_KEYS), {"ghp_x", "b"})


class Setting(unittest.TestCase):
    def test_an_empty_file_gets_the_keys_then_the_table(self):
        text = bind("")
        self.assertEqual(text, 'model = "auto"\nmodel_provider = "freeride"\n'
                         'model_context_window = 128000\n\n[model_providers.freeride]\n'
                         'name = "FreeRide"\nbase_url = "http://127.0.0.1:11343/v1"\n'
                         'wire_api = "responses"\nexperimental_bearer_token = "freeride-local"\n')
        self.assertEqual(read(text)["model_providers"]["freeride"]["wire_api"], "responses")

    def test_a_key_that_is_there_gets_its_new_value_in_place_and_keeps_its_comment(self):
        text = 'model = "gpt-5-codex"   # mine\napproval_policy = "never"\n'
        self.assertTrue(bind(text).startswith(
            'model = "auto"   # mine\napproval_policy = "never"\nmodel_provider = "freeride"\n'))

    def test_a_value_already_right_is_not_rewritten(self):
        text = "model = 'auto'  # literal\nmodel_provider = \"freeride\"\n" \
               "model_context_window = 128_000\n"
        self.assertTrue(bind(text).startswith(text + "\n[model_providers.freeride]\n"))

    def test_new_top_level_keys_go_after_the_last_one_before_the_first_table(self):
        text = ('a = 1\ninstructions = """\nbe\nbrief\n"""\n\n# profiles\n[profiles.x]\n'
                'model = "o4-mini"\n')
        after = bind(text)
        self.assertTrue(after.startswith('a = 1\ninstructions = """\nbe\nbrief\n"""\n'
                                         'model = "auto"\nmodel_provider = "freeride"\n'
                                         'model_context_window = 128000\n\n# profiles\n'
                                         '[profiles.x]\nmodel = "o4-mini"\n\n'))
        self.assertEqual(read(after)["profiles"], {"x": {"model": "o4-mini"}})

    def test_without_top_level_keys_they_go_above_the_first_table_and_its_comment(self):
        after = bind("# my config\n\n# tools\n[mcp_servers.x]\ncommand = \"x\"\n")
        self.assertTrue(after.startswith('# my config\n\nmodel = "auto"\n'
                                         'model_provider = "freeride"\n'
                                         'model_context_window = 128000\n\n# tools\n'
                                         '[mcp_servers.x]\n'))

    def test_an_existing_provider_table_is_updated_in_place(self):
        text = ('model = "auto"\n[model_providers.freeride]\nname = "FreeRide"\n'
                'base_url = "http://old:1/v1"  # moved\nrequest_max_retries = 4\n\n'
                '[model_providers.freeride.http_headers]\nX-Team = "a"\n\n[tui]\n')
        after = bind(text, url="http://new:2/v1")
        self.assertIn('base_url = "http://new:2/v1"  # moved\nrequest_max_retries = 4\n'
                      'wire_api = "responses"\nexperimental_bearer_token = "freeride-local"\n\n'
                      '[model_providers.freeride.http_headers]\nX-Team = "a"\n\n[tui]\n', after)
        self.assertEqual(after.count("[model_providers.freeride]"), 1)
        self.assertEqual(read(after)["model_providers"]["freeride"]["http_headers"],
                         {"X-Team": "a"})

    def test_a_table_whose_name_needs_quotes(self):
        doc = TomlDocument('[a."b c"]\nx = 1\n')
        doc.set(("a", "b c"), "y", "z")
        doc.set(("a", "d.e"), "k", True)
        self.assertEqual(doc.text(), '[a."b c"]\nx = 1\ny = "z"\n\n[a."d.e"]\nk = true\n')
        self.assertEqual(read(doc.text()), {"a": {"b c": {"x": 1, "y": "z"},
                                                  "d.e": {"k": True}}})

    def test_strings_are_written_with_escapes_and_read_back_the_same(self):
        value = 'a "quote", a \\ backslash, a\nnewline, a \x01 control, \u00e9 and \U0001F600'
        doc = TomlDocument("")
        doc.set((), "s", value)
        self.assertEqual(read(doc.text()), {"s": value})

    def test_every_other_byte_stays_line_ends_bom_and_no_last_newline(self):
        text = '\ufeff# c\r\nmodel = "x" # m\r\n[t]\r\nk = 1'
        doc = TomlDocument(text)
        doc.set((), "model", "auto")
        doc.set(("t",), "j", 2)
        doc.set(("u",), "v", 3)
        self.assertEqual(doc.text(), '\ufeff# c\r\nmodel = "auto" # m\r\n[t]\r\nk = 1\r\nj = 2'
                         '\r\n\r\n[u]\r\nv = 3\r\n')

    def test_a_realistic_file_keeps_its_data_but_the_bound_keys(self):
        text = EVERYTHING + '\n[profiles.fast]\nmodel = "o4-mini"\n'
        before, after = read(text), read(bind(text))
        self.assertEqual({k: v for k, v in after.items() if k not in (
            "model", "model_provider", "model_context_window", "model_providers")}, before)
        self.assertEqual(after["model_providers"]["freeride"]["base_url"],
                         "http://127.0.0.1:11343/v1")


class Refusing(unittest.TestCase):
    """Each refusal leaves the document as it was and names the line."""

    def assertRefused(self, text, line, fragment):
        doc = TomlDocument(text, "config.toml")
        with self.assertRaises(CannotEdit) as caught:
            bind(text)
        message = str(caught.exception)
        self.assertIn(f"config.toml line {line}:", message)
        self.assertIn(fragment, message)
        self.assertEqual(doc.text(), text)

    def test_a_multi_line_string_to_replace(self):
        self.assertRefused('a = 1\nmodel = """\ngpt-5\n"""\n', 2, "multi-line value")
        self.assertRefused('model = """gpt-5"""\n', 1, "multi-line value")
        self.assertRefused("model = '''gpt-5'''\n", 1, "multi-line value")

    def test_an_array_or_inline_table_to_replace_that_spans_lines(self):
        self.assertRefused('model = [\n  "a",\n]\n', 1, "multi-line value")
        self.assertRefused('[model_providers.freeride]\nname = {\n  a = 1 }\n', 2,
                           "multi-line value")

    def test_the_provider_set_with_dotted_keys_from_the_top(self):
        self.assertRefused('model_providers.freeride.name = "x"\n', 1, "dotted key")
        self.assertRefused('model_providers.freeride.retries = 2\n', 1, "dotted key")

    def test_the_provider_as_an_inline_table(self):
        self.assertRefused('[model_providers]\nfreeride = { name = "x" }\n', 2, "inline table")
        self.assertRefused('model_providers = { other = { name = "o" } }\n', 1, "inline table")
        self.assertRefused('[model_providers]\nfreeride.wire_api = "chat"\n', 2, "dotted key")

    def test_a_list_of_tables_of_that_name(self):
        self.assertRefused('[[model_providers.freeride]]\nname = "x"\n', 1, "list of tables")
        self.assertRefused('[[model_providers]]\nname = "x"\n', 1, "list of tables")

    def test_a_key_to_set_that_is_a_table(self):
        self.assertRefused('model.x = 1\n', 1, "dotted key")
        self.assertRefused('[model_providers.freeride.name]\nx = 1\n', 1, "a table")

    def test_other_lists_of_tables_and_dotted_keys_are_fine(self):
        text = ('[[hooks]]\nrun = "x"\nprofiles.fast.model = "o4-mini"\n'
                '[model_providers.freeride.query_params]\nv = "1"\n')
        self.assertIn('[model_providers.freeride]\nname = "FreeRide"', bind(text))


if __name__ == "__main__":
    unittest.main()
