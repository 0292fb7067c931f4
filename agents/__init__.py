"""The agent side of FreeRide: the agents it binds to the gateway, beside providers/.

An agent is a program that talks to an OpenAI (or Anthropic) endpoint and reads where that is
from its own config file. `freeride bind <agent>` writes the gateway into that file, so the
agent's next start goes through FreeRide; `freeride unbind <agent>` puts back what was there
before the first bind. Each agent is a module here: data (the Agent subclass's attributes)
and one hook, targets(), which names the agent's config files and the edit that writes the
settings FreeRide owns in each. Everything else is shared, and no agent module repeats it:

  editors.py   the YAML, TOML and JSON editors (parse, edit in place, keep comments, order
               and numbers as spelled; CannotEdit for a file they cannot be sure of)
  changes.py   a plan of every file's change, the diff (secrets masked), backups, atomic
               writes, and the records of what unbind restores ($FREERIDE_HOME/bind/)
  commands.py  bind and unbind, and the arguments of every agent command
  openclaw.py  also OpenClaw's own commands: auto, rotate, watcher

The rules every edit follows: a file that does not parse, or has a shape FreeRide does not
understand, is never replaced (the command stops, says where and why, and prints what to set
by hand); only the settings FreeRide owns change, every other key and comment stays; a
timestamped backup is written first, then the new content through an atomic rename that
keeps the file's permissions.

The registry, REGISTRY below, lists every agent by name: no directory scanning, so it works
the same inside freeride.pyz. tests/test_agents_conformance.py holds every registered agent to
the contract. The gateway never imports this package: freeride.py imports it only when an
agent command runs. Standard library only.
"""
from pathlib import Path
from typing import NamedTuple

import providers
from agents.editors import CannotEdit
from freeride import Route, model_context, resolve

DEFAULT_AGENT_KEY = "freeride-local"  # agents drop keys that are short or look like placeholders
PLACEHOLDER_KEYS = {"any", "none", "null", "dummy", "test", "key", "fake", "empty", "local",
                    "placeholder", "changeme", "no-key", "nokey", "no-key-required", "not-needed",
                    "api-key", "your-api-key", "sk-xxx", "sk-no-key-required"}


class Binding(NamedTuple):
    """What an agent is told: where the gateway is, which model to ask for, which key to send."""
    gateway_url: str
    model: str
    api_key: str


class Target(NamedTuple):
    """One config file an agent reads, and how FreeRide edits it: kind "yaml" calls
    edit(YamlDocument), "toml" edit(TomlDocument), "json" edit(dict); each changes it in
    place."""
    path: Path
    kind: str
    edit: object


class Agent:
    """An agent FreeRide binds: a subclass sets the data and writes targets().

    name          the registry key and the argument of `freeride bind`, lower case
    title         the agent's name as people know it
    reload        when it sees a change, one sentence said after bind and unbind
    hot_reload    True if it sees the change by itself ("hot reload: ..."), else the user
                  restarts it ("restart needed: ...")
    use           how to use FreeRide from it, said after bind ("": nothing to add)
    scopes        the values of --scope it takes, its default ("home") first; () for an agent
                  whose files do not move with the working directory
    secret_files  names of its files that hold only secrets (llm's keys.json): a diff masks
                  every value in them, where elsewhere it masks values of keys named like a
                  key, token, secret or password
    run_env       what `freeride run <agent>` sets for one run, changing no file ({url}: the
                  gateway with /v1, {root}: without it, {key}: the key it sends)
    run_args      arguments `freeride run` puts before the agent's own
    install       how to install the agent, said when `freeride run` cannot find it

    What it prints by hand, when its file cannot be edited, is what targets() writes into a
    new, empty file: nothing to declare.
    """
    name = ""
    title = ""
    reload = ""
    hot_reload = False
    use = ""
    scopes = ()
    secret_files = ()
    run_env = {"OPENAI_BASE_URL": "{url}", "OPENAI_API_BASE": "{url}", "OPENAI_API_KEY": "{key}"}
    run_args = ()
    install = ""

    def targets(self, env, cwd, scope, binding):
        """[Target]: the config files the agent reads for `scope` ("home" when it takes none),
        each with the edit that writes the settings FreeRide owns there.

        env is the environment (agents' own variables move their files), cwd the working
        directory; binding is None when only the paths are wanted (unbind --scope), so read
        it inside the edits. CannotEdit if there is no such file (aider's git scope outside
        a repository). Never touch the disk here: plan() reads, the edits change documents.
        """
        raise NotImplementedError


def user_home(env):
    return Path(env.get("HOME") or Path.home())


# -- what the gateway serves, for the settings that need it ----------------------------------

def all_routes():
    """Every registered provider as a route without keys: enough to resolve model names."""
    return [Route(cls(), []) for cls in providers.REGISTRY.values()]


def served_context(model):
    """The context windows (smallest first) of the models `model` resolves to, over every
    provider FreeRide knows, from the provider tables."""
    pairs = resolve(all_routes(), model)
    return sorted({model_context(route, model_id) for route, model_id in pairs} - {0})


def smallest_context(model):
    """The smallest context window `model` really has on the providers serving it."""
    windows = served_context(model)
    if not windows:
        raise CannotEdit(f"FreeRide knows no context window for {model!r} on any provider; "
                         "choose another --model")
    return windows[0]


def say_reload(agent):
    print(("hot reload: " if agent.hot_reload else "restart needed: ") + agent.reload)


# -- the registry ----------------------------------------------------------------------------

from agents import aider, claude, codex, continue_, hermes, llm, openclaw  # noqa: E402

REGISTRY = {  # its order is that of `freeride bind --help`
    "aider": aider.Aider,
    "continue": continue_.Continue,
    "hermes": hermes.Hermes,
    "openclaw": openclaw.OpenClaw,
    "llm": llm.Llm,
    "claude": claude.Claude,
    "codex": codex.Codex,
}
AGENTS = REGISTRY  # its name in freeride.py before agents/ (#19)

from agents import changes, commands, editors  # noqa: E402,F401  (so the package is whole)
