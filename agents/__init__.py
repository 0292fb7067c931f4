"""The agent side of FreeRide: the agents it binds, and OpenClaw's auto / rotate / watcher.

`freeride bind <agent>` writes the gateway into the agent's own config file, so that the
agent's next start goes through FreeRide; `freeride unbind <agent>` puts back what was there
before the first bind. Every config file edited here (OpenClaw's too, for `auto` and
`rotate`) follows the same rules:
  - a file that does not parse, or has a shape FreeRide does not understand, is never
    replaced: the command stops, says where and why, and the file stays byte for byte;
  - only the settings FreeRide owns change: every other key and comment stays as it was;
  - a timestamped backup is written first, then the new content through an atomic rename
    that keeps the file's permissions (a file bind made and that holds only what bind wrote
    gets no backup: unbind deletes it, and then the folders bind made, once they are empty).
The editors are in agents/editors.py. The gateway never imports this package: freeride.py
imports it only when an agent command runs.
"""
import argparse
import base64
import difflib
import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import stat
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import NamedTuple

import providers
from agents.editors import (CannotEdit, TomlDocument, YamlDocument, _json_object, _same,
                            dump_json_config, json_secrets, read_json_config)
from freeride import (FAMILIES, MiB, Pool, Route, UpstreamFailure, _short, error_message,
                      is_loopback, model_context, parse_list, resolve, write_atomic)

# -- what each agent reads ----------------------------------------------------------------

DEFAULT_AGENT_KEY = "freeride-local"  # agents drop keys that are short or look like placeholders
PLACEHOLDER_KEYS = {"any", "none", "null", "dummy", "test", "key", "fake", "empty", "local",
                    "placeholder", "changeme", "no-key", "nokey", "no-key-required", "not-needed",
                    "api-key", "your-api-key", "sk-xxx", "sk-no-key-required"}
SECRET_KEYS = r"(?i)(api[-_]?key|token|secret|password)$"  # keys whose values a diff masks
LLM_KEYS = "keys.json"  # llm's file of keys: every value in it is a secret
HERMES_MIN_CONTEXT = 65536  # Hermes refuses a model that advertises less
LINE_EDITORS = {"yaml": YamlDocument, "toml": TomlDocument}
OPENCLAW_MAX_TOKENS = 8192


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


def user_home(env):
    return Path(env.get("HOME") or Path.home())


def all_routes():
    """Every registered provider as a route without keys: enough to resolve model names."""
    return [Route(cls(), []) for cls in providers.REGISTRY.values()]


def served_context(model):
    """The context windows (smallest first) of the models `model` resolves to, over every
    provider FreeRide knows, from the provider tables."""
    pairs = resolve(all_routes(), model)
    return sorted({model_context(route, model_id) for route, model_id in pairs} - {0})


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


def smallest_context(model):
    """The smallest context window `model` really has on the providers serving it."""
    windows = served_context(model)
    if not windows:
        raise CannotEdit(f"FreeRide knows no context window for {model!r} on any provider; "
                         "choose another --model")
    return windows[0]


def anthropic_base_url(gateway_url):
    """The gateway URL without its /v1, which Anthropic's clients add themselves."""
    return gateway_url[:-3] if gateway_url.endswith("/v1") else gateway_url


def git_root(start):
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def llm_user_dir(env, home, platform=sys.platform):
    """Where Simon Willison's llm keeps its files: $LLM_USER_PATH, else click's app dir."""
    if env.get("LLM_USER_PATH"):
        return Path(env["LLM_USER_PATH"])
    if platform == "darwin":
        return home / "Library" / "Application Support" / "io.datasette.llm"
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home) / "io.datasette.llm"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "io.datasette.llm"


def openclaw_path(env, home):
    return Path(env.get("OPENCLAW_CONFIG_PATH") or home / ".openclaw" / "openclaw.json")


def aider_targets(env, cwd, scope, binding):
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


