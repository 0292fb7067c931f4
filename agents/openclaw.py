"""OpenClaw (the open-source personal assistant): a `freeride` provider in its openclaw.json,
and OpenClaw's own commands, auto, rotate and watcher, which keep its model working.

OpenClaw reads openclaw.json ($OPENCLAW_CONFIG_PATH moves it) at start, and so does its
gateway service [D: https://docs.openclaw.ai]. `models.providers.<name>` adds an
OpenAI-compatible provider (`baseUrl`, `apiKey`, `api: "openai-completions"`, its `models`),
which `models.mode: "merge"` keeps beside the built-in ones; `agents.defaults.model` holds
the `primary` model ref ("provider/model") and its `fallbacks`, and `agents.defaults.models`,
when present, is an allowlist every ref used must be in. An `apiKey` may name a variable as
"${NAME}".

auto sets the primary and fallbacks (through the gateway when bound, else to OpenRouter's
free models); rotate asks the primary for a few tokens and, if it fails, makes the first
fallback that answers the primary; watcher rotates in a loop until SIGINT or SIGTERM.
"""
import argparse
import http.client
import json
import re
import select
import signal
import socket
import sys
import time
from pathlib import Path

import providers
from agents import (DEFAULT_AGENT_KEY, Agent, Binding, Target, all_routes, say_reload,
                    served_context, user_home)
from agents.changes import _read, apply_all, plan
from agents.editors import CannotEdit, _json_object, read_json_config
from freeride import (FAMILIES, MiB, Pool, UpstreamFailure, _short, error_message, parse_list,
                      resolve)

OPENCLAW_MAX_TOKENS = 8192


def openclaw_path(env, home):
    return Path(env.get("OPENCLAW_CONFIG_PATH") or home / ".openclaw" / "openclaw.json")


class OpenClaw(Agent):
    name = "openclaw"
    title = "OpenClaw"
    reload = ("OpenClaw reads its config at start: restart it (and its gateway service, if it "
              "runs one).")

    def targets(self, env, cwd, scope, binding):
        def edit(doc):
            bind_openclaw_models(doc, binding, [binding.model])
            set_openclaw_primary(doc, f"freeride/{binding.model}", None)
        return [Target(openclaw_path(env, user_home(env)), "json", edit)]


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
    """The ids of OpenRouter's free chat models (as its live catalog tells them), best first:
    those that take tools, then the largest context. UpstreamFailure if the list cannot be had."""
    cls = providers.REGISTRY["openrouter"]
    provider = cls(config.env.get(cls.base_url_var or "OPENROUTER_BASE_URL") or None)
    pool = Pool(config.connect_timeout)
    try:
        status, _, body = pool.get(provider.catalog_url(), provider.headers(key),
                                   config.first_byte_timeout)
    finally:
        pool.close()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        message = error_message(doc, body.decode("utf-8", "replace"))
        raise UpstreamFailure(status, reason=config.redact(
            f"HTTP {status}: {message}" if status != 200 else "the answer is not a model list"))
    free = providers.Provider.catalog(provider, doc)  # the base's: without the router first
    return [m.id for m in sorted(free, key=lambda m: (not m.tools, -m.context, m.id))]


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
        say_reload(OpenClaw)
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
                          "\nrestart needed: " + OpenClaw.reload) + "\n")
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


def stopped(wakeup, stops, seconds):
    """True if one of the signals `stops` comes within `seconds` (or came already), read from
    the socket the interpreter writes each signal's number to."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([wakeup], [], [], left)[0] and set(wakeup.recv(64)) & set(stops):
            return True
    return False


def cmd_watcher(args, config):
    """Rotate on failure every --interval seconds until SIGINT or SIGTERM (or once).

    A signal only wakes the loop: the interpreter writes its number to a socket, which the
    loop waits on between rounds (as freeride.stop_signals does for serve). A handler that
    set a threading.Event could deadlock on the Event's lock if the signal came while the
    loop held it, inside Event.wait."""
    if args.once:
        return cmd_rotate(argparse.Namespace(timeout=args.timeout, dry_run=False), config)
    stops = (signal.SIGINT, signal.SIGTERM)
    readable, writable = socket.socketpair()
    writable.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writable.fileno(), warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    print(f"freeride watcher: testing OpenClaw's primary model every {args.interval:g} s; "
          "Ctrl-C stops it", flush=True)
    try:
        while True:
            print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] ", end="")
            try:
                rotate(config, args.timeout, False, sys.stdout)
            except CannotEdit as e:
                print(f"freeride watcher: {e}; trying again in {args.interval:g} s")
            sys.stdout.flush()
            if stopped(readable, stops, args.interval):
                break
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        readable.close()
        writable.close()
    print("freeride watcher: stopped", flush=True)
    return 0
