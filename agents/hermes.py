"""Hermes Agent (Nous Research): the `model:` block of ~/.hermes/config.yaml.

Hermes reads ~/.hermes/config.yaml ($HERMES_HOME moves the folder) at start; `provider:
custom` with `base_url` and `api_key` sends it to any OpenAI-compatible server
[D: https://github.com/NousResearch/hermes-agent]. It refuses a
model that advertises less than 64K tokens of context, and treats a short or placeholder key
as no key, so bind writes `context_length` (a window the model really has, at least 65536:
the value GET /v1/models reports) and warns about such keys.
"""
from pathlib import Path

from agents import Agent, Target, served_context, user_home
from agents.editors import CannotEdit

HERMES_MIN_CONTEXT = 65536  # Hermes refuses a model that advertises less


def hermes_context(model):
    """The smallest context window `model` really has on some provider that Hermes accepts."""
    windows = served_context(model)
    usable = [w for w in windows if w >= HERMES_MIN_CONTEXT]
    if not usable:
        raise CannotEdit(f"Hermes needs a model with at least {HERMES_MIN_CONTEXT} tokens of "
                         f"context, and {model!r} has at most {max(windows, default=0)} on the "
                         "providers FreeRide knows; choose another --model (auto has "
                         f"{served_context('auto')[0]})")
    return usable[0]


class Hermes(Agent):
    name = "hermes"
    title = "Hermes"
    reload = "hermes reads its config at start: start it again."

    def targets(self, env, cwd, scope, binding):
        folder = Path(env.get("HERMES_HOME") or user_home(env) / ".hermes")

        def edit(doc):
            for key, value in (("default", binding.model), ("provider", "custom"),
                               ("base_url", binding.gateway_url), ("api_key", binding.api_key),
                               ("context_length", hermes_context(binding.model))):
                doc.set(("model", key), value)
        return [Target(folder / "config.yaml", "yaml", edit)]