def continue_targets(env, cwd, scope, binding):
    folder = Path(env.get("CONTINUE_GLOBAL_DIR") or user_home(env) / ".continue")

    def edit(doc):
        for key, value in (("name", "Local Assistant"), ("version", "1.0.0"), ("schema", "v1")):
            if doc.find((key,)) is None:
                doc.set((key,), value)
        doc.upsert_item(("models",), "name", {
            "name": "FreeRide", "provider": "openai", "model": binding.model,
            "apiBase": binding.gateway_url, "apiKey": binding.api_key,
            "roles": ["chat", "edit", "apply"]}, first=True)
    return [Target(folder / "config.yaml", "yaml", edit)]


def hermes_targets(env, cwd, scope, binding):
    folder = Path(env.get("HERMES_HOME") or user_home(env) / ".hermes")

    def edit(doc):
        for key, value in (("default", binding.model), ("provider", "custom"),
                           ("base_url", binding.gateway_url), ("api_key", binding.api_key),
                           ("context_length", hermes_context(binding.model))):
            doc.set(("model", key), value)
    return [Target(folder / "config.yaml", "yaml", edit)]


def openclaw_targets(env, cwd, scope, binding):
    def edit(doc):
        bind_openclaw_models(doc, binding, [binding.model])
        set_openclaw_primary(doc, f"freeride/{binding.model}", None)
    return [Target(openclaw_path(env, user_home(env)), "json", edit)]


def llm_targets(env, cwd, scope, binding):
    folder = llm_user_dir(env, user_home(env))

    def edit_models(doc):
        doc.upsert_item((), "model_id", {
            "model_id": "freeride", "model_name": binding.model, "api_base": binding.gateway_url,
            "api_key_name": "freeride", "supports_tools": True})

    def edit_keys(doc):
        if not doc:
            doc["// Note"] = "This file stores secret API credentials. Do not share!"  # as llm does
        doc["freeride"] = binding.api_key
    return [Target(folder / "extra-openai-models.yaml", "yaml", edit_models),
            Target(folder / LLM_KEYS, "json", edit_keys)]


def claude_targets(env, cwd, scope, binding):
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


def codex_targets(env, cwd, scope, binding):
    folder = Path(env.get("CODEX_HOME") or user_home(env) / ".codex")

    def edit(doc):
        doc.update({(): {"model": binding.model, "model_provider": "freeride",
                         "model_context_window": smallest_context(binding.model)},
                    ("model_providers", "freeride"): {
                        "name": "FreeRide", "base_url": binding.gateway_url,
                        "wire_api": "responses", "experimental_bearer_token": binding.api_key}})
    return [Target(folder / "config.toml", "toml", edit)]


def bind_openclaw_models(doc, binding, model_ids):
    """OpenClaw's `freeride` provider: the gateway, and an entry for each of model_ids."""
    models = _json_object(doc, "models", "openclaw.json")
    models["mode"] = "merge"
    provider = _json_object(_json_object(models, "providers", "models"), "freeride",
                            "models.providers")
    provider.update(baseUrl=binding.gateway_url, apiKey=binding.api_key, api="openai-completions")
    if not isinstance(provider.get("models"), list):
        provider["models"] = []
    for k, model_id in enumerate(model_ids):
        entry = next((m for m in provider["models"] if isinstance(m, dict)
                      and m.get("id") == model_id), None)
        if entry is None:
            entry = {}
            provider["models"].insert(k, entry)
        entry.update(id=model_id, name=f"FreeRide {model_id}", reasoning=False, input=["text"],
                     contextWindow=(served_context(model_id) or [131072])[0],
                     maxTokens=OPENCLAW_MAX_TOKENS)


def set_openclaw_primary(doc, primary, fallbacks):
    """agents.defaults.model: its primary (and fallbacks, unless None); models referenced are
    added to the allowlist agents.defaults.models when the user keeps one."""
    defaults = _json_object(_json_object(doc, "agents", "openclaw.json"), "defaults", "agents")
    if isinstance(defaults.get("model"), str):
        defaults["model"] = {"primary": defaults["model"]}
    model = _json_object(defaults, "model", "agents.defaults")
    model["primary"] = primary
    if fallbacks is not None:
        model["fallbacks"] = fallbacks
    if isinstance(defaults.get("models"), dict):
        for ref in [primary, *(fallbacks or ())]:
            defaults["models"].setdefault(ref, {})


