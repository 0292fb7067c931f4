"""Aider (aider.chat): its .aider.conf.yml, in the home folder or, with --scope, the working
directory's or the git repository's.

Aider loads .aider.conf.yml from the home folder, then the root of the git repository, then
the working directory, the later ones winning, and reads it only at start
[D: https://aider.chat/docs/config/aider_conf.html]. `openai-api-base` and `openai-api-key`
point its `openai/<model>` models at any OpenAI-compatible server; it strips the `openai/`
prefix on the wire [D: https://aider.chat/docs/llms/openai-compat.html].
"""
from agents import Agent, Target, user_home
from agents.editors import CannotEdit


def git_root(start):
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


class Aider(Agent):
    name = "aider"
    run_args = ("--model", "openai/auto")
    install = "pipx install aider-chat"
    title = "Aider"
    reload = "aider reads its config at start: start it again."
    scopes = ("home", "cwd", "git")

    def targets(self, env, cwd, scope, binding):
        if scope == "git":
            root = git_root(cwd)
            if root is None:
                raise CannotEdit(f"--scope git: {cwd} is not inside a git repository")
            folder = root
        else:
            folder = cwd if scope == "cwd" else user_home(env)
        model = "openai/" + binding.model if binding else ""  # aider strips "openai/" on the wire

        def edit(doc):
            for key, value in (("openai-api-base", binding.gateway_url),
                               ("openai-api-key", binding.api_key), ("model", model),
                               ("weak-model", model), ("editor-model", model)):
                doc.set((key,), value)
        return [Target(folder / ".aider.conf.yml", "yaml", edit)]
