"""`freeride bind <agent>` and `freeride unbind <agent>` on a temp home that already holds a
realistic, commented user config: the gateway lands where each agent reads it, nothing else
changes, a backup comes first, unbind restores the original byte for byte, and a file that
does not parse is never touched."""
import difflib
import json
import time
import unittest

import freeride
import providers
from tests.support import GatewayTest
from tests.temphome import HomeTest

AIDER = """\
##########################################################
# Sample .aider.conf.yml
# Place in your home dir, or at the root of your git repo.
##########################################################

## Specify the model to use for the main chat
model: sonnet   # my daily driver

## Specify the OpenAI API key
#openai-api-key: xxx

## Use colors suitable for a dark terminal background (default: False)
dark-mode: true

## Enable/disable auto commit of LLM changes (default: True)
auto-commits: false

## Specify a read-only file (can be used multiple times)
read:
  - CONVENTIONS.md
  - "docs/style guide.md"

anthropic-api-key: sk-ant-api03-aidersecretvalue
"""

CONTINUE = """\
# Continue config: https://docs.continue.dev/reference
name: My Assistant
version: 1.0.0
schema: v1

models:
  - name: Codestral
    provider: mistral
    apiKey: codestral-secretvalue
    model: codestral-latest
    roles:
      - autocomplete
  # the local one, for autocomplete offline
  - name: Qwen Coder local
    provider: ollama
    model: qwen2.5-coder:7b
    roles:
      - autocomplete
  - name: Claude
    provider: anthropic
    model: claude-sonnet-4-5
    apiKey: sk-ant-api03-continuesecret   # paid
    roles: [chat, edit]

context:
  - provider: code
  - provider: docs

rules:
  - Give short answers   # a rule
  - |
    When writing Python, follow PEP 8.
    Prefer pathlib over os.path.
"""

HERMES = """\
# Hermes Agent configuration (~/.hermes/config.yaml)
model:
  default: "anthropic/claude-opus-4.6"   # the one I pay for
  provider: "openrouter"
  base_url: "https://openrouter.ai/api/v1"
  api_key: "sk-or-v1-hermesmodelsecret"

auxiliary:
  vision:
    provider: "openrouter"
    model: "google/gemini-2.5-flash"
    api_key: "sk-or-v1-hermesvisionsecret"

terminal:
  backend: local
  cwd: "."
  timeout: 180

agent:
  max_turns: 60
  personality: >
    helpful and
    concise

toolsets:
  - all
compression:
  enabled: true
  threshold: 0.85
"""

OPENCLAW = {
    "meta": {"lastTouchedVersion": "2026.1.29"},
    "agents": {"defaults": {
        "workspace": "~/.openclaw/workspace",
        "model": {"primary": "anthropic/claude-opus-4-5",
                  "fallbacks": ["openrouter/meta-llama/llama-3.3-70b-instruct:free"]},
        "models": {"anthropic/claude-opus-4-5": {"alias": "opus"}}}},
    "channels": {"telegram": {"enabled": True, "botToken": "123456:ABC-telegramsecret"}},
    "gateway": {"port": 18789, "mode": "local",
                "auth": {"mode": "token", "token": "oc-gateway-tokensecret"}},
}

LLM_MODELS = """\
# my OpenAI-compatible models
- model_id: lmstudio-qwen
  model_name: qwen2.5-7b-instruct
  api_base: "http://localhost:1234/v1"
  # no key needed
- model_id: together-llama
  model_name: meta-llama/Llama-3.3-70B-Instruct-Turbo
  api_base: https://api.together.xyz/v1
  api_key_name: together
"""

LLM_KEYS = {"// Note": "This file stores secret API credentials. Do not share!",
            "openai": "sk-proj-openaisecretvalue", "together": "tgp_v1_togethersecret"}

# The smallest window among the models `auto` asks each provider for (their tables' first).
AUTO_WINDOW = min(cls.models[0].context for cls in providers.REGISTRY.values()
                  if cls.models and cls.models[0].context)


