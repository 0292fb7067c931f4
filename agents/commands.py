"""The agent commands as the command line sees them: each one's description and arguments
(put on its parser by freeride.AgentCommand when the command is first used), and the function
that runs it."""
from agents import (AGENTS, DEFAULT_AGENT_KEY, _count, _seconds, cmd_auto, cmd_bind,
                    cmd_rotate, cmd_unbind, cmd_watcher)
from freeride import DEFAULT_HOST, DEFAULT_PORT


def bind_arguments(bind):
    bind.description = ("Write the gateway into the agent's config file (with a backup), so "
                        "its next start goes through FreeRide. `freeride unbind` undoes it.")
    bind.add_argument("agent", choices=list(AGENTS))
    bind.add_argument("--scope", choices=("home", "cwd", "git"),
                      help="aider only: ~/.aider.conf.yml (home, the default), the current "
                      "directory's, or the enclosing git repository's")
    bind.add_argument("--gateway-url", help="the gateway's base URL (default "
                      f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/v1, from FREERIDE_HOST and "
                      "FREERIDE_PORT)")
    bind.add_argument("--model", default="auto", type=lambda s: s.strip() or "auto",
                      help="the model the agent asks for (default auto: every provider's best "
                      "free model)")
    bind.add_argument("--api-key", help="the key the agent sends (default $FREERIDE_API_KEY, "
                      f"else {DEFAULT_AGENT_KEY})")
    bind.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")


def unbind_arguments(unbind):
    unbind.description = (
        "Put back exactly what the agent's config files held before the first `freeride bind` "
        "(a file bind created is deleted), after a backup of what they hold now.")
    unbind.add_argument("agent", choices=list(AGENTS))
    unbind.add_argument("--scope", choices=("home", "cwd", "git"),
                        help="aider only: restore only that file (default: every file bound)")
    unbind.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")


def auto_arguments(auto):
    auto.description = (
        "Set OpenClaw's primary model and fallbacks: through the gateway when `freeride bind "
        "openclaw` was run, else to OpenRouter's best free models (needs OPENROUTER_API_KEY).")
    auto.add_argument("--count", type=_count, default=5, help="how many fallbacks (default 5)")
    auto.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")


def rotate_arguments(rotate):
    rotate.description = ("Send OpenClaw's primary model a tiny request; if it fails, make the "
                          "first fallback that answers the primary.")
    rotate.add_argument("--timeout", type=_seconds, default=30.0,
                        help="seconds to wait for each model (default 30)")
    rotate.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")


def watcher_arguments(watcher):
    watcher.description = ("Run `freeride rotate` every --interval seconds until SIGINT or "
                           "SIGTERM (also installed as the freeride-watcher command).")
    watcher.add_argument("--interval", type=_seconds, default=300.0,
                         help="seconds between checks (default 300)")
    watcher.add_argument("--once", action="store_true", help="check once and exit")
    watcher.add_argument("--timeout", type=_seconds, default=30.0,
                         help="seconds to wait for each model (default 30)")


COMMANDS = {  # name: (its arguments, what runs it), in the order of freeride.AGENT_COMMANDS
    "bind": (bind_arguments, cmd_bind),
    "unbind": (unbind_arguments, cmd_unbind),
    "auto": (auto_arguments, cmd_auto),
    "rotate": (rotate_arguments, cmd_rotate),
    "watcher": (watcher_arguments, cmd_watcher),
}


def add_arguments(parser, command):
    COMMANDS[command][0](parser)


def run(args, config):
    return COMMANDS[args.command][1](args, config)