class Agent(NamedTuple):
    title: str
    targets: object     # fn(env, cwd, scope, binding) -> [Target]
    reload: str         # when the agent sees a change, said after bind and unbind
    use: str = ""       # how to use FreeRide from the agent, said after bind
    hot_reload: bool = False


AGENTS = {
    "aider": Agent("Aider", aider_targets, "aider reads its config at start: start it again."),
    "continue": Agent("Continue", continue_targets, "Continue reloads its config by itself.",
                      "Pick the FreeRide model in Continue's model menu.", hot_reload=True),
    "hermes": Agent("Hermes", hermes_targets, "hermes reads its config at start: start it "
                    "again."),
    "openclaw": Agent("OpenClaw", openclaw_targets, "OpenClaw reads its config at start: "
                      "restart it (and its gateway service, if it runs one)."),
    "llm": Agent("llm", llm_targets, "llm reads its config on every run.",
                 "Use it with `llm -m freeride`, or make it the default with "
                 "`llm models default freeride`.", hot_reload=True),
    "claude": Agent("Claude Code", claude_targets, "Claude Code reads its settings at start: "
                    "quit it and run `claude` again."),
    "codex": Agent("Codex", codex_targets, "Codex reads its config at start: quit it and run "
                   "`codex` again."),
}


def say_reload(agent):
    print(("hot reload: " if agent.hot_reload else "restart needed: ") + agent.reload)


# -- planning and writing changes -------------------------------------------------------------

class FileChange(NamedTuple):
    """One file to write (after=None: to delete). before=None: the file does not exist.
    backup=False: what it holds is not kept before it is replaced (see bind_wrote)."""
    path: Path
    before: object
    after: object
    mode: int
    secrets: frozenset
    backup: bool = True


NONBLOCKING = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO does not wait (none on Windows)


def _read(path):
    """A config file's bytes; None if there is none. Only a regular file is read: a FIFO would
    wait for a writer and a device such as /dev/zero never ends. It is looked at before it
    is opened and again once open (without waiting), in case it was swapped in between."""
    try:
        _regular(path, os.stat(path).st_mode)
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | NONBLOCKING)) as f:
            _regular(path, os.fstat(f.fileno()).st_mode)
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CannotEdit(f"cannot read {path}: {e.strerror or e}") from None


def _regular(path, mode):
    if stat.S_ISDIR(mode):
        raise CannotEdit(f"{path} is a directory, not a config file")
    if not stat.S_ISREG(mode):
        raise CannotEdit(f"{path} is not a regular file (a FIFO, a device or a socket); "
                         "FreeRide edits only regular files")


def plan(targets):
    """The change each target's edit makes to its file, computed without writing anything."""
    changes = []
    for target in targets:
        path = target.path.resolve()  # a symlinked dotfile is edited where it really lives
        before = _read(path)
        try:
            text = before.decode("utf-8") if before is not None else ""
        except UnicodeDecodeError:
            raise CannotEdit(f"{path} is not UTF-8 text") from None
        if target.kind in LINE_EDITORS:
            doc = LINE_EDITORS[target.kind](text, str(path))
            target.edit(doc)
            after = doc.text()
        else:
            old, doc = read_json_config(text, str(path)), read_json_config(text, str(path))
            target.edit(doc)
            after = text if _same(old, doc) else dump_json_config(doc, text)
        mode = os.stat(path).st_mode & 0o7777 if before is not None else 0o600
        after = after.encode("utf-8")
        changes.append(FileChange(path, before, after, mode,
                                  secrets_in(path, before) | secrets_in(path, after)))
    return changes


