"""`freeride bind claude` and `freeride bind codex` on a temp home holding a realistic user
config (the same contract as the other binders: tests.test_bind.BinderContract), the details
of each file, and the bound settings answering through a gateway in front of a fake provider."""
import difflib
import http.client
import json
import unittest
import urllib.parse

import freeride
import providers
from tests import fakes
from tests.sse import named_events
from tests.temphome import HomeTest
from tests.test_bind import BinderContract
from tests.test_toml_edit import TOMLLIB

CODEX = '''\
# ~/.codex/config.toml
# Docs: https://github.com/openai/codex/blob/main/docs/config.md

model = "gpt-5-codex"            # the default model
model_reasoning_effort = "high"
approval_policy = "on-request"
sandbox_mode = "workspace-write"
notify = ["notify-send", "Codex"]
developer_instructions = """
Prefer small diffs.
Run the tests before saying done.
"""

[sandbox_workspace_write]
network_access = false
writable_roots = [
  "/tmp",                  # scratch
  '/home/me/.cache',
]

# A faster profile: `codex --profile fast`
[profiles.fast]
model = "gpt-5-codex-mini"
model_provider = "openai"
approval_policy = "never"

[profiles.local]
model = "qwen2.5-coder:14b"
model_provider = "ollama"

[model_providers.ollama]
name = "Ollama"
base_url = "http://localhost:11434/v1"

[model_providers.azure]
name = "Azure"
base_url = "https://my-project.openai.azure.com/openai"
env_key = "AZURE_OPENAI_API_KEY"
query_params = { api-version = "2025-04-01-preview" }
wire_api = "responses"

[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env = { GITHUB_PERSONAL_ACCESS_TOKEN = "ghp_codexsecretvalue123" }

[tui]
notifications = true

[mcp_servers."docs server"]
url = "https://docs.example.com/mcp"
bearer_token = "docs-bearer-secret-456"
'''

CODEX_OWNED = ("model", "model_provider", "model_context_window")

CLAUDE = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "model": "opus",
    "permissions": {"allow": ["Bash(npm run test:*)", "Read(~/.zshrc)"],
                    "deny": ["Read(./.env)", "Read(./secrets/**)"],
                    "defaultMode": "acceptEdits"},
    "env": {"BASH_DEFAULT_TIMEOUT_MS": "120000", "DISABLE_TELEMETRY": "1",
            "GITHUB_TOKEN": "ghp_claudesecretvalue789",
            "ANTHROPIC_AUTH_TOKEN": "sk-ant-oat01-claudesecret"},
    "hooks": {"PostToolUse": [{"matcher": "Edit|Write", "hooks": [
        {"type": "command", "command": "prettier --write \"$CLAUDE_FILE_PATHS\""}]}]},
    "includeCoAuthoredBy": False,
    "statusLine": {"type": "command", "command": "~/.claude/statusline.sh"},
}

CLAUDE_VARIABLES = ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL",
                    "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                    "ANTHROPIC_DEFAULT_HAIKU_MODEL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")

# The smallest window among the models `auto` asks each provider for (their tables' first).
AUTO_WINDOW = min(cls.models[0].context for cls in providers.REGISTRY.values()
                  if cls.models and cls.models[0].context)


def read_toml(text):
    """config.toml as data: by FreeRide's reader and, on 3.11+, the same by tomllib."""
    data = freeride.TomlDocument(text).data()
    if TOMLLIB:
        assert data == TOMLLIB.loads(text)
    return data