class BinderContract:
    """What every binder must do; a subclass per agent sets the data and the checks."""
    agent = ""
    files = {}       # relative path -> the user's config before bind
    broken = {}      # relative path -> a config that does not parse
    owned = set()    # YAML keys whose lines bind may change
    secrets = ()     # the user's secrets that must never be printed

    def setUp(self):
        super().setUp()
        for relative, text in self.files.items():
            self.write(relative, text, 0o640)

    def paths(self):
        return [self.home / relative for relative in self.files]

    def assert_bound(self, model="auto"):
        raise NotImplementedError

    def assert_others_unchanged(self, path, before, after):
        """Every line bind replaced or removed holds a key bind owns; every comment stays."""
        old, new = before.splitlines(), after.splitlines()
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        for tag, i1, i2, _, _ in matcher.get_opcodes():
            for line in old[i1:i2] if tag in ("replace", "delete") else ():
                key = line.strip().lstrip("- ").split(":")[0]
                self.assertIn(key, self.owned, f"{path.name}: bind changed {line!r}")
        for line in old:
            if line.strip().startswith("#"):
                self.assertIn(line, new)

    def test_bind_writes_the_gateway_where_the_agent_reads_it(self):
        result = self.run_cli("bind", self.agent)
        self.assertEqual(result.code, 0, result)
        self.assert_bound()
        self.assertIn(f"freeride unbind {self.agent}", result.out)
        self.assertIn("hot reload:" if freeride.AGENTS[self.agent].hot_reload
                      else "restart needed:", result.out)

    def test_every_other_setting_and_comment_is_unchanged(self):
        self.run_cli("bind", self.agent)
        for path, (relative, text) in zip(self.paths(), self.files.items()):
            self.assert_others_unchanged(path, text, path.read_text())

    def test_the_diff_is_printed_without_the_users_secrets(self):
        result = self.run_cli("bind", self.agent)
        self.assertIn("+++ ", result.out)
        self.assertIn("[redacted]", result.out, "no secret within the diff: the test proves nothing")
        for secret in self.secrets:
            self.assertNotIn(secret, result.out + result.err)

    def test_a_backup_of_the_old_file_is_written_first(self):
        self.run_cli("bind", self.agent)
        for path, text in zip(self.paths(), self.files.values()):
            [backup] = self.backups(path)
            self.assertEqual(backup.read_text(), text)
            self.assertEqual(backup.stat().st_mode & 0o777, 0o640)
            self.assertRegex(backup.name, r"\.freeride-backup-\d{8}-\d{6}$")

    def test_the_files_permissions_are_kept(self):
        self.run_cli("bind", self.agent)
        for path in self.paths():
            self.assertEqual(path.stat().st_mode & 0o777, 0o640)

    def test_unbind_restores_the_original_byte_for_byte(self):
        before = {p: (p.read_bytes(), p.stat().st_mode) for p in self.paths()}
        self.run_cli("bind", self.agent)
        result = self.run_cli("unbind", self.agent)
        self.assertEqual(result.code, 0, result)
        self.assertEqual({p: (p.read_bytes(), p.stat().st_mode) for p in self.paths()}, before)
        self.assertFalse((self.home / ".freeride" / "bind" / f"{self.agent}.json").exists())

    def test_unbind_after_binding_twice_restores_what_was_there_before_the_first_bind(self):
        before = {p: p.read_bytes() for p in self.paths()}
        self.run_cli("bind", self.agent)
        self.assertEqual(self.run_cli("bind", self.agent, "--model", "llama-3.3-70b").code, 0)
        self.assert_bound("llama-3.3-70b")
        self.run_cli("unbind", self.agent)
        self.assertEqual({p: p.read_bytes() for p in self.paths()}, before)

    def test_dry_run_prints_the_diff_and_writes_nothing(self):
        before = self.snapshot()
        result = self.run_cli("bind", self.agent, "--dry-run")
        self.assertEqual(result.code, 0, result)
        self.assertIn("+++ ", result.out)
        self.assertIn("dry run", result.out)
        self.assertEqual(self.snapshot(), before)
        self.run_cli("bind", self.agent)
        before = self.snapshot()
        result = self.run_cli("unbind", self.agent, "--dry-run")
        self.assertIn("--- ", result.out)
        self.assertEqual(self.snapshot(), before)

    def test_an_unparseable_file_is_left_untouched_with_a_non_zero_exit(self):
        for relative, text in self.broken.items():
            self.write(relative, text, 0o640)
        before = self.snapshot()
        result = self.run_cli("bind", self.agent)
        self.assertEqual(result.code, 1, result)
        self.assertIn(next(iter(self.broken)).split("/")[-1], result.err)
        self.assertIn("Nothing was changed", result.err)
        self.assertIn("by hand", result.err)
        self.assertEqual(self.snapshot(), before)

    def test_binding_twice_changes_nothing_the_second_time(self):
        self.run_cli("bind", self.agent)
        before = self.snapshot()
        result = self.run_cli("bind", self.agent)
        self.assertEqual(result.code, 0, result)
        self.assertIn("nothing changed", result.out)
        self.assertNotIn("+++", result.out)
        self.assertEqual(self.snapshot(), before)

    def test_bind_creates_a_missing_file_and_unbind_deletes_it(self):
        for path in self.paths():
            path.unlink()
        result = self.run_cli("bind", self.agent)
        self.assertEqual(result.code, 0, result)
        self.assert_bound()
        for path in self.paths():
            self.assertEqual(path.stat().st_mode & 0o777, 0o600)
            self.assertEqual(self.backups(path), [])
        self.run_cli("unbind", self.agent)
        for path in self.paths():
            self.assertFalse(path.exists())