def secrets_in(path, data):
    """The values in a config file a diff must not show: those of keys named like a key,
    token, secret or password (and every value of llm's keys.json)."""
    try:
        text = (data or b"").decode("utf-8")
        if path.suffix == ".json":
            doc = read_json_config(text, str(path))
            found = json_secrets(doc, SECRET_KEYS)
            if path.name == LLM_KEYS:
                found |= {v for k, v in doc.items()
                          if isinstance(v, str) and not k.startswith("//")}
        else:
            editor = TomlDocument if path.suffix == ".toml" else YamlDocument
            found = editor(text, str(path)).secrets(SECRET_KEYS)
    except (CannotEdit, UnicodeDecodeError):
        return frozenset()
    return frozenset(s for s in found if len(s) >= 8 and s != DEFAULT_AGENT_KEY
                     and not s.startswith("${"))


def show_diff(change, out):
    """The change as a unified diff, with secrets (the user's other keys) masked."""
    def lines(data):
        return data.decode("utf-8", "replace").splitlines(keepends=True) if data is not None else []
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in difflib.unified_diff(
                       lines(change.before), lines(change.after),
                       f"{change.path} (before)" if change.before is not None else "/dev/null",
                       str(change.path) if change.after is not None else "/dev/null"))
    for secret in sorted(change.secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    out.write(text)


def write_file(path, data, mode):
    """Replace path with data atomically; the file gets exactly `mode` (whatever the umask)."""
    write_atomic(path, data, mode)


def write_backup(path, data, mode):
    """A timestamped copy of a file's old content next to it, with its mode; its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        backup = path.with_name(f"{path.name}.freeride-backup-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(backup, mode)
        return backup


def apply(change):
    """Write one planned change, after a backup of what the file held; the backup's path."""
    if _read(change.path) != change.before:
        raise CannotEdit(f"{change.path} changed while FreeRide was editing it; run the "
                         "command again")
    backup = None
    if change.before is not None and change.backup:
        backup = write_backup(change.path, change.before, os.stat(change.path).st_mode & 0o7777)
    if change.after is None:
        change.path.unlink()
    else:
        write_file(change.path, change.after, change.mode)
    return backup


def apply_all(changes, dry_run, out):
    """Show each change as a diff and, unless dry_run, write it; False if nothing changed."""
    changes = [c for c in changes if c.after != c.before]
    for change in changes:
        show_diff(change, out)
    if dry_run and changes:
        out.write("(dry run: nothing was written)\n")
    if dry_run or not changes:
        return bool(changes)
    for change in changes:
        backup = apply(change)
        what = "deleted" if change.after is None else "wrote"
        out.write(f"{what} {change.path}" + (f" (backup of the old file: {backup})\n" if backup
                                              else " (new file)\n" if change.before is None
                                              else " (no backup: it held only what bind wrote)\n"))
    return True


# -- what unbind restores ---------------------------------------------------------------------

def records_path(config, agent):
    return config.home / "bind" / f"{agent}.json"


def load_records(config, agent):
    """{file path: what it held before the first bind} for an agent."""
    path = records_path(config, agent)
    try:
        doc = json.loads(path.read_bytes())
        return {row["path"]: row for row in doc["files"]}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CannotEdit(f"{path} (what unbind restores) cannot be read ({e}); fix or remove "
                         "it first") from None


def save_records(config, agent, records):
    path = records_path(config, agent)
    if records:
        write_atomic(path, json.dumps({"version": 1, "agent": agent,
                                       "files": list(records.values())}, indent=1).encode())
    elif path.exists():
        path.unlink()


def original(change):
    """The record of a file as it was before FreeRide first changed it; for a new file, also
    the folders that writing it makes, which unbind removes once they are empty again."""
    return {"path": str(change.path), "existed": change.before is not None,
            "mode": change.mode if change.before is not None else None,
            "content": base64.b64encode(change.before or b"").decode(),
            "dirs": missing_folders(change.path) if change.before is None else [],
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def missing_folders(path):
    """The folders above path that do not exist yet, the deepest first."""
    missing = []
    for folder in path.parents:
        if folder.exists():
            break
        missing.append(str(folder))
    return missing


def bind_wrote(row, data):
    """True if data is what bind last wrote into a file that bind made: nothing in it is the
    user's, so it is replaced or deleted without a backup (which would also keep its folder
    from being empty again)."""
    return bool(row) and not row["existed"] and data is not None \
        and hashlib.sha256(data).hexdigest() == row.get("written")


def remove_folders(folders, out):
    """Remove each folder bind made that is empty again, the deepest first; any other stays."""
    for folder in sorted(set(folders), key=len, reverse=True):
        try:
            os.rmdir(folder)
        except OSError:
            continue  # not empty (the user's files, a backup), or gone already
        out.write(f"deleted {folder} (an empty folder bind made)\n")


# -- commands ---------------------------------------------------------------------------------

def default_gateway_url(config):
    host = config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{config.port}/v1"


def gateway_answers(url, timeout=1.0):
    """True if something answers GET /health at the gateway URL's host (loopback only)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def cmd_bind(args, config):
    agent = AGENTS[args.agent]
    if args.scope and args.agent != "aider":
        print("freeride: --scope is for aider only", file=sys.stderr)
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
        _print_by_hand(args.agent, binding._replace(api_key="$FREERIDE_API_KEY")
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
    if is_loopback(urllib.parse.urlsplit(url).hostname) and not gateway_answers(url):
        print(f"note: no gateway answers at {url} yet; start it with `freeride serve`")
    return 0


def _print_by_hand(agent, binding):
    """What the settings look like in a fresh file, for a user who will edit theirs by hand."""
    try:
        for target in AGENTS[agent].targets({"HOME": "/nonexistent"}, Path("/nonexistent"),
                                            "home", binding):
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
    agent = AGENTS[args.agent]
    if args.scope and args.agent != "aider":
        print("freeride: --scope is for aider only", file=sys.stderr)
        return 2
    try:
        records = load_records(config, args.agent)
        chosen = dict(records)
        if args.scope:
            [target] = agent.targets(config.env, Path.cwd(), args.scope, None)
            chosen = {p: r for p, r in records.items() if p == str(target.path.resolve())}
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


# -- OpenClaw's v2 commands: auto, rotate, watcher --------------------------------------------

def openclaw_config(config):
    """(path, settings) of OpenClaw's config file; CannotEdit if it is missing or unreadable."""
    path = openclaw_path(config.env, user_home(config.env))
    data = _read(path.resolve())
    if data is None:
        raise CannotEdit(f"{path} does not exist: run OpenClaw once, or point "
                         "OPENCLAW_CONFIG_PATH at its config")
    try:
        return path, read_json_config(data.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise CannotEdit(f"{path} is not UTF-8 text") from None


def openclaw_models(doc):
    """(primary, fallbacks) of agents.defaults.model (a ref string, or {primary, fallbacks})."""
    defaults = (doc.get("agents") or {}).get("defaults") or {}
    model = defaults.get("model") if isinstance(defaults, dict) else None
    if isinstance(model, str):
        return model, []
    if not isinstance(model, dict):
        return None, []
    fallbacks = model.get("fallbacks")
    return model.get("primary"), [f for f in fallbacks if isinstance(f, str)] \
        if isinstance(fallbacks, list) else []


def gateway_fallbacks(model, count):
    """Model families the gateway serves with tools, other than model: most providers first."""
    routes = all_routes()
    served = [(len({r.name for r, _ in resolve(routes, family, tools=True)}), family)
              for family in FAMILIES if family != model]
    return [family for n, family in sorted(served, key=lambda s: -s[0]) if n][:count]


def openrouter_free_models(config, key):
    """The ids of OpenRouter's free text models (`:free`, or priced "0"), best first: those
    that take tools, then the largest context. UpstreamFailure if the list cannot be had."""
    cls = providers.REGISTRY["openrouter"]
    provider = cls(config.env.get(cls.base_url_var or "OPENROUTER_BASE_URL") or None)
    pool = Pool(config.connect_timeout)
    try:
        response = pool.request("GET", provider.catalog_url(), None, provider.headers(key),
                                config.first_byte_timeout)
        try:
            body = response.read(32 * MiB)
        except (OSError, http.client.HTTPException) as e:
            raise UpstreamFailure(0, reason=f"the list was cut off: {_short(e)}") from None
        finally:
            pool.discard(response)
    finally:
        pool.close()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if response.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        message = error_message(doc, body.decode("utf-8", "replace"))
        raise UpstreamFailure(response.status, reason=config.redact(
            f"HTTP {response.status}: {message}" if response.status != 200 else
            "the answer is not a model list"))
    free = []
    for row in doc["data"]:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        pricing = row.get("pricing") if isinstance(row.get("pricing"), dict) else {}
        architecture = row.get("architecture") if isinstance(row.get("architecture"), dict) else {}
        if not (row["id"].endswith(":free") or (str(pricing.get("prompt")) == "0"
                                                and str(pricing.get("completion")) == "0")):
            continue
        if "text" not in (architecture.get("output_modalities") or ["text"]):
            continue
        tools = "tools" in (row.get("supported_parameters") or ())
        free.append((not tools, -providers._context_of(row), row["id"]))
    return [model_id for *_, model_id in sorted(free)]


def cmd_auto(args, config):
    try:
        path, doc = openclaw_config(config)
        provider = ((doc.get("models") or {}).get("providers") or {}).get("freeride")
        if isinstance(provider, dict) and provider.get("baseUrl"):
            primary, _ = openclaw_models(doc)
            listed = [m.get("id") for m in provider.get("models") or () if isinstance(m, dict)]
            model = primary[len("freeride/"):] if (primary or "").startswith("freeride/") else \
                next((m for m in listed if isinstance(m, str)), "auto")
            fallbacks = gateway_fallbacks(model, args.count)
            binding = Binding(provider["baseUrl"], model,
                              provider.get("apiKey") or DEFAULT_AGENT_KEY)
            refs = [f"freeride/{m}" for m in (model, *fallbacks)]

            def edit(d):
                bind_openclaw_models(d, binding, [model, *fallbacks])
                set_openclaw_primary(d, refs[0], refs[1:])
            how = "through the FreeRide gateway"
        else:
            keys = parse_list("OPENROUTER_API_KEY", config.env.get("OPENROUTER_API_KEY"))
            if not keys:
                print("freeride: OpenClaw is not bound to the gateway and OPENROUTER_API_KEY is "
                      "not set: run `freeride bind openclaw`, or set OPENROUTER_API_KEY",
                      file=sys.stderr)
                return 2
            ranked = openrouter_free_models(config, keys[0])
            if not ranked:
                print("freeride: OpenRouter lists no free model right now; nothing changed",
                      file=sys.stderr)
                return 1
            refs = [f"openrouter/{m}" for m in ranked[:args.count + 1]]

            def edit(d):
                set_openclaw_primary(d, refs[0], refs[1:])
            how = "straight to OpenRouter's free models (`freeride bind openclaw` adds failover " \
                  "across every provider)"
        changed = apply_all(plan([Target(path, "json", edit)]), args.dry_run, sys.stdout)
    except CannotEdit as e:
        print(f"freeride: {e}. Nothing was changed.", file=sys.stderr)
        return 1
    except (UpstreamFailure, OSError) as e:
        print(f"freeride: cannot list OpenRouter's models: {getattr(e, 'reason', '') or e}",
              file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    print(f"freeride: OpenClaw's primary model is {refs[0]}, with {len(refs) - 1} fallbacks, "
          f"{how}" + ("" if changed else "; it already was, nothing changed"))
    if changed:
        say_reload(AGENTS["openclaw"])
    return 0


def openclaw_endpoint(config, doc, ref):
    """((base URL, key, model id), None) to call an OpenClaw model ref such as
    "freeride/auto" directly, or (None, why it cannot be)."""
    name, _, model = ref.partition("/")
    custom = ((doc.get("models") or {}).get("providers") or {}).get(name)
    if isinstance(custom, dict) and custom.get("baseUrl"):
        if custom.get("api", "openai-completions") != "openai-completions":
            return None, f"provider {name!r} does not use OpenAI chat completions"
        key = str(custom.get("apiKey") or "")
        variable = re.fullmatch(r"\$\{(\w+)\}", key)  # OpenClaw's reference to a variable
        return (custom["baseUrl"], config.env.get(variable.group(1), "") if variable else key,
                model), None
    if name == "openrouter":
        keys = parse_list("OPENROUTER_API_KEY", config.env.get("OPENROUTER_API_KEY"))
        if not keys:
            return None, "OPENROUTER_API_KEY is not set"
        cls = providers.REGISTRY["openrouter"]
        return (config.env.get(cls.base_url_var or "OPENROUTER_BASE_URL") or cls.base_url,
                keys[0], model), None
    return None, (f"FreeRide tests only OpenAI-compatible providers (freeride, openrouter, "
                  f"models.providers), not {name!r}")


def probe(config, pool, endpoint, timeout):
    """Ask a model for a few tokens; None if it answered, else what went wrong."""
    base, key, model = endpoint
    body = json.dumps({"model": model, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "Reply with OK."}]}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    try:
        response = pool.request("POST", base.rstrip("/") + "/chat/completions", body, headers,
                                timeout)
        try:
            data = response.read(1 * MiB)
        finally:
            pool.discard(response)
    except UpstreamFailure as e:
        return e.reason
    except (OSError, http.client.HTTPException) as e:
        return _short(e)
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if response.status != 200:
        text = data.decode("utf-8", "replace")
        return config.redact(f"HTTP {response.status}: {error_message(doc, text)}")[:300]
    if not isinstance(doc, dict) or not doc.get("choices"):
        return "the answer holds no choices"
    return None


def rotate(config, timeout, dry_run, out):
    """Test OpenClaw's primary model; if it fails, make the first fallback that answers the
    primary (the failed one goes last among the fallbacks). 0: the primary works or was
    replaced; 1: nothing answered; 2: nothing to test."""
    path, doc = openclaw_config(config)
    primary, fallbacks = openclaw_models(doc)
    if not primary:
        out.write("OpenClaw has no primary model (agents.defaults.model.primary); run "
                  "`freeride auto` first\n")
        return 2
    endpoint, why = openclaw_endpoint(config, doc, primary)
    if endpoint is None:
        out.write(f"cannot test the primary model {primary}: {why}\n")
        return 2
    pool = Pool(config.connect_timeout)
    try:
        failure = probe(config, pool, endpoint, timeout)
        if failure is None:
            out.write(f"primary {primary} answers; nothing changed\n")
            return 0
        out.write(f"primary {primary} failed: {failure}\n")
        for ref in fallbacks:
            endpoint, why = openclaw_endpoint(config, doc, ref)
            failure = why if endpoint is None else probe(config, pool, endpoint, timeout)
            if failure is None:
                rest = [f for f in fallbacks if f != ref] + [primary]

                def edit(d, ref=ref, rest=rest):
                    set_openclaw_primary(d, ref, rest)
                apply_all(plan([Target(path, "json", edit)]), dry_run, out)
                out.write(f"primary {'would become' if dry_run else 'is now'} {ref}; {primary} "
                          "goes to the end of the fallbacks" + ("" if dry_run else
                          "\nrestart needed: " + AGENTS["openclaw"].reload) + "\n")
                return 0
            out.write(f"fallback {ref} failed: {failure}\n")
    finally:
        pool.close()
    out.write("no fallback answered; nothing changed\n")
    return 1


def cmd_rotate(args, config):
    try:
        return rotate(config, args.timeout, args.dry_run, sys.stdout)
    except CannotEdit as e:
        print(f"freeride: {e}. Nothing was changed.", file=sys.stderr)
        return 1


def cmd_watcher(args, config):
    """Rotate on failure every --interval seconds until SIGINT or SIGTERM (or once)."""
    if args.once:
        return cmd_rotate(argparse.Namespace(timeout=args.timeout, dry_run=False), config)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"freeride watcher: testing OpenClaw's primary model every {args.interval:g} s; "
          "Ctrl-C stops it", flush=True)
    try:
        while not stop.is_set():
            print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] ", end="")
            try:
                rotate(config, args.timeout, False, sys.stdout)
            except CannotEdit as e:
                print(f"freeride watcher: {e}; trying again in {args.interval:g} s")
            sys.stdout.flush()
            stop.wait(args.interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("freeride watcher: stopped", flush=True)
    return 0



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


from agents import commands  # noqa: E402  (it uses the names above)
