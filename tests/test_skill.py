"""The Claude Code skill and its plugin files (issue 20) never go stale: every command, flag,
variable, route and file the skill names exists, and the manifests have what Claude Code
requires."""
import contextlib
import io
import json
import re
import tempfile
import unittest
from pathlib import Path

import freeride
from tests.support import ROOT

SKILL = ROOT / "skills" / "freeride" / "SKILL.md"
README = (ROOT / "README.md").read_text()


def frontmatter(text):
    """The `key: value` lines between the leading --- lines (what Claude Code reads)."""
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    if match is None:
        raise AssertionError("no frontmatter")
    fields = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
            raise AssertionError(f"not a frontmatter line: {line!r}")
        fields[key] = value.strip()
    return fields


class Skill(unittest.TestCase):
    text = SKILL.read_text()

    def test_the_frontmatter_names_it_and_says_when_to_use_it(self):
        fields = frontmatter(self.text)
        self.assertEqual(fields["name"], "freeride")
        for trigger in ("FreeRide", "127.0.0.1:11343", "free tier"):
            self.assertIn(trigger.lower(), fields["description"].lower())
        self.assertLessEqual(len(fields["description"]), 1024)

    def test_every_command_and_flag_it_names_exists(self):
        parser = freeride.build_parser()
        commands = next(a for a in parser._actions if a.dest == "command").choices
        named = set(re.findall(r"`freeride ([a-z]+)", self.text))
        self.assertTrue(named)
        for name in named:
            self.assertIn(name, commands, f"freeride {name}")
        helps = ""
        for name in commands:  # what `freeride <command> --help` says (agent commands load late)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), self.assertRaises(SystemExit):
                freeride.build_parser().parse_args([name, "--help"])
            helps += out.getvalue()
        for flag in set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", self.text)):
            self.assertRegex(helps, rf"(?<![\w-]){flag}\b")

    def test_every_variable_and_route_it_names_exists(self):
        variables = set(re.findall(r"\b((?:FREERIDE|OPENAI|ANTHROPIC|[A-Z]+)_[A-Z_]*"
                                   r"(?:KEY|TOKEN|URL|BASE|PORT|HOME|KEYLESS))\b", self.text))
        self.assertIn("FREERIDE_API_KEY", variables)
        for var in variables:
            self.assertIn(var, README, f"{var} is not documented")
        gateway = freeride.Gateway(freeride.Config(env={"FREERIDE_HOME": tempfile.mkdtemp(),
                                                        "FREERIDE_LOCAL": "0"}, port=0))
        try:
            routes = set(gateway.routes)
        finally:
            gateway.close()
        for route in set(re.findall(r"`(?:curl -s \S+?)?(/(?:v1|health|freeride)[\w/]*)", self.text)):
            self.assertIn(route.rstrip("/"), routes)

    def test_the_files_it_and_its_readme_name_exist(self):
        readme = (ROOT / "skills" / "README.md").read_text()
        for path in re.findall(r"`((?:skills|\.claude-plugin)/[\w./-]+)`", readme + self.text):
            self.assertTrue((ROOT / path).exists(), path)
        self.assertIn("~/.claude/skills/", readme)


class PluginFiles(unittest.TestCase):
    def test_the_plugin_manifest_has_what_claude_code_requires(self):
        manifest = json.loads((ROOT / ".claude-plugin" / "plugin.json").read_text())
        self.assertEqual(manifest["name"], "freeride")
        self.assertRegex(manifest["name"], r"^[a-z0-9-]+$")
        self.assertEqual(manifest["version"], freeride.__version__)
        self.assertIsInstance(manifest["description"], str)

    def test_the_marketplace_lists_the_plugin_at_this_repository(self):
        market = json.loads((ROOT / ".claude-plugin" / "marketplace.json").read_text())
        self.assertRegex(market["name"], r"^[a-z0-9-]+$")
        self.assertIsInstance(market["owner"]["name"], str)
        [plugin] = market["plugins"]
        self.assertEqual(plugin["name"], "freeride")
        self.assertTrue(plugin["source"].startswith("./"))
        self.assertTrue((ROOT / plugin["source"] / "skills" / "freeride" / "SKILL.md").exists())


if __name__ == "__main__":
    unittest.main()