class AiderTest(BinderContract, HomeTest):
    agent = "aider"
    files = {".aider.conf.yml": AIDER}
    broken = {".aider.conf.yml": 'model: "sonnet\ndark-mode: true\n'}
    owned = {"model", "openai-api-base", "openai-api-key", "weak-model", "editor-model"}
    secrets = ("sk-ant-api03-aidersecretvalue",)

    def config(self, path=None):
        doc = freeride.YamlDocument((path or self.home / ".aider.conf.yml").read_text())
        return {key: doc.get((key,)) for key in doc.root.entries}

    def assert_bound(self, model="auto"):
        config = self.config()
        self.assertEqual(config["openai-api-base"], f"http://127.0.0.1:{self.port}/v1")
        self.assertEqual(config["openai-api-key"], "freeride-local")
        for key in ("model", "weak-model", "editor-model"):
            self.assertEqual(config[key], "openai/" + model)

    def test_model_names_always_get_aiders_openai_prefix(self):
        self.run_cli("bind", "aider", "--model", "openai/gpt-oss-120b")
        self.assertEqual(self.config()["model"], "openai/openai/gpt-oss-120b")

    def test_the_new_keys_go_at_the_end_and_the_model_line_keeps_its_comment(self):
        self.run_cli("bind", "aider")
        text = (self.home / ".aider.conf.yml").read_text()
        self.assertIn("model: openai/auto   # my daily driver\n", text)
        self.assertTrue(text.endswith("anthropic-api-key: sk-ant-api03-aidersecretvalue\n"
                                      f"openai-api-base: http://127.0.0.1:{self.port}/v1\n"
                                      "openai-api-key: freeride-local\nweak-model: openai/auto\n"
                                      "editor-model: openai/auto\n"))

    def test_scope_cwd_and_git_write_those_files_and_unbind_can_undo_one(self):
        repo = self.home / "work" / "repo"
        (repo / ".git").mkdir(parents=True)
        self.cwd = repo / "src"
        self.cwd.mkdir()
        self.assertEqual(self.run_cli("bind", "aider", "--scope", "cwd").code, 0)
        self.assertEqual(self.run_cli("bind", "aider", "--scope", "git").code, 0)
        for path in (self.cwd / ".aider.conf.yml", repo / ".aider.conf.yml"):
            self.assertEqual(self.config(path)["model"], "openai/auto")
        self.assertEqual(self.run_cli("unbind", "aider", "--scope", "cwd").code, 0)
        self.assertFalse((self.cwd / ".aider.conf.yml").exists())
        self.assertTrue((repo / ".aider.conf.yml").exists())
        self.assertEqual((self.home / ".aider.conf.yml").read_text(), AIDER)
        self.run_cli("unbind", "aider")
        self.assertFalse((repo / ".aider.conf.yml").exists())

    def test_scope_git_outside_a_repository_is_an_error(self):
        result = self.run_cli("bind", "aider", "--scope", "git")
        self.assertEqual(result.code, 1)
        self.assertIn("not inside a git repository", result.err)

    def test_scope_is_refused_for_other_agents(self):
        result = self.run_cli("bind", "continue", "--scope", "cwd")
        self.assertEqual(result.code, 2)
        self.assertIn("--scope is for aider only", result.err)

    def test_the_gateway_url_and_key_come_from_flags_then_the_environment(self):
        self.run_cli("bind", "aider", FREERIDE_API_KEY="gateway-secret-123")
        self.assertEqual(self.config()["openai-api-key"], "gateway-secret-123")
        result = self.run_cli("bind", "aider", "--gateway-url", "http://10.0.0.5:9000/v1/",
                              "--api-key", "my-own-key-42")
        self.assertEqual(self.config()["openai-api-base"], "http://10.0.0.5:9000/v1")
        self.assertEqual(self.config()["openai-api-key"], "my-own-key-42")
        self.assertNotIn("gateway-secret-123", result.out)
        result = self.run_cli("bind", "aider", "--dry-run", FREERIDE_PORT="")
        self.assertIn("openai-api-base: http://127.0.0.1:11343/v1", result.out)

    def test_a_short_or_placeholder_key_gets_a_warning(self):
        for key in ("any", "sk-xxx", "abc"):
            result = self.run_cli("bind", "aider", "--api-key", key)
            self.assertIn("treat a key like", result.err)
        self.assertNotIn("treat a key like", self.run_cli("bind", "aider").err)

    def test_it_says_when_no_gateway_answers(self):
        result = self.run_cli("bind", "aider")
        self.assertIn(f"no gateway answers at http://127.0.0.1:{self.port}/v1", result.out)

    def test_a_symlinked_config_stays_a_symlink(self):
        target = self.write("dotfiles/aider.yml", AIDER, 0o640)
        link = self.home / ".aider.conf.yml"
        link.unlink()
        link.symlink_to(target)
        self.run_cli("bind", "aider")
        self.assertTrue(link.is_symlink())
        self.assertEqual(self.config(target)["model"], "openai/auto")
        self.run_cli("unbind", "aider")
        self.assertEqual(target.read_text(), AIDER)

    def test_a_file_changed_after_bind_is_backed_up_before_unbind_restores(self):
        self.run_cli("bind", "aider")
        path = self.home / ".aider.conf.yml"
        edited = path.read_text() + "map-tokens: 2048\n"
        path.write_text(edited)
        self.run_cli("unbind", "aider")
        self.assertEqual(path.read_text(), AIDER)
        self.assertEqual(self.backups(path)[-1].read_text(), edited)

    def test_unbind_without_a_bind_says_there_is_nothing_to_undo(self):
        before = self.snapshot()
        result = self.run_cli("unbind", "aider")
        self.assertEqual(result.code, 0)
        self.assertIn("nothing to undo", result.out)
        self.assertEqual(self.snapshot(), before)


