"""Continue (continue.dev, the VS Code and JetBrains extension): ~/.continue/config.yaml.

Continue reads config.yaml from ~/.continue ($CONTINUE_GLOBAL_DIR moves it) and reloads it
by itself when it changes; a model with `provider: openai` and an `apiBase` talks to any
OpenAI-compatible server, and `roles` says what it is used for
[D: https://docs.continue.dev/reference]. A file Continue starts with holds `name`,
`version` and `schema: v1`, which bind adds when they are missing. The module is continue_
because `continue` is a Python keyword; the agent's name is `continue`.
"""
from pathlib import Path

from agents import Agent, Target, user_home


class Continue(Agent):
    name = "continue"
    title = "Continue"
    reload = "Continue reloads its config by itself."
    hot_reload = True
    use = "Pick the FreeRide model in Continue's model menu."

    def targets(self, env, cwd, scope, binding):
        folder = Path(env.get("CONTINUE_GLOBAL_DIR") or user_home(env) / ".continue")

        def edit(doc):
            for key, value in (("name", "Local Assistant"), ("version", "1.0.0"),
                               ("schema", "v1")):
                if doc.find((key,)) is None:
                    doc.set((key,), value)
            doc.upsert_item(("models",), "name", {
                "name": "FreeRide", "provider": "openai", "model": binding.model,
                "apiBase": binding.gateway_url, "apiKey": binding.api_key,
                "roles": ["chat", "edit", "apply"]}, first=True)
        return [Target(folder / "config.yaml", "yaml", edit)]
