"""Claude Code (Anthropic's coding agent): the `env` block of ~/.claude/settings.json.

Claude Code reads settings.json from ~/.claude ($CLAUDE_CONFIG_DIR moves it) at start and
sets the variables of its `env` block for itself
[D: https://docs.anthropic.com/en/docs/claude-code/settings]. ANTHROPIC_BASE_URL is the
server without /v1 (Claude Code adds /v1/messages), ANTHROPIC_AUTH_TOKEN is sent as a Bearer
key, ANTHROPIC_MODEL and ANTHROPIC_DEFAULT_{OPUS,SONNET,HAIKU}_MODEL choose the models
[D: https://docs.anthropic.com/en/docs/claude-code/model-config], and
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 turns off its non-essential traffic (updates,
telemetry, error reports). The gateway speaks the Messages API for it (freeride.py,
dialects).
"""
from pathlib import Path

from agents import Agent, Target, user_home
from agents.editors import _json_object


def anthropic_base_url(gateway_url):
    """The gateway URL without its /v1, which Anthropic's clients add themselves."""
    return gateway_url[:-3] if gateway_url.endswith("/v1") else gateway_url


class Claude(Agent):
    name = "claude"
    title = "Claude Code"
    reload = "Claude Code reads its settings at start: quit it and run `claude` again."
    # Its claude-* model names are mapped by the gateway; an API key would win over the token.
    run_env = {"ANTHROPIC_BASE_URL": "{root}", "ANTHROPIC_AUTH_TOKEN": "{key}",
               "ANTHROPIC_API_KEY": ""}
    install = "npm install -g @anthropic-ai/claude-code"

    def targets(self, env, cwd, scope, binding):
        folder = Path(env.get("CLAUDE_CONFIG_DIR") or user_home(env) / ".claude")

        def edit(doc):
            # One model in every slot: Claude Code's main model and its opus, sonnet and haiku
            # defaults (haiku does the small jobs: titles, summaries).
            variables = _json_object(doc, "env", "settings.json")
            variables.update({"ANTHROPIC_BASE_URL": anthropic_base_url(binding.gateway_url),
                              "ANTHROPIC_AUTH_TOKEN": binding.api_key,
                              "ANTHROPIC_MODEL": binding.model,
                              "ANTHROPIC_DEFAULT_OPUS_MODEL": binding.model,
                              "ANTHROPIC_DEFAULT_SONNET_MODEL": binding.model,
                              "ANTHROPIC_DEFAULT_HAIKU_MODEL": binding.model,
                              "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
        return [Target(folder / "settings.json", "json", edit)]