class ContinueTest(BinderContract, HomeTest):
    agent = "continue"
    files = {".continue/config.yaml": CONTINUE}
    broken = {".continue/config.yaml": "models:\n  - name: a\n   provider: b\n"}
    owned = set()  # bind only adds its own list item
    secrets = ("codestral-secretvalue", "sk-ant-api03-continuesecret")

    def freeride_model(self, path=None):
        doc = freeride.YamlDocument((path or self.home / ".continue/config.yaml").read_text())
        return doc, doc.get(("models", 0))

    def assert_bound(self, model="auto"):
        doc, entry = self.freeride_model()
        self.assertEqual(entry, {"name": "FreeRide", "provider": "openai", "model": model,
                                 "apiBase": f"http://127.0.0.1:{self.port}/v1",
                                 "apiKey": "freeride-local", "roles": ["chat", "edit", "apply"]})
        self.assertEqual(doc.get(("schema",)), "v1")
        self.assertTrue(doc.get(("name",)) and doc.get(("version",)))

    def test_the_users_models_stay_after_freeride(self):
        self.run_cli("bind", "continue")
        doc, _ = self.freeride_model()
        self.assertEqual([m["name"] for m in doc.get(("models",))],
                         ["FreeRide", "Codestral", "Qwen Coder local", "Claude"])

    def test_continues_own_starter_file_with_an_empty_model_list(self):
        self.write(".continue/config.yaml", "name: Local Assistant\nversion: 1.0.0\nschema: v1\n"
                   "models: []\ncontext:\n  - provider: code\n")
        self.run_cli("bind", "continue")
        self.assert_bound()
        self.assertEqual(self.freeride_model()[0].get(("context",)), [{"provider": "code"}])

    def test_continue_global_dir_moves_the_file(self):
        result = self.run_cli("bind", "continue", CONTINUE_GLOBAL_DIR=str(self.home / "cfg"))
        self.assertEqual(result.code, 0, result)
        _, entry = self.freeride_model(self.home / "cfg" / "config.yaml")
        self.assertEqual(entry["name"], "FreeRide")
        self.assertEqual((self.home / ".continue/config.yaml").read_text(), CONTINUE)


