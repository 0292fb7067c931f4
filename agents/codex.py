"""Codex (OpenAI's coding agent): ~/.codex/config.toml, its model and a [model_providers]
table for the gateway.

Codex reads $CODEX_HOME/config.toml (default ~/.codex) at start. `model_provider` picks a
table of [model_providers]: `base_url`, `wire_api = "responses"` (the Responses API, which
the gateway speaks for it: freeride.py, dialects) and `experimental_bearer_token`, a key
written in the file; `model_context_window` tells it the model's window, which it cannot
know for models outside its own catalog
[D: https://github.com/openai/codex/blob/main/docs/config.md,
https://developers.openai.com/codex/config-sample].
"""
from pathlib import Path

from agents import Agent, Target, smallest_context, user_home


class Codex(Agent):
    name = "codex"
    # Its config override flags: a provider for this run only, the key from the environment.
    run_env = {"OPENAI_API_KEY": "{key}"}
    run_args = ("-c", 'model_provider="freeride"', "-c", 'model="auto"', "-c",
                'model_providers.freeride={name="FreeRide", base_url="{url}", '
                'wire_api="responses", env_key="OPENAI_API_KEY"}')
    install = "npm install -g @openai/codex"
    title = "Codex"
    reload = "Codex reads its config at start: quit it and run `codex` again."

    def targets(self, env, cwd, scope, binding):
        folder = Path(env.get("CODEX_HOME") or user_home(env) / ".codex")

        def edit(doc):
            doc.update({(): {"model": binding.model, "model_provider": "freeride",
                             "model_context_window": smallest_context(binding.model)},
                        ("model_providers", "freeride"): {
                            "name": "FreeRide", "base_url": binding.gateway_url,
                            "wire_api": "responses",
                            "experimental_bearer_token": binding.api_key}})
        return [Target(folder / "config.toml", "toml", edit)]