class ClaudeTest(BinderContract, HomeTest):
    agent = "claude"
    files = {".claude/settings.json": json.dumps(CLAUDE, indent=2) + "\n"}
    broken = {".claude/settings.json": '{"env": {"A": "1",\n'}
    secrets = ("ghp_claudesecretvalue789", "sk-ant-oat01-claudesecret")

    def settings(self, path=None):
        return json.loads((path or self.home / ".claude/settings.json").read_text())

    def assert_bound(self, model="auto"):
        variables = self.settings()["env"]
        self.assertEqual({k: variables[k] for k in CLAUDE_VARIABLES}, {
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "ANTHROPIC_AUTH_TOKEN": "freeride-local", "ANTHROPIC_MODEL": model,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": model, "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})

    def assert_others_unchanged(self, path, before, after):
        old, new = json.loads(before), json.loads(after)
        self.assertEqual(list(new), list(old))
        self.assertEqual({k: v for k, v in new.items() if k != "env"},
                         {k: v for k, v in old.items() if k != "env"})
        self.assertEqual({k: v for k, v in new["env"].items() if k not in CLAUDE_VARIABLES},
                         {k: v for k, v in old["env"].items() if k not in CLAUDE_VARIABLES})
        self.assertEqual(list(new["env"])[:len(old["env"])], list(old["env"]))

    def test_the_base_url_has_no_v1_since_claude_code_adds_it(self):
        self.run_cli("bind", "claude", "--gateway-url", "http://10.0.0.5:9000/v1/")
        self.assertEqual(self.settings()["env"]["ANTHROPIC_BASE_URL"], "http://10.0.0.5:9000")
        self.run_cli("bind", "claude", "--gateway-url", "https://proxy.example/freeride")
        self.assertEqual(self.settings()["env"]["ANTHROPIC_BASE_URL"],
                         "https://proxy.example/freeride")

    def test_the_key_comes_from_the_flag_then_freeride_api_key(self):
        self.run_cli("bind", "claude", FREERIDE_API_KEY="gateway-secret-123")
        self.assertEqual(self.settings()["env"]["ANTHROPIC_AUTH_TOKEN"], "gateway-secret-123")
        result = self.run_cli("bind", "claude", "--api-key", "my-own-key-42")
        self.assertEqual(self.settings()["env"]["ANTHROPIC_AUTH_TOKEN"], "my-own-key-42")
        self.assertNotIn("gateway-secret-123", result.out)

    def test_a_file_without_an_env_block_gets_one_at_the_end(self):
        self.write(".claude/settings.json", '{\n    "model": "opus"\n}\n')
        self.run_cli("bind", "claude")
        text = (self.home / ".claude/settings.json").read_text()
        self.assertTrue(text.startswith('{\n    "model": "opus",\n    "env": {\n        "ANTH'))
        self.assert_bound()

    def test_a_file_with_comments_is_refused_untouched(self):
        text = '{\n  // my settings\n  "model": "opus"\n}\n'
        self.write(".claude/settings.json", text)
        result = self.run_cli("bind", "claude")
        self.assertEqual(result.code, 1)
        self.assertIn("has comments (JSON5)", result.err)
        self.assertIn('"ANTHROPIC_BASE_URL": "http://127.0.0.1:', result.err)  # by hand
        self.assertEqual((self.home / ".claude/settings.json").read_text(), text)

    def test_an_env_that_is_not_an_object_is_refused_untouched(self):
        self.write(".claude/settings.json", '{"env": ["A=1"]}')
        result = self.run_cli("bind", "claude")
        self.assertEqual(result.code, 1)
        self.assertIn("settings.json.env is not an object", result.err)
        self.assertEqual((self.home / ".claude/settings.json").read_text(), '{"env": ["A=1"]}')

    def test_claude_config_dir_moves_the_file(self):
        result = self.run_cli("bind", "claude", CLAUDE_CONFIG_DIR=str(self.home / "cc"))
        self.assertEqual(result.code, 0, result)
        moved = self.settings(self.home / "cc" / "settings.json")
        self.assertEqual(moved["env"]["ANTHROPIC_MODEL"], "auto")
        self.assertEqual(self.settings(), CLAUDE)