class HermesTest(BinderContract, HomeTest):
    agent = "hermes"
    files = {".hermes/config.yaml": HERMES}
    broken = {".hermes/config.yaml": "model:\n\tdefault: x\n"}
    owned = {"default", "provider", "base_url", "api_key", "context_length"}
    secrets = ("sk-or-v1-hermesmodelsecret", "sk-or-v1-hermesvisionsecret")

    def model_block(self, path=None):
        doc = freeride.YamlDocument((path or self.home / ".hermes/config.yaml").read_text())
        return doc.get(("model",))

    def assert_bound(self, model="auto"):
        self.assertEqual(self.model_block(), {
            "default": model, "provider": "custom", "base_url": f"http://127.0.0.1:{self.port}/v1",
            "api_key": "freeride-local", "context_length": freeride.hermes_context(model)})

    def test_the_context_length_is_a_window_the_models_really_have_and_at_least_64k(self):
        self.run_cli("bind", "hermes")
        self.assertEqual(self.model_block()["context_length"], AUTO_WINDOW)
        self.assertEqual(freeride.served_context("auto")[0], AUTO_WINDOW)
        self.run_cli("bind", "hermes", "--model", "llama-3.3-70b")  # 24K on Cloudflare
        self.assertEqual(freeride.served_context("llama-3.3-70b")[0], 24000)
        self.assertEqual(self.model_block()["context_length"], 131072, "the smallest over 64K")

    def test_an_older_single_value_model_setting_becomes_the_model_block(self):
        self.write(".hermes/config.yaml", "model: anthropic/claude-opus-4.6  # old style\n"
                   "toolsets:\n  - all\n")
        self.run_cli("bind", "hermes")
        self.assert_bound()
        self.run_cli("unbind", "hermes")
        self.assertEqual((self.home / ".hermes/config.yaml").read_text(),
                         "model: anthropic/claude-opus-4.6  # old style\ntoolsets:\n  - all\n")

    def test_hermes_home_moves_the_file(self):
        self.run_cli("bind", "hermes", HERMES_HOME=str(self.home / "h"))
        self.assertEqual(self.model_block(self.home / "h" / "config.yaml")["provider"], "custom")


