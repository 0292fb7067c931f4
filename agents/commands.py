"""The agent commands: bind and unbind, the same for every agent in the registry, `run`
(an agent started with the gateway's environment, changing no file), and the description and
arguments of each agent command (put on its parser by freeride.AgentCommand the first time
the command is used). OpenClaw's auto, rotate and watcher run in openclaw.py.
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from agents import DEFAULT_AGENT_KEY, PLACEHOLDER_KEYS, REGISTRY, Agent, Binding, say_reload
from agents.changes import (LINE_EDITORS, FileChange, _read, apply_all, bind_wrote,
                            load_records, original, plan, records_path, remove_folders,
                            save_records, secrets_in)
from agents.editors import CannotEdit
from agents.openclaw import cmd_auto, cmd_rotate, cmd_watcher
from freeride import DEFAULT_HOST, DEFAULT_PORT, GRACE_SECONDS, fetch_local, is_loopback


def default_gateway_url(config):
    host = config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{config.port}/v1"


def refuse_scope(agent, scope):
    """True, after saying so, if the agent does not take --scope `scope`."""
    if not scope or scope in agent.scopes:
        return False
    takers = [name for name, cls in REGISTRY.items() if scope in cls.scopes]
    print(f"freeride: --scope is for {' and '.join(takers)} only", file=sys.stderr)
    return True


def cmd_bind(args, config):
    agent = REGISTRY[args.agent]()
    if refuse_scope(agent, args.scope):
        return 2
    url = (args.gateway_url or default_gateway_url(config)).rstrip("/")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https") or \
            not urllib.parse.urlsplit(url).hostname:
        print(f"freeride: --gateway-url must be an http:// or https:// URL, not {url!r}",
              file=sys.stderr)
        return 2
    key = args.api_key or config.api_key or DEFAULT_AGENT_KEY
    if len(key) < 8 or key.lower() in PLACEHOLDER_KEYS:
        print(f"freeride: warning: some agents (Hermes) treat a key like {key!r} as no key at "
              "all; use 8 characters or more that are not a placeholder word", file=sys.stderr)
    if config.api_key and key != config.api_key:
        print("freeride: warning: FREERIDE_API_KEY is set and differs from --api-key, so a "
              "gateway started with it will refuse this agent", file=sys.stderr)
    binding = Binding(url, args.model, key)
    try:
        targets = agent.targets(config.env, Path.cwd(), args.scope or "home", binding)
        changes = plan(targets)
        if not any(c.after != c.before for c in changes):
            print(f"freeride: {agent.title} already goes through FreeRide ({url}, model "
                  f"{args.model}); nothing changed")
            return 0
        if not args.dry_run:
            records = load_records(config, args.agent)
            changes = [c._replace(backup=not bind_wrote(records.get(str(c.path)), c.before))
                       for c in changes]
            for change in changes:
                if change.after != change.before:
                    row = records.setdefault(str(change.path), original(change))
                    row["written"] = hashlib.sha256(change.after).hexdigest()
            save_records(config, args.agent, records)
        apply_all(changes, args.dry_run, sys.stdout)
    except CannotEdit as e:
        print(f"freeride: {e}. Nothing was changed.", file=sys.stderr)
        print_by_hand(agent, binding._replace(api_key="$FREERIDE_API_KEY")
                      if config.api_key and key == config.api_key else binding)
        return 1
    except OSError as e:
        print(f"freeride: cannot write {e.filename or 'a config file'}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    print(f"freeride: {agent.title} now goes through FreeRide at {url} (model {args.model}); "
          f"undo with `freeride unbind {args.agent}`")
    say_reload(agent)
    if agent.use:
        print(agent.use)
    if is_loopback(urllib.parse.urlsplit(url).hostname) \
            and fetch_local(url, "/health", 1.0) is None:
        print(f"note: no gateway answers at {url} yet; start it with `freeride serve`")
    return 0


def print_by_hand(agent, binding):
    """What the settings look like in a fresh file, for a user who will edit theirs by hand."""
    try:
        for target in agent.targets({"HOME": "/nonexistent"}, Path("/nonexistent"), "home",
                                    binding):
            if target.kind in LINE_EDITORS:
                doc = LINE_EDITORS[target.kind]("")
                target.edit(doc)
                text = doc.text()
            else:
                doc = {}
                target.edit(doc)
                text = json.dumps(doc, indent=2) + "\n"
            print(f"To set it up by hand, put this in {target.path.name}:\n{text}",
                  end="", file=sys.stderr)
    except CannotEdit:
        pass


def cmd_unbind(args, config):
    agent = REGISTRY[args.agent]()
    if refuse_scope(agent, args.scope):
        return 2
    try:
        records = load_records(config, args.agent)
        chosen = dict(records)
        if args.scope:
            paths = {str(t.path.resolve())
                     for t in agent.targets(config.env, Path.cwd(), args.scope, None)}
            chosen = {p: r for p, r in records.items() if p in paths}
        if not chosen:
            print(f"freeride: no bind of {agent.title} is recorded in "
                  f"{records_path(config, args.agent)}; nothing to undo")
            return 0
        changes = []
        for row in chosen.values():
            path = Path(row["path"])
            before = _read(path)
            after = base64.b64decode(row["content"]) if row["existed"] else None
            if before != after:
                changes.append(FileChange(path, before, after, row["mode"] or 0o600,
                                          secrets_in(path, before) | secrets_in(path, after),
                                          not bind_wrote(row, before)))
            elif after is not None and os.stat(path).st_mode & 0o7777 != row["mode"] \
                    and not args.dry_run:
                os.chmod(path, row["mode"])
        if not apply_all(changes, args.dry_run, sys.stdout) and not args.dry_run:
            print(f"freeride: {agent.title}'s files already hold what they held before bind")
        if args.dry_run:
            return 0
        remove_folders([f for row in chosen.values() for f in row.get("dirs", ())], sys.stdout)
        save_records(config, args.agent, {p: r for p, r in records.items() if p not in chosen})
    except CannotEdit as e:
        print(f"freeride: {e}. Nothing was changed.", file=sys.stderr)
        return 1
    print(f"freeride: {agent.title} no longer goes through FreeRide; restored what was there "
          "before the first bind")
    say_reload(agent)
    return 0


# -- run ---------------------------------------------------------------------------------------

RUNS = ("claude", "codex", "aider", "llm")  # the agents `freeride run` knows by name


def cmd_run(args, config):
    """Run an agent pointed at the gateway, changing no file; start a gateway for its
    lifetime if none answers. The agent owns the terminal and its exit status is ours."""
    known = REGISTRY.get(args.agent) if args.agent in RUNS else None
    agent = known() if known else Agent()  # any command: the OpenAI variables
    command = list(args.agent_args)
    if known is None:
        command.insert(0, args.agent)  # `freeride run mytool ...` as `run -- mytool ...`
    program = args.agent if known else (command[0] if command else "")
    if not program or shutil.which(program) is None:
        hint = f"; install it with: {agent.install}" if agent.install else ""
        print(f"freeride: {program or 'a command'} is not installed{hint}", file=sys.stderr)
        return 127
    root = default_gateway_url(config).removesuffix("/v1")
    values = {"root": root, "url": root + "/v1", "key": config.api_key or DEFAULT_AGENT_KEY}
    env = dict(os.environ, **{k: v.format(**values) for k, v in agent.run_env.items()})
    argv = [program, *[a.replace("{url}", values["url"]) for a in agent.run_args], *command] \
        if known else command
    gateway, health = None, fetch_local(root, "/health")
    if health is None:
        gateway, health = start_gateway(config, root)
        if health is None:
            print(f"freeride: could not start a gateway at {root} (see "
                  f"{config.home / 'serve.log'})", file=sys.stderr)
            return 1
    if not args.quiet:
        print(f"freeride: {program} through {root} ({len(health.get('providers', []))} "
              "providers)", file=sys.stderr, flush=True)
    try:
        child = subprocess.Popen(argv, env=env)
    except OSError as e:
        print(f"freeride: cannot run {program}: {e.strerror}", file=sys.stderr)
        return 127
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends Ctrl-C to the agent itself
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        code = child.wait()
    finally:
        if gateway is not None:
            gateway.terminate()
            try:
                gateway.wait(GRACE_SECONDS + 5)
            except subprocess.TimeoutExpired:
                gateway.kill()
    return code if code >= 0 else 128 - code


def start_gateway(config, root):
    """`freeride serve` in the background, its output to serve.log: (the process, its health
    answer at root once it gives one, or None if it did not within 10 s)."""
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(config.home / "serve.log", "ab") as log:  # argv[0]: this script, pyz or launcher
        process = subprocess.Popen([sys.executable, os.path.abspath(sys.argv[0]), "serve"],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True)
    for _ in range(100):  # 10 s at most
        health = fetch_local(root, "/health", 0.5)
        if health is not None or process.poll() is not None:
            return process, health
        time.sleep(0.1)
    return process, None


# -- the command line ------------------------------------------------------------------------

def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _count(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}")
    return int(text)


def scopes():
    """Every --scope value an agent takes, in registry order."""
    return list(dict.fromkeys(s for cls in REGISTRY.values() for s in cls.scopes))


def bind_arguments(bind):
    bind.description = ("Write the gateway into the agent's config file (with a backup), so "
                        "its next start goes through FreeRide. `freeride unbind` undoes it.")
    bind.add_argument("agent", choices=list(REGISTRY))
    bind.add_argument("--scope", choices=scopes(),
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
    unbind.add_argument("agent", choices=list(REGISTRY))
    unbind.add_argument("--scope", choices=scopes(),
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


def run_arguments(run):
    run.description = (
        "Run claude, codex, aider, llm (or `-- any command`) with the environment that points "
        "it at FreeRide; a gateway is started for its lifetime if none answers. The agent's "
        "arguments follow its name; its exit status is run's.")
    run.add_argument("agent", help="claude, codex, aider, llm, or -- then any command")
    run.add_argument("agent_args", nargs=argparse.REMAINDER, help="the agent's own arguments")
    run.add_argument("--quiet", action="store_true", help="print nothing before the agent starts")


def watcher_arguments(watcher):
    watcher.description = ("Run `freeride rotate` every --interval seconds until SIGINT or "
                           "SIGTERM (also installed as the freeride-watcher command).")
    watcher.add_argument("--interval", type=_seconds, default=300.0,
                         help="seconds between checks (default 300)")
    watcher.add_argument("--once", action="store_true", help="check once and exit")
    watcher.add_argument("--timeout", type=_seconds, default=30.0,
                         help="seconds to wait for each model (default 30)")


COMMANDS = {  # name: (its arguments, what runs it); each has its help line in freeride.py
    "run": (run_arguments, cmd_run),
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