class CodexTest(BinderContract, HomeTest):
    agent = "codex"
    files = {".codex/config.toml": CODEX}
    broken = {".codex/config.toml": 'model = "gpt-5-codex\napproval_policy = "never"\n'}
    secrets = ("ghp_codexsecretvalue123", "docs-bearer-secret-456")

    def config(self, path=None):
        return read_toml((path or self.home / ".codex/config.toml").read_text())

    def assert_bound(self, model="auto"):
        config = self.config()
        self.assertEqual({k: config[k] for k in CODEX_OWNED},
                         {"model": model, "model_provider": "freeride",
                          "model_context_window": freeride.served_context(model)[0]})
        self.assertEqual(config["model_providers"]["freeride"], {
            "name": "FreeRide", "base_url": f"http://127.0.0.1:{self.port}/v1",
            "wire_api": "responses", "experimental_bearer_token": "freeride-local"})

    def assert_others_unchanged(self, path, before, after):
        removed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines())
                   if line.startswith("- ")]
        self.assertEqual(removed, ['- model = "gpt-5-codex"            # the default model'])
        old, new = read_toml(before), read_toml(after)
        del new["model_providers"]["freeride"]
        self.assertEqual({k: v for k, v in new.items() if k not in CODEX_OWNED},
                         {k: v for k, v in old.items() if k not in CODEX_OWNED})

    def test_top_level_keys_go_before_the_first_table_and_the_model_keeps_its_comment(self):
        self.run_cli("bind", "codex")
        text = (self.home / ".codex/config.toml").read_text()
        self.assertIn('model = "auto"            # the default model\n', text)
        self.assertIn('Run the tests before saying done.\n"""\nmodel_provider = "freeride"\n'
                      'model_context_window = %d\n\n[sandbox_workspace_write]\n' % AUTO_WINDOW, text)
        self.assertTrue(text.startswith(CODEX.split("[tui]")[0].replace(
            'model = "gpt-5-codex"', 'model = "auto"').replace(
            '"""\n\n[sandbox', '"""\nmodel_provider = "freeride"\n'
            'model_context_window = %d\n\n[sandbox' % AUTO_WINDOW)))
        self.assertTrue(text.endswith('bearer_token = "docs-bearer-secret-456"\n\n'
                                      '[model_providers.freeride]\nname = "FreeRide"\n'
                                      f'base_url = "http://127.0.0.1:{self.port}/v1"\n'
                                      'wire_api = "responses"\n'
                                      'experimental_bearer_token = "freeride-local"\n'))

    def test_the_context_window_is_the_smallest_the_models_really_have(self):
        self.run_cli("bind", "codex")
        self.assertEqual(self.config()["model_context_window"], AUTO_WINDOW)
        self.run_cli("bind", "codex", "--model", "llama-3.3-70b")  # 24K on Cloudflare
        self.assertEqual(self.config()["model_context_window"], 24000)
        self.assertEqual(freeride.served_context("llama-3.3-70b")[0], 24000)

    def test_a_provider_table_already_there_is_updated_in_place(self):
        self.write(".codex/config.toml", CODEX + '\n[model_providers.freeride]\n'
                   'name = "FreeRide"\nbase_url = "http://old-host:1/v1"   # my gateway\n'
                   'request_max_retries = 4\n')
        self.assertEqual(self.run_cli("bind", "codex", "--gateway-url",
                                      "http://10.0.0.5:9000/v1").code, 0)
        text = (self.home / ".codex/config.toml").read_text()
        self.assertIn('base_url = "http://10.0.0.5:9000/v1"   # my gateway\n'
                      'request_max_retries = 4\nwire_api = "responses"\n', text)
        self.assertEqual(text.count("[model_providers.freeride]"), 1)

    def test_unsupported_shapes_are_refused_untouched_with_the_line(self):
        cases = {
            "dotted keys at the top": ('model_providers.freeride.name = "x"\n', 1),
            "an inline table": ('[model_providers]\nfreeride = { name = "x" }\n', 2),
            "a list of tables": ('[[model_providers.freeride]]\nname = "x"\n', 1),
            "a multi-line model": ('model = """\ngpt-5\n"""\n', 1),
            "a key set twice": (CODEX.replace("sandbox_mode", 'model = "o3"\nsandbox_mode'),
                                7),
            "a table defined twice": (CODEX + "[tui]\n", len(CODEX.splitlines()) + 1),
        }
        for what, (text, line) in cases.items():
            with self.subTest(what):
                self.write(".codex/config.toml", text)
                before = self.snapshot()
                result = self.run_cli("bind", "codex")
                self.assertEqual(result.code, 1, result)
                self.assertIn(f"config.toml line {line}:", result.err)
                self.assertIn("Nothing was changed", result.err)
                self.assertIn("[model_providers.freeride]", result.err)  # what to add by hand
                self.assertEqual(self.snapshot(), before)

    def test_codex_home_moves_the_file(self):
        result = self.run_cli("bind", "codex", CODEX_HOME=str(self.home / "cx"))
        self.assertEqual(result.code, 0, result)
        self.assertEqual(self.config(self.home / "cx" / "config.toml")["model_provider"],
                         "freeride")
        self.assertEqual((self.home / ".codex/config.toml").read_text(), CODEX)