class HermesAgainstTheGatewayTest(GatewayTest):
    def test_hermes_start_up_probes_get_a_fast_404(self):
        self.start_gateway(groq="gsk-a")
        for path in ("/api/tags", "/v1/props", "/props", "/version", "/api/version"):
            started = time.monotonic()
            response = self.call("GET", path)
            self.assertEqual(response.status, 404, path)
            self.assertLess(time.monotonic() - started, 1.0)

    def test_the_gateway_advertises_the_context_length_bind_writes_for_hermes(self):
        self.start_gateway(openrouter="or-a", groq="gsk-a", nvidia="nv-a", cloudflare="cf-a",
                           huggingface="hf-a")
        models = {m["id"]: m for m in self.call("GET", "/v1/models").json()["data"]}
        self.assertEqual(models["auto"]["context_length"], freeride.hermes_context("auto"))
        self.assertGreaterEqual(models["auto"]["context_length"], 65536)


class OpenClawTest(BinderContract, HomeTest):
    agent = "openclaw"
    files = {".openclaw/openclaw.json": json.dumps(OPENCLAW, indent=2) + "\n"}
    broken = {".openclaw/openclaw.json": '{"agents": {"defaults": '}
    secrets = ("123456:ABC-telegramsecret", "oc-gateway-tokensecret")

    def config(self):
        return json.loads((self.home / ".openclaw/openclaw.json").read_text())

    def assert_bound(self, model="auto"):
        config = self.config()
        self.assertEqual(config["models"]["mode"], "merge")
        provider = config["models"]["providers"]["freeride"]
        self.assertEqual({k: provider[k] for k in ("baseUrl", "apiKey", "api")},
                         {"baseUrl": f"http://127.0.0.1:{self.port}/v1",
                          "apiKey": "freeride-local", "api": "openai-completions"})
        self.assertEqual(provider["models"][0], {
            "id": model, "name": f"FreeRide {model}", "reasoning": False, "input": ["text"],
            "contextWindow": freeride.served_context(model)[0], "maxTokens": 8192})
        self.assertEqual(config["agents"]["defaults"]["model"]["primary"], f"freeride/{model}")

    def assert_others_unchanged(self, path, before, after):
        old, new = json.loads(before), json.loads(after)
        self.assertEqual({k: new[k] for k in old if k != "agents"},
                         {k: old[k] for k in old if k != "agents"})
        defaults = new["agents"]["defaults"]
        self.assertEqual(defaults["workspace"], "~/.openclaw/workspace")
        self.assertEqual(defaults["model"]["fallbacks"],
                         OPENCLAW["agents"]["defaults"]["model"]["fallbacks"])
        self.assertEqual(defaults["models"], {"anthropic/claude-opus-4-5": {"alias": "opus"},
                                              "freeride/auto": {}})
        self.assertEqual(list(new)[:len(old)], list(old))

    def test_a_file_with_comments_is_refused_untouched(self):
        text = '{\n  // my settings\n  "gateway": {"port": 18789},\n}\n'
        self.write(".openclaw/openclaw.json", text)
        result = self.run_cli("bind", "openclaw")
        self.assertEqual(result.code, 1)
        self.assertIn("has comments (JSON5)", result.err)
        self.assertIn('"primary": "freeride/auto"', result.err)  # what to add by hand
        self.assertEqual((self.home / ".openclaw/openclaw.json").read_text(), text)

    def test_trailing_commas_are_read_and_the_file_keeps_its_indentation(self):
        self.write(".openclaw/openclaw.json", '{\n    "gateway": {"port": 18789,},\n}\n')
        self.assertEqual(self.run_cli("bind", "openclaw").code, 0)
        text = (self.home / ".openclaw/openclaw.json").read_text()
        self.assertTrue(text.startswith('{\n    "gateway": {\n        "port": 18789\n    },'))
        self.assert_bound()

    def test_a_file_that_already_holds_the_settings_is_not_reformatted(self):
        self.run_cli("bind", "openclaw")
        compact = json.dumps(self.config(), separators=(",", ":"))
        self.write(".openclaw/openclaw.json", compact)
        result = self.run_cli("bind", "openclaw")
        self.assertIn("nothing changed", result.out)
        self.assertEqual((self.home / ".openclaw/openclaw.json").read_text(), compact)

    def test_a_model_given_as_a_string_becomes_primary(self):
        self.write(".openclaw/openclaw.json", '{"agents": {"defaults": {"model": "x/y"}}}')
        self.run_cli("bind", "openclaw")
        self.assertEqual(self.config()["agents"]["defaults"]["model"], {"primary": "freeride/auto"})

    def test_openclaw_config_path_moves_the_file(self):
        path = self.home / "elsewhere.json"
        self.run_cli("bind", "openclaw", OPENCLAW_CONFIG_PATH=str(path))
        self.assertEqual(json.loads(path.read_text())["agents"]["defaults"]["model"]["primary"],
                         "freeride/auto")


