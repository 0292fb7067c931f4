"""llm (Simon Willison's command-line tool): a model `freeride` in extra-openai-models.yaml,
and its key in keys.json, both in llm's folder.

llm keeps its files in $LLM_USER_PATH, else in click's app folder for `io.datasette.llm`, and
reads them on every run. extra-openai-models.yaml lists OpenAI-compatible models (`model_id`,
`model_name`, `api_base`, `api_key_name`, `supports_tools`)
[D: https://llm.datasette.io/en/stable/other-models.html#openai-compatible-models]; keys.json
maps key names to keys, every value a secret, and starts with a "// Note" that llm writes
itself [D: https://llm.datasette.io/en/stable/setup.html#api-key-management].
"""
import sys
from pathlib import Path

from agents import Agent, Target, user_home

LLM_KEYS = "keys.json"  # llm's file of keys: every value in it is a secret


def llm_user_dir(env, home, platform=sys.platform):
    """Where Simon Willison's llm keeps its files: $LLM_USER_PATH, else click's app dir."""
    if env.get("LLM_USER_PATH"):
        return Path(env["LLM_USER_PATH"])
    if platform == "darwin":
        return home / "Library" / "Application Support" / "io.datasette.llm"
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home) / "io.datasette.llm"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "io.datasette.llm"


class Llm(Agent):
    name = "llm"
    install = "pipx install llm"
    title = "llm"
    reload = "llm reads its config on every run."
    hot_reload = True
    use = ("Use it with `llm -m freeride`, or make it the default with "
           "`llm models default freeride`.")
    secret_files = (LLM_KEYS,)

    def targets(self, env, cwd, scope, binding):
        folder = llm_user_dir(env, user_home(env))

        def edit_models(doc):
            doc.upsert_item((), "model_id", {
                "model_id": "freeride", "model_name": binding.model,
                "api_base": binding.gateway_url, "api_key_name": "freeride",
                "supports_tools": True})

        def edit_keys(doc):
            if not doc:  # as llm does
                doc["// Note"] = "This file stores secret API credentials. Do not share!"
            doc["freeride"] = binding.api_key
        return [Target(folder / "extra-openai-models.yaml", "yaml", edit_models),
                Target(folder / LLM_KEYS, "json", edit_keys)]