class BoundAgentsAnswerThroughTheGateway(HomeTest):
    """The settings bind writes, used the way each agent uses them, reach a fake provider."""
    key = "gateway-secret-123"

    def setUp(self):
        super().setUp()
        self.groq = fakes.FakeUpstream("groq").start()
        self.addCleanup(self.groq.close)
        cls = providers.REGISTRY["groq"]
        env = {"FREERIDE_HOME": str(self.home / "gateway"), "FREERIDE_PROVIDERS": "groq",
               cls.key_vars[0]: "gsk-a", cls.base_url_var or "GROQ_BASE_URL": self.groq.url,
               "FREERIDE_API_KEY": self.key}
        self.gateway = freeride.Gateway(freeride.Config(env=env, port=0)).start()
        self.addCleanup(self.gateway.close)
        self.url = f"http://127.0.0.1:{self.gateway.port}/v1"

    def post(self, url, body, headers):
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        try:
            conn.request("POST", parts.path, json.dumps(body).encode(),
                         {"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def test_claude_code_asks_at_the_base_url_plus_v1_messages(self):
        result = self.run_cli("bind", "claude", "--gateway-url", self.url,
                              FREERIDE_API_KEY=self.key)
        self.assertEqual(result.code, 0, result)
        self.assertNotIn("no gateway answers", result.out)
        variables = json.loads((self.home / ".claude/settings.json").read_text())["env"]
        status, body = self.post(variables["ANTHROPIC_BASE_URL"] + "/v1/messages?beta=true", {
            "model": variables["ANTHROPIC_MODEL"], "max_tokens": 32000, "stream": False,
            "system": [{"type": "text", "text": "You are Claude Code.",
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {
                "type": "object", "properties": {"command": {"type": "string"}},
                "required": ["command"]}}],
            "metadata": {"user_id": "user_abc"}},
            {"Authorization": "Bearer " + variables["ANTHROPIC_AUTH_TOKEN"],
             "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219",
             "x-app": "cli"})
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        self.assertEqual((answer["type"], answer["content"][0]["text"]),
                         ("message", "Hello"))  # the fake's default stream, assembled
        self.assertEqual(self.groq.requests[-1].key, "gsk-a")

    def test_codex_asks_at_the_base_url_plus_responses(self):
        self.assertEqual(self.run_cli("bind", "codex", "--gateway-url", self.url,
                                      FREERIDE_API_KEY=self.key).code, 0)
        config = read_toml((self.home / ".codex/config.toml").read_text())
        provider = config["model_providers"][config["model_provider"]]
        self.assertEqual(provider["wire_api"], "responses")
        status, body = self.post(provider["base_url"] + "/responses", {
            "model": config["model"], "instructions": "You are Codex.", "stream": True,
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "hi"}]}],
            "tools": [{"type": "function", "name": "shell", "description": "Run a command",
                       "strict": False, "parameters": {
                           "type": "object", "properties": {"command": {
                               "type": "array", "items": {"type": "string"}}}}}],
            "tool_choice": "auto", "parallel_tool_calls": False, "store": False,
            "include": [], "reasoning": None},
            {"Authorization": "Bearer " + provider["experimental_bearer_token"],
             "Accept": "text/event-stream", "OpenAI-Beta": "responses=experimental"})
        self.assertEqual(status, 200, body)
        events = named_events(body)
        self.assertEqual(events[-1][0], "response.completed")
        self.assertEqual(events[-1][1]["response"]["output"][0]["content"][0]["text"],
                         "Hello")  # the fake's stream: "Hel", "lo"

    def test_without_the_bound_key_the_gateway_refuses(self):
        self.run_cli("bind", "codex", "--gateway-url", self.url, "--api-key", "other-key-99")
        config = read_toml((self.home / ".codex/config.toml").read_text())
        status, _ = self.post(config["model_providers"]["freeride"]["base_url"] + "/responses",
                              {"model": "auto", "input": "hi"},
                              {"Authorization": "Bearer other-key-99"})
        self.assertEqual(status, 401)


if __name__ == "__main__":
    unittest.main()