class LlmTest(BinderContract, HomeTest):
    agent = "llm"
    files = {"llm/extra-openai-models.yaml": LLM_MODELS,
             "llm/keys.json": json.dumps(LLM_KEYS, indent=2) + "\n"}
    broken = {"llm/extra-openai-models.yaml": "- model_id: a\n  api_base: &base http://x\n"}
    owned = set()
    secrets = ("sk-proj-openaisecretvalue", "tgp_v1_togethersecret")

    def setUp(self):
        super().setUp()
        self.env["LLM_USER_PATH"] = str(self.home / "llm")

    def assert_others_unchanged(self, path, before, after):
        if path.suffix == ".json":
            new = json.loads(after)
            self.assertEqual({k: new[k] for k in LLM_KEYS}, LLM_KEYS)
        else:
            super().assert_others_unchanged(path, before, after)

    def assert_bound(self, model="auto"):
        doc = freeride.YamlDocument((self.home / "llm/extra-openai-models.yaml").read_text())
        entry = next(m for m in doc.get(()) if m["model_id"] == "freeride")
        self.assertEqual(entry, {"model_id": "freeride", "model_name": model,
                                 "api_base": f"http://127.0.0.1:{self.port}/v1",
                                 "api_key_name": "freeride", "supports_tools": True})
        self.assertEqual(json.loads((self.home / "llm/keys.json").read_text())["freeride"],
                         "freeride-local")

    def test_a_keys_json_that_is_not_json_is_left_untouched_with_a_non_zero_exit(self):
        broken = '{\n  "openai": "sk-proj-openaisecretvalue",\n  "together": "tgp_v1_togethersecret"\n'
        keys = self.write("llm/keys.json", broken, 0o600)  # its closing brace lost
        before = self.snapshot()
        result = self.run_cli("bind", "llm")
        self.assertEqual(result.code, 1, result)
        self.assertIn(f"{keys} is not JSON", result.err)
        self.assertIn("Nothing was changed", result.err)
        self.assertIn("by hand", result.err)
        self.assertEqual(keys.read_bytes(), broken.encode())
        self.assertEqual(self.snapshot(), before, "the models file is not written either")
        for secret in self.secrets:
            self.assertNotIn(secret, result.out + result.err)

    def test_without_llm_user_path_the_files_go_in_llms_app_dir(self):
        del self.env["LLM_USER_PATH"]
        self.run_cli("bind", "llm")
        folder = self.home / ".config" / "io.datasette.llm"
        self.assertTrue((folder / "extra-openai-models.yaml").exists())
        self.assertTrue((folder / "keys.json").exists())

    def test_the_app_dir_follows_the_platform(self):
        home = self.home
        self.assertEqual(freeride.llm_user_dir({}, home, "darwin"),
                         home / "Library" / "Application Support" / "io.datasette.llm")
        self.assertEqual(freeride.llm_user_dir({"APPDATA": "C:/AppData"}, home, "win32"),
                         freeride.Path("C:/AppData") / "io.datasette.llm")
        self.assertEqual(freeride.llm_user_dir({}, home, "linux"),
                         home / ".config" / "io.datasette.llm")
        self.assertEqual(freeride.llm_user_dir({"LLM_USER_PATH": "/x"}, home, "linux"),
                         freeride.Path("/x"))


if __name__ == "__main__":
    unittest.main()
