"""The README tells the truth: its commands and variables are the ones the code has."""
import re
import unittest

import freeride
import providers
from tests.support import ROOT

README = (ROOT / "README.md").read_text()
SOURCE = (ROOT / "freeride.py").read_text()


class ReadmeTest(unittest.TestCase):
    def test_set_up_is_the_run_command_and_the_test_command(self):
        blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
        self.assertEqual(blocks[0].strip(), "python3 -m freeride serve")
        self.assertEqual(blocks[1].strip(), "python3 -m unittest")
        self.assertIn("-m unittest", (ROOT / ".ci/run").read_text())

    def test_install_shows_the_three_ways_the_offline_recipe_and_windows(self):
        install = README.split("## Install", 1)[1].split("\n## ", 1)[0]
        for text in ("python3 -m freeride pack", "python3 freeride.pyz serve", "sh install.sh",
                     "sh install.sh --uninstall", "pip install --no-index --no-build-isolation .",
                     "pipx install", "locked-down machine", "py freeride.pyz serve"):
            self.assertIn(text, install)

    def test_every_subcommand_is_documented(self):
        parser = freeride.build_parser()
        commands = next(a for a in parser._actions if a.dest == "command").choices
        for name in commands:
            self.assertIn(f"freeride {name}", README)

    def test_every_freeride_variable_the_code_reads_is_documented(self):
        for var in set(re.findall(r'"(FREERIDE_[A-Z_]+)"', SOURCE)):
            self.assertTrue(f"`{var}" in README, f"{var} is not in the README")

    def test_every_provider_and_its_variables_are_documented(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                self.assertIn(f"`{name}`", README)
                for var in cls.key_vars + (cls.account_var, cls.models_override_var,
                                           cls.base_url_var or f"{name.upper()}_BASE_URL"):
                    if var:
                        self.assertIn(f"`{var}", README)
                if cls.models:  # a local server serves what it has loaded
                    self.assertIn(f"{cls.models[0].id}", README)


if __name__ == "__main__":
    unittest.main()
