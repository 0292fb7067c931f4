#!/usr/bin/env python3
"""FreeRide: one local OpenAI endpoint in front of your free-tier LLM providers.

An agent talks to http://127.0.0.1:11343/v1 as if it were OpenAI. For each request FreeRide
resolves the model into candidates (provider, model id), walks their keys in turn and relays
the first answer. A failure is classified (rate limit, daily quota, bad key, unknown model,
context too large, client error, upstream down) and decides the next step: the next key, the
next provider, or the client's own error returned as is. Rate-limited keys cool down for as
long as the provider says, and the cooldowns survive restarts. Nothing paid is ever used:
when every free candidate is spent the request fails with an error that lists each attempt.

The file reads top to bottom in the order data flows, one banner per part:

  config    flags, environment and FREERIDE_HOME, read once into a Config
  state     cooldowns (in memory; flushed to cooldown.json off the request path) and the
            events log (events.jsonl), both written by one background thread
  upstream  a keep-alive connection pool over http.client, and the SSE event reader
  router    model resolution, the failure classifier and the walk over (provider, key)
  front     the threaded HTTP server: routing, request bodies, OpenAI-shaped errors
  dialects  translations onto that one walk: chat completions (passed through), the
            Anthropic Messages API (Claude Code) and the OpenAI Responses API (Codex)
  pack      the single-file build (freeride.pyz), made from the code that is running
  bind      the glue of the agent commands (run, bind, unbind, and OpenClaw's auto,
            rotate, watcher), which run in agents/ and import it only then
  cli       argparse subcommands

Two packages sit beside this file, the two sides of the gateway: providers/ upstream (data
plus small hooks: everything on the wire lives in this file) and agents/ downstream (each
agent's config files and settings, the YAML, TOML and JSON editors, backups and unbind). The
gateway never imports agents/. Standard library only; Python 3.10 or newer.
"""

import argparse
import base64
import calendar
import collections
import email.utils
import functools
import errno
import hashlib
import heapq
import hmac
import html
import http.client
import io
import ipaddress
import itertools
import json
import os
import random
import re
import select
import selectors
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import providers
from providers import (AUTH, CLIENT, CONTEXT, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA,
                       RATE_LIMIT, UPSTREAM, Rule)

__version__ = "0.1.0"

# =============================================================================================
# config
# =============================================================================================

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11343
MiB = 1024 * 1024


class ConfigError(Exception):
    """A setting is wrong; the message names the variable and never its secret value."""


class Key(NamedTuple):
    """One credential of a provider. `id` (a hash) is what state files and events name."""
    provider: str
    index: int
    secret: str
    account: str
    id: str


def key_id(provider, secret, account=""):
    return hashlib.sha256(f"{provider}\0{account}\0{secret}".encode()).hexdigest()[:16]


def parse_list(var, value):
    """A variable holding one value, or a JSON array of values (several keys)."""
    value = (value or "").strip()
    if not value.startswith("["):
        return [value] if value else []
    try:
        items = json.loads(value)
    except ValueError:
        raise ConfigError(f"{var} starts with '[' but is not a valid JSON array") from None
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ConfigError(f"{var} must be a JSON array of non-empty strings")
    return list(dict.fromkeys(i.strip() for i in items))


class Offer(NamedTuple):
    """What a provider serves right now: its models in walk order (the module's preferred
    ones the live catalog confirms, then the catalog's other free models), `live` once a
    catalog is known, `gone`: the module's models the catalog no longer lists, its embedding
    models ({id: dimension}, 0 unknown) and the first model of each family, in walk order."""
    models: tuple
    ids: frozenset
    live: bool = False
    gone: tuple = ()
    embeddings: dict = {}
    families: dict = {}

    @classmethod
    def of(cls, models, live=False, gone=(), embeddings=None):
        """An Offer of these models: their ids and families worked out once, not per request."""
        families = {}
        for model in models:
            families.setdefault(family_of(model.id), model.id)
        families.pop(None, None)
        return cls(tuple(models), frozenset(m.id for m in models), live, gone,
                   dict(embeddings or {}), families)


class Route:
    """A configured provider: its Provider object, its keys (taken in turn), what it offers
    now (swapped whole by the catalogs, so readers need no lock) and, for providers that
    take one request at a time per key, the keys in use."""

    def __init__(self, provider, keys):
        self.provider = provider
        self.name = provider.name
        self.keys = keys
        self._turn = itertools.count()
        self.offer = Offer.of(provider.models, embeddings=provider.embedding_models)
        self.available = not provider.local_server  # a local server: once a probe finds it
        self.busy = {}  # key id -> requests in flight (provider.concurrency > 0 only)
        self.lock = threading.Lock()

    def keys_in_turn(self):
        """All keys, starting one further each call, so load spreads round-robin."""
        start = next(self._turn) % len(self.keys)
        return self.keys[start:] + self.keys[:start]

    def serves(self, model):
        """True if this provider answers `model` by that exact name now (its live catalog,
        or before one is known, what its module accepts)."""
        offer = self.offer
        return model in offer.ids or (not offer.live and self.provider.serves(model))

    def info(self, model_id):
        return next((m for m in self.offer.models if m.id == model_id), None) \
            or self.provider.model_info(model_id)

    def take(self, key):
        """A slot for one request on key (always, without a concurrency limit)."""
        limit = self.provider.concurrency
        if not limit:
            return True
        with self.lock:
            if self.busy.get(key.id, 0) >= limit:
                return False
            self.busy[key.id] = self.busy.get(key.id, 0) + 1
            return True

    def give(self, key):
        if self.provider.concurrency:
            with self.lock:
                self.busy[key.id] = max(0, self.busy.get(key.id, 0) - 1)


class Config:
    """Everything FreeRide reads from flags and environment, read once (flag > env > default)."""

    def __init__(self, env=None, host=None, port=None, demo=False):
        self.env = env = dict(os.environ if env is None else env)
        self.host = host or env.get("FREERIDE_HOST") or DEFAULT_HOST
        self.port = self._number(env, "FREERIDE_PORT", DEFAULT_PORT, int) if port is None else port
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"FREERIDE_PORT must be a port, 0 to 65535, not {self.port}")
        self.home = Path(env.get("FREERIDE_HOME") or Path.home() / ".freeride").expanduser()
        self.events = _flag(env, "FREERIDE_EVENTS", True)
        self.api_key = env.get("FREERIDE_API_KEY", "")
        self.allowed_origins = {o.rstrip("/") for o in _words(env.get("FREERIDE_ALLOWED_ORIGINS"))}
        self.ca_bundle = env.get("FREERIDE_CA_BUNDLE", "").strip()
        self.connect_timeout = self._number(env, "FREERIDE_CONNECT_TIMEOUT", 10.0)
        # Dead or slow: the head within 15 s, then something (content, reasoning or a keep-
        # alive comment) within 60 s, then never 30 s of silence (README, "Deadlines").
        self.first_byte_timeout = self._number(env, "FREERIDE_FIRST_BYTE_TIMEOUT", 15.0)
        self.first_content_timeout = self._number(env, "FREERIDE_FIRST_CONTENT_TIMEOUT", 60.0)
        self.idle_timeout = self._number(env, "FREERIDE_IDLE_TIMEOUT", 30.0)
        self.request_deadline = self._number(env, "FREERIDE_REQUEST_DEADLINE", 300.0)
        self.max_body = self._number(env, "FREERIDE_MAX_BODY", 32 * MiB, int)
        self.client_timeout = self._number(env, "FREERIDE_CLIENT_TIMEOUT", 60.0)
        self.max_connections = self._number(env, "FREERIDE_MAX_CONNECTIONS", 128, int)
        self.claude_model = env.get("FREERIDE_CLAUDE_MODEL", "").strip()
        self.catalog_ttl = self._number(env, "FREERIDE_CATALOG_TTL", 4 * 3600.0)
        self.limits = self._limits(env.get("FREERIDE_LIMITS", ""))
        self.live_catalogs = _flag(env, "FREERIDE_CATALOGS", True)
        self.local_probe = self._number(env, "FREERIDE_LOCAL_PROBE", 60.0)
        self.demo = demo
        # unconfigured: (provider, what to set); half_configured: providers set up halfway
        self.routes, self.unconfigured, self.half_configured = self._routes(env, demo)
        self.telemetry_url = env.get("FREERIDE_TELEMETRY_URL", "").strip()
        self.telemetry_interval = self._number(env, "FREERIDE_TELEMETRY_INTERVAL", 3600.0)
        secrets_ = sorted(({k.secret for r in self.routes for k in r.keys} | {self.api_key}) - {""},
                          key=len, reverse=True)
        self._secret_pattern = re.compile("|".join(map(re.escape, secrets_))) if secrets_ else None
        # Whole answers are scanned only for key-sized secrets: a one-letter test "key" would
        # otherwise turn every "g" a model writes into [redacted].
        whole = [s.encode() for s in secrets_ if len(s) >= 8]
        self._secret_bytes = re.compile(b"|".join(map(re.escape, whole))) if whole else None

    @staticmethod
    def _number(env, var, default, kind=float):
        raw = env.get(var, "").strip()
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{var} must be a number, not {raw!r}") from None
        if not value > 0:  # nan too
            raise ConfigError(f"{var} must be greater than 0")
        if value == float("inf"):  # no socket takes it
            raise ConfigError(f"{var} must be a finite number")
        return value

    @staticmethod
    def _limits(raw):
        """FREERIDE_LIMITS: the user's free limits, over the modules' (say after buying
        OpenRouter credit): {"openrouter": {"requests/day": 1000}}."""
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
            if not all(isinstance(v, dict) and all(
                    re.fullmatch(r"(requests|tokens)/(minute|hour|day|month)", k) and _is_int(n)
                    for k, n in v.items()) for v in doc.values()):
                raise ValueError
            return doc
        except (ValueError, AttributeError):
            raise ConfigError('FREERIDE_LIMITS must be JSON like {"openrouter": '
                              '{"requests/day": 1000}} (requests or tokens, per minute, hour, '
                              'day or month)') from None

    @staticmethod
    def _routes(env, demo):
        if demo:
            provider = providers.DEMO()
            return [Route(provider, [Key("demo", i, s, "", key_id("demo", s))
                                     for i, s in enumerate(provider.keys)])], [], set()
        names = [n.lower() for n in _words(env.get("FREERIDE_PROVIDERS"))]
        for name in names:
            if name not in providers.REGISTRY:
                raise ConfigError(f"FREERIDE_PROVIDERS names an unknown provider {name!r} "
                                  f"(known: {', '.join(providers.REGISTRY)})")
        keyless = _flag(env, "FREERIDE_KEYLESS", False)
        local = _flag(env, "FREERIDE_LOCAL", True)
        routes, unconfigured, half = [], [], set()
        for name in names or list(providers.REGISTRY):
            cls = providers.REGISTRY[name]
            base_url = env.get(cls.base_url_var or f"{name.upper()}_BASE_URL", "").strip()
            provider = cls(base_url or None, _words(env.get(cls.models_override_var)))
            anonymous = [Key(name, 0, "", "", key_id(name, ""))]
            if cls.local_server:
                if local:
                    routes.append(Route(provider, anonymous))
                continue
            found = [(var, s) for var in cls.key_vars for s in parse_list(var, env.get(var))]
            for var, secret in found:
                if not all(33 <= ord(c) < 127 for c in secret):
                    raise ConfigError(f"{var} holds a key with a space, line break or "
                                      "non-ASCII character; paste the key again")
            secrets_ = [s for _, s in found] if cls.send_key else []
            if cls.keyless and not secrets_:
                if keyless or name in names:
                    routes.append(Route(provider, anonymous))
                else:
                    unconfigured.append((name, "keyless, off: FREERIDE_KEYLESS=1 turns it on" + (
                        f" (or set {cls.key_vars[0]})" if cls.key_vars else "")))
                continue
            accounts = parse_list(cls.account_var, env.get(cls.account_var)) \
                if cls.account_var else []
            if not secrets_ or ("{account_id}" in provider.base_url and not accounts):
                if secrets_ or accounts:  # set up halfway: one of the two is missing
                    half.add(name)
                    have, lack = (cls.key_vars[0], cls.account_var) if secrets_ \
                        else (cls.account_var, cls.key_vars[0])
                    unconfigured.append((name, f"{have} is set but {lack} is missing"))
                else:
                    unconfigured.append((name, f"set {' or '.join(cls.key_vars)}"
                                         + (f" and {cls.account_var}" if cls.account_var else "")))
                continue
            if accounts and len(accounts) not in (1, len(secrets_)):
                raise ConfigError(f"{cls.account_var} must hold one account id, or one per key "
                                  f"in {cls.key_vars[0]}")
            if len(accounts) < 2:  # one account (or none) for every key
                accounts = (accounts or [""]) * len(secrets_)
            routes.append(Route(provider, [Key(name, i, s, a, key_id(name, s, a))
                                           for i, (s, a) in enumerate(zip(secrets_, accounts))]))
        return routes, unconfigured, half

    def redact(self, text):
        """Remove every configured secret from text that is about to leave the process."""
        if self._secret_pattern is None or not text:
            return text
        return self._secret_pattern.sub("[redacted]", text)

    def redact_bytes(self, data):
        """redact() for bytes about to reach a client: a provider that echoes a key (in an
        error, an answer or a stream event) never hands it on. One C search when clean."""
        if self._secret_bytes is None or not self._secret_bytes.search(data):
            return data
        return self._secret_bytes.sub(b"[redacted]", data)

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _words(value):
    """A comma-separated variable's values, spaces trimmed, empty ones left out."""
    return [w.strip() for w in (value or "").split(",") if w.strip()]


def _flag(env, var, default):
    value = env.get(var, "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


def is_loopback(host):
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


# =============================================================================================
# state
# =============================================================================================

EVENTS_MAX = 1 * MiB


def write_atomic(path, data, mode=0o600):
    """Write bytes to path via a temp file and a rename (mode 0600 unless told): no half file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # exactly this mode, whatever the umask
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class locked:
    """An exclusive lock on `path`.lock for a read-merge-write of a state file that other
    processes (a second gateway, the CLI) may write at the same time."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.file = os.fdopen(os.open(self.path.with_name(self.path.name + ".lock"),
                                      os.O_WRONLY | os.O_CREAT, 0o600), "w")
        try:
            import fcntl
        except ImportError:  # Windows: one gateway per FREERIDE_HOME there
            return self
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()


def set_aside(path, why):
    """Move an unreadable state file out of the way, keeping it for the user to inspect."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, aside)
    except OSError:
        aside = None
    print(f"freeride: warning: {path} could not be read ({why}); "
          f"{'moved to ' + str(aside) if aside else 'ignored'}", file=sys.stderr)


class Cooling(NamedTuple):
    until: float
    cls: str
    reason: str


class Cooldowns:
    """Which (provider, key, model) pairs are cooling, and until when.

    A cooldown is stored under one of three scopes: the whole key (model "*"), one model on
    one key, or one model on every key (key "*"). Lookups are in memory; cooldown.json is
    rewritten by the background writer, merged with what another gateway may have written.
    Keys appear only as their hash."""

    def __init__(self, path, writer):
        self.path = path
        self.writer = writer
        self.lock = threading.Lock()
        self.strikes = {}  # (provider, key, model) -> (last upstream wait, when it ended)
        self.reported = 0  # unreadable rows last warned about
        self.table = self._read()
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write
            try:
                os.kill(int(tmp.name.split(".")[-3]), 0)
            except ProcessLookupError:
                tmp.unlink(missing_ok=True)
            except (ValueError, IndexError, OSError):
                pass

    def _read(self):
        try:
            rows = json.loads(self.path.read_bytes())["cooldowns"]
            if not isinstance(rows, list):
                raise TypeError("cooldowns is not a list")
        except FileNotFoundError:
            return {}
        except OSError as e:
            set_aside(self.path, e.strerror or e)
            return {}
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            set_aside(self.path, f"not valid cooldown JSON: {e}")
            return {}
        now, table, bad = time.time(), {}, 0
        for e in rows:  # one odd row is left out, not the file: the rest keeps saving
            try:
                where = (e["provider"], e["key"], e["model"])
                entry = Cooling(float(e["until"]), e["class"], str(e.get("reason", "")))
                if not all(isinstance(x, str) for x in (*where, entry.cls)) \
                        or not entry.until < now + 33 * 86400:
                    raise ValueError(e)
                if entry.until > now:
                    table[where] = entry
            except (ValueError, KeyError, TypeError, OverflowError):
                bad += 1
        if bad and bad != self.reported:
            self.reported = bad
            print(f"freeride: warning: {self.path}: {bad} unreadable cooldown row(s) left out",
                  file=sys.stderr)
        return table

    def cool(self, provider, key, model, seconds, cls, reason):
        entry = Cooling(time.time() + seconds, cls, reason)
        with self.lock:
            old = self.table.get((provider, key, model))
            if old is None or old.until < entry.until:
                self.table[(provider, key, model)] = entry
        self.writer.flush_soon(self.flush)

    def backoff(self, provider, key, model, seconds, now=None):
        """How long an upstream failure cools: `seconds` the first time, doubled (up to
        UPSTREAM's cap) when it fails again within twice its last wait after that wait
        ended, with +-10 % jitter so that gateways do not come back in step (providers.md)."""
        now = time.time() if now is None else now
        with self.lock:
            last = self.strikes.get((provider, key, model))
            if last is not None and now - last[1] < 2 * last[0]:
                seconds = min(last[0] * 2, MAX_COOLDOWN[UPSTREAM])
            if len(self.strikes) > 10000:
                self.strikes.clear()
            self.strikes[(provider, key, model)] = (seconds, now + seconds)
        return seconds * random.uniform(0.9, 1.1)

    def recovered(self, provider, key, model):
        """A success: the next upstream failure of this model starts from the short wait."""
        if self.strikes:
            with self.lock:
                self.strikes.pop((provider, "*", model), None)
                self.strikes.pop((provider, key, model), None)

    def lookup(self, provider, key, model):
        """The longest cooldown that stops this key from serving this model, or None."""
        now, found = time.time(), None
        for scope in ((provider, key, "*"), (provider, key, model), (provider, "*", model)):
            entry = self.table.get(scope)
            if entry is not None and entry.until > (found.until if found else now):
                found = entry
        return found

    def active(self):
        now = time.time()
        with self.lock:
            return {k: v for k, v in self.table.items() if v.until > now}

    def flush(self):
        """Write the table, merged with the file (another gateway may share FREERIDE_HOME)."""
        with locked(self.path):
            merged, now = self._read(), time.time()
            with self.lock:
                for k, v in self.table.items():
                    if k not in merged or merged[k].until < v.until:
                        merged[k] = v
                self.table = merged
            doc = {"version": 1, "cooldowns": [
                {"provider": p, "key": k, "model": m, "until": round(c.until, 3), "class": c.cls,
                 "reason": c.reason} for (p, k, m), c in sorted(merged.items()) if c.until > now]}
            write_atomic(self.path, json.dumps(doc, indent=1).encode())


class Writer:
    """One background thread for every write FreeRide makes: events and state files.

    The request path only appends an event or a flush request to a list; it never waits on
    disk. The first event of a batch wakes the thread, which lets the batch gather for BATCH
    seconds: a busy gateway pays one wake-up and one write per batch, not per event. A flush
    request runs at once, after the events queued before it."""

    TICK = 2.0    # seconds between calls of the periodic tasks (usage flushes)
    BATCH = 0.05  # seconds an event may wait to be written with the ones after it

    def __init__(self, home, events_enabled, observe=None):
        self.events_path = home / "events.jsonl" if events_enabled else None
        self.observe = observe
        self.ticks = []
        self.items = []          # event dicts and flush callables, in order; None: stop
        self.urgent = False      # a flush request or the stop is among the items
        self.wake = threading.Condition()
        self.pending = set()
        self.thread = threading.Thread(target=self._run, name="freeride-writer", daemon=True)
        self.thread.start()

    def event(self, **fields):
        fields["ts"] = round(time.time(), 3)
        if self.observe is not None:
            self.observe(fields)
        if self.events_path is not None:
            with self.wake:
                self.items.append(fields)
                if len(self.items) == 1:
                    self.wake.notify()

    def flush_soon(self, fn):
        """Run fn on the writer thread, once however often it is asked before it runs."""
        with self.wake:
            if fn not in self.pending:
                self.pending.add(fn)
                self.items.append(fn)
                self.urgent = True
                self.wake.notify()

    def close(self):
        self.flush_soon(None)  # None: stop, once everything queued before is written
        self.thread.join(timeout=10)

    def _run(self):
        stopped, due = False, time.monotonic() + self.TICK
        while not stopped:
            with self.wake:
                if self.items or self.wake.wait(timeout=max(0.0, due - time.monotonic())):
                    if not self.urgent:  # events only: let the batch gather
                        self.wake.wait(timeout=self.BATCH)
                items, self.items, self.urgent = self.items, [], False
            lines = []
            for item in items:
                if isinstance(item, dict):
                    lines.append(json.dumps(item, separators=(",", ":")))
                    continue
                self._safely(self._write_events, lines)  # the events queued before it first
                lines = []
                if item is None:
                    stopped = True
                    break
                with self.wake:
                    self.pending.discard(item)
                self._safely(item)
            self._safely(self._write_events, lines)
            if stopped or time.monotonic() >= due:  # every TICK, however busy the events are
                due = time.monotonic() + self.TICK
                for tick in self.ticks:
                    self._safely(tick)

    def _write_events(self, lines):
        if not lines:
            return
        path = self.events_path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode())
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size >= EVENTS_MAX:
            os.replace(path, path.with_name(path.name + ".1"))

    @staticmethod
    def _safely(fn, *args):
        try:
            fn(*args)
        except Exception as e:  # a full disk must not take the gateway down
            print(f"freeride: warning: could not write state: {e}", file=sys.stderr)


def today():
    return time.strftime("%Y-%m-%d", time.gmtime())


class Stats:
    """Counters the gateway keeps from its own events: metrics since start, and usage per
    provider per UTC day (usage.json, merged with what other gateways wrote, 31 days kept).
    `observe` runs on the request path: in memory only, under one lock."""
    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
    MAX_OPEN = 10000

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.requests = {}       # (route, outcome) -> count
        self.attempts = {}       # (provider, class) -> count
        self.latency = {}        # route -> [bucket counts..., +Inf count, sum]
        self.served = {}         # provider -> [requests, tokens] since start
        self.pending = {}        # (day, provider) -> [requests, tokens] not yet in usage.json
        self.open = {}           # request id -> (route, monotonic start)

    def observe(self, e):
        kind = e.get("event")
        with self.lock:
            if kind == "request":
                if len(self.open) >= self.MAX_OPEN:
                    self.open.pop(next(iter(self.open)))
                self.open[e["req"]] = (e.get("path", ""), time.monotonic())
            elif kind == "result":
                key = (e.get("provider"), "OK" if e.get("ok") else e.get("class", "UPSTREAM"))
                self.attempts[key] = self.attempts.get(key, 0) + 1
            elif kind in ("complete", "interrupted", "failed"):
                route, started = self.open.pop(e.get("req"), ("", None))
                outcome = "ok" if kind == "complete" else kind
                self.requests[(route, outcome)] = self.requests.get((route, outcome), 0) + 1
                if started is not None:
                    self._time(route, time.monotonic() - started)
                if kind != "failed" and e.get("provider"):
                    tokens = e.get("tokens") or 0
                    for table, key in ((self.served, e["provider"]),
                                       (self.pending, (today(), e["provider"]))):
                        row = table.setdefault(key, [0, 0])
                        row[0] += 1
                        row[1] += tokens

    def _time(self, route, seconds):
        row = self.latency.setdefault(route, [0] * (len(self.BUCKETS) + 2))
        for i, bound in enumerate(self.BUCKETS):
            if seconds <= bound:
                row[i] += 1
        row[-2] += 1
        row[-1] += seconds

    def read_usage(self):
        """{day: {provider: {"requests", "tokens"}}} from usage.json ({} if absent)."""
        try:
            doc = json.loads(self.path.read_bytes())
            days = doc["days"]
            if not isinstance(days, dict):
                raise TypeError("days is not an object")
            for rows in days.values():
                if not isinstance(rows, dict) or not all(
                        isinstance(r, dict) and isinstance(r.get("requests", 0), int)
                        and isinstance(r.get("tokens", 0), int) for r in rows.values()):
                    raise TypeError("a day is not an object of provider counts")
            return days
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            set_aside(self.path, f"not valid usage JSON: {e}")
            return {}

    def flush(self):
        with self.lock:
            pending, self.pending = self.pending, {}
        if not pending:
            return
        with locked(self.path):  # merged under a lock: two writers never lose counts
            days = self.read_usage()
            for (day, provider), (requests, tokens) in pending.items():
                row = days.setdefault(day, {}).setdefault(provider, {"requests": 0, "tokens": 0})
                row["requests"] += requests
                row["tokens"] += tokens
            keep = dict(sorted(days.items())[-31:])
            write_atomic(self.path, json.dumps({"version": 1, "days": keep}, indent=1).encode())

    def metrics(self, cooling, quota=(), index=None):
        """Prometheus text exposition of the counters; `cooling` is {provider: cooling keys},
        `quota` the ledger's rows (keys named by `index`)."""
        index = index or {}
        with self.lock:  # families: (name, type, help, [(suffix, labels, value)])
            latency = []
            for route, row in sorted(self.latency.items()):
                latency += [("_bucket", {"route": route, "le": le}, n)
                            for le, n in zip((*self.BUCKETS, "+Inf"), row)]
                latency += [("_sum", {"route": route}, f"{row[-1]:.6f}"),
                            ("_count", {"route": route}, row[-2])]
            families = [
                ("requests_total", "counter", "Requests answered, by route and outcome.",
                 [("", {"route": r, "outcome": o}, n)
                  for (r, o), n in sorted(self.requests.items())]),
                ("attempts_total", "counter",
                 "Upstream attempts, by provider and result class (OK for success).",
                 [("", {"provider": p, "class": c}, n)
                  for (p, c), n in sorted(self.attempts.items())]),
                ("tokens_total", "counter", "Tokens served, by provider.",
                 [("", {"provider": p}, tokens) for p, (_, tokens) in sorted(self.served.items())]),
                ("request_duration_seconds", "histogram",
                 "Time from request to its last byte, by route.", latency)]
        families.append(("cooling_keys", "gauge", "Keys cooling down right now, by provider.",
                         [("", {"provider": p}, n) for p, n in sorted(cooling.items())]))
        for field, help_ in (("remaining", "left"), ("limit", "allowed")):
            families.append((f"quota_{field}", "gauge", f"Free requests or tokens {help_} in the "
                             "current window, from the providers' headers or counted (the ledger).",
                             [("", {"provider": q["provider"], "key": index.get(q["key"], q["key"]),
                                    "model": q["model"], "window": q["window"], "unit": q["unit"]},
                               q[field]) for q in quota]))
        out = []
        for name, kind, help_, samples in families:
            out.append(f"# HELP freeride_{name} {help_}\n# TYPE freeride_{name} {kind}\n")
            out += [f"freeride_{name}{suffix}{{{_prom(labels)}}} {value}\n"
                    for suffix, labels, value in samples]
        return "".join(out)


class Catalogs:
    """Each provider's live free models, so that routing follows what is served today.

    A background thread, never a request, fetches every catalog at start and then every
    FREERIDE_CATALOG_TTL seconds (a failed fetch again within minutes), with each key's usage
    endpoint where a provider has one (its free limits, for the ledger), and probes local
    servers every FREERIDE_LOCAL_PROBE seconds. What it learns becomes each Route's Offer, and
    is cached in catalogs.json for a restart or an offline start. A model a provider answers as
    gone (404, 410, decommissioned) is dropped for every key until a catalog fetched after that
    lists it again (DROP_FOR at most)."""
    RETRY = 300           # seconds before a failed catalog fetch is tried again
    DROP_FOR = 86400      # the longest a model answered as gone stays dropped unlisted

    def __init__(self, config, pool, writer=None, ledger=None):
        self.config, self.pool, self.writer, self.ledger = config, pool, writer, ledger
        self.path = config.home / "catalogs.json"
        self.routes = {r.name: r for r in config.routes if not r.provider.local}
        self.lock = threading.Lock()
        self.listed = {}   # provider -> (fetched epoch, [Model], {embedding model: dimension})
        self.dropped = {}  # (provider, model id) -> epoch it answered as gone
        self.due = {}      # provider -> monotonic time of its next fetch or probe
        self.wake = threading.Condition(self.lock)
        self.thread = None
        self.stopped = False
        self.fetching = set()
        self.ready = threading.Event()  # set once the first round of fetches is over
        self._load()
        for route in self.routes.values():
            self._apply(route)

    # -- what each route offers -----------------------------------------------------------
    def _for(self, route):
        """What a cached catalog is valid for: the base URL and the accounts it was read with."""
        accounts = sorted({k.account for k in route.keys})
        return hashlib.sha256(json.dumps([route.provider.base_url, accounts]).encode()
                              ).hexdigest()[:16]

    def _apply(self, route):
        """Recompute a route's Offer from its catalog, its module and the dropped models."""
        provider, now = route.provider, time.time()
        with self.lock:
            listed = self.listed.get(route.name)
            dropped = {m for (p, m), when in self.dropped.items()
                       if p == route.name and now - when < self.DROP_FOR}
        embeddings, gone = dict(provider.embedding_models), ()
        if listed is None:  # no catalog yet: the module's list, as before catalogs existed
            models = [m for m in provider.models if m.id not in dropped]
        else:
            embeddings.update(listed[2])
            live = {m.id: m for m in listed[1] if m.id not in dropped}
            module = {m.id for m in type(provider).models}
            models = [m._replace(context=live[m.id].context or m.context,
                                 tools=live[m.id].tools, vision=live[m.id].vision)
                      if m.id in live else m for m in provider.models
                      if m.id in live or (m.id not in module and m.id not in dropped)]
            models += sorted((m for m in live.values() if m.id not in provider.model_ids),
                             key=lambda m: (-(m.context or 0), not m.tools, not m.vision))
            gone = tuple(m.id for m in type(provider).models if m.id not in live)
        route.offer = Offer.of(models, listed is not None, gone, embeddings)

    def drop(self, route, model):
        """`model` answered as gone on `route`: no key calls it until a newer catalog lists it;
        that provider's catalog is fetched again soon to learn what replaced it."""
        with self.lock:
            self.dropped[(route.name, model)] = time.time()
            if len(self.dropped) > 10000:  # bounded, whatever the upstream says
                self.dropped.pop(next(iter(self.dropped)))
            if self.config.live_catalogs:
                self._soon(route.name, 60)
        self._apply(route)
        if self.writer is not None:
            self.writer.flush_soon(self.save)

    def local_down(self, route):
        """A local server stopped answering: unused until a probe finds it again."""
        route.available = False
        with self.lock:
            self._soon(route.name, 5)

    def _soon(self, name, seconds):
        """Fetch or probe `name` within `seconds` (lock held)."""
        self.due[name] = min(self.due.get(name, float("inf")), time.monotonic() + seconds)
        self.wake.notify()

    # -- fetching -----------------------------------------------------------------------------
    def fetch(self, route):
        """The route's free chat models and embedding models from its live catalog now;
        None if it cannot say."""
        provider = route.provider
        key = next((k for k in route.keys if k.secret), route.keys[0])
        timeout = min(self.config.connect_timeout, 2.0) if provider.local_server \
            else self.config.connect_timeout + 10
        try:
            doc = self._get(route, key, provider.catalog_url(key.account), timeout)
            if doc is None:
                return None
            models, embeddings = provider.catalog(doc), provider.catalog_embeddings(doc)
        except (ValueError, TypeError, AttributeError, RecursionError):
            return None
        # A hosted catalog with no free chat model in it says nothing we can route on (a
        # glitch, a changed shape): keep what was known. A local server that answers is up,
        # whatever it has loaded.
        return (models, embeddings) if models or provider.local_server else None

    def _get(self, route, key, url, timeout):
        """A JSON answer of a provider's free GET (its catalog, its usage), or None."""
        try:
            status, _, body = self.pool.get(url, route.provider.headers(key.secret), timeout,
                                            8 * MiB)
            return json.loads(body) if status == 200 else None
        except (UpstreamFailure, ValueError, RecursionError):
            return None

    def age(self, name):
        """Seconds since a route's cached catalog was fetched; None when none is fresh (never
        fetched, older than the TTL, or fetched "in the future": a clock set back)."""
        age = time.time() - self.listed.get(name, (-1e18,))[0]
        return age if 0 <= age < self.config.catalog_ttl else None

    def refresh(self, route):
        """Fetch (or probe) one route now and apply what it says."""
        provider, ttl = route.provider, self.config.catalog_ttl
        now = time.time()  # a drop after this is newer news
        models, embeddings = self.fetch(route) or (None, {})
        for key in route.keys if self.ledger is not None and provider.usage_url() else ():
            # what each key's own usage endpoint says of its free limits (OpenRouter's)
            doc = self._get(route, key, provider.usage_url(key.account),
                            self.config.connect_timeout + 10)
            if doc is not None:
                self.ledger.learned[(route.name, key.id)] = provider.usage(doc)
        with self.lock:
            self.fetching.discard(route.name)
            self.wake.notify()
            self.due[route.name] = time.monotonic() + (
                self.config.local_probe if provider.local_server
                else ttl if models is not None else min(self.RETRY, ttl))
            if models is not None:
                self.listed[route.name] = (now, models, embeddings)
                ids = {m.id for m in models}
                self.dropped = {k: when for k, when in self.dropped.items()
                                if k[0] != route.name or k[1] not in ids or when >= now}
        if provider.local_server:
            was, route.available = route.available, bool(models)
            if was != route.available and self.writer is not None:
                self.writer.event(event="local", provider=route.name, up=route.available,
                                  models=len(models or ()))
        self._apply(route)
        if models is not None and not provider.local_server and self.writer is not None:
            self.writer.flush_soon(self.save)

    def refresh_all(self, stale_only=False):
        """Fetch every route's catalog at once, in parallel (the CLI's `list`, `doctor`)."""
        todo = [r for r in self.routes.values() if not stale_only or r.provider.local_server
                or self.age(r.name) is None]
        threads = [threading.Thread(target=self.refresh, args=(r,), daemon=True) for r in todo]
        for t in threads:
            t.start()
        give_up = time.monotonic() + self.config.connect_timeout + 15
        for t in threads:
            t.join(timeout=max(0.0, give_up - time.monotonic()))

    def start(self):
        watched = [r for r in self.routes.values()
                   if self.config.live_catalogs or r.provider.local_server]
        if not watched or self.thread is not None:
            self.ready.set()
            return
        now = time.monotonic()
        for route in watched:  # a fresh cached catalog waits its turn
            age = None if route.provider.local_server else self.age(route.name)
            self.due[route.name] = now if age is None else now + self.config.catalog_ttl - age
        self.thread = threading.Thread(target=self._run, name="freeride-catalogs", daemon=True)
        self.thread.start()

    def close(self):
        with self.lock:
            self.stopped = True
            self.wake.notify()
        if self.thread is not None:
            self.thread.join(timeout=2)

    def _run(self):
        with self.lock:
            while not self.stopped:
                now = time.monotonic()
                waiting = {n: t for n, t in self.due.items() if n not in self.fetching}
                for name in [n for n, t in waiting.items() if t <= now]:
                    del waiting[name]
                    self.fetching.add(name)
                    threading.Thread(target=self.refresh, args=(self.routes[name],),
                                     daemon=True, name="freeride-catalog").start()
                if not self.fetching:  # the round due at start is in
                    self.ready.set()
                self.wake.wait(max(0.05, min(waiting.values()) - now) if waiting else None)

    # -- the cache ----------------------------------------------------------------------------
    def _load(self):
        """catalogs.json, for the routes it was fetched for; a damaged file is set aside."""
        try:
            doc = json.loads(self.path.read_bytes())
            for name, entry in doc["providers"].items():
                route = self.routes.get(name)
                if route is None or route.provider.local_server or entry["for"] != self._for(route):
                    continue
                fetched = float(entry["fetched"])
                self.listed[name] = (  # a time in the future (a clock set back) is never fresh
                    fetched if fetched <= time.time() else 0.0,
                    [providers.Model(str(m["id"]), int(m.get("context") or 0),
                                     bool(m.get("tools", True)), bool(m.get("vision")))
                     for m in entry["models"]],
                    {str(k): int(v) for k, v in entry.get("embeddings", {}).items()})
            for row in doc.get("dropped", ()):
                self.dropped[(str(row["provider"]), str(row["model"]))] = float(row["since"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.listed, self.dropped = {}, {}
            set_aside(self.path, f"not valid catalog JSON: {e}")

    def save(self):
        with self.lock:
            listed, dropped = dict(self.listed), dict(self.dropped)
        doc = {"version": 1, "providers": {
            name: {"for": self._for(self.routes[name]), "fetched": round(fetched, 3),
                   "models": [m._asdict() for m in models], "embeddings": embeddings}
            for name, (fetched, models, embeddings) in sorted(listed.items())
            if not self.routes[name].provider.local_server},
            "dropped": [{"provider": p, "model": m, "since": round(t, 3)}
                        for (p, m), t in sorted(dropped.items())]}
        write_atomic(self.path, json.dumps(doc, indent=1).encode())


WINDOWS = {"minute": 60, "hour": 3600}  # fixed windows counted from their first request


class Ledger:
    """What each (provider, key, model) has left in each window, before it is spent.

    Every upstream answer, success or error, streamed or not, is read for the limits its
    provider reports (Provider.quota_headers: Groq's and Mistral's x-ratelimit-*, OpenRouter's
    X-RateLimit-*); where a provider reports nothing, its documented free limits
    (Provider.limits, or FREERIDE_LIMITS) are counted here, one per request. What a header
    says wins over a count, and a window past its reset starts afresh. Rows are keyed
    (provider, key hash, model or "*" for limits that span a key, unit, window); the router
    skips a key whose requests are spent and tries the key with most headroom first. Kept in
    memory, saved to ledger.json by the writer thread."""

    def __init__(self, path, overrides=None):
        self.path, self.overrides = path, overrides or {}
        self.lock = threading.Lock()
        self.rows = {}  # (provider, key, model, unit, window) -> [limit, remaining, reset, told]
        self.learned = {}  # (provider, key) -> {"unit/window": limit} from a usage endpoint
        self.dirty = False
        try:
            now = time.time()
            self.rows = {(r["provider"], r["key"], r["model"], r["unit"], r["window"]): [
                int(r["limit"]), int(r["remaining"]), float(r["reset"]), bool(r["told"])]
                for r in json.loads(path.read_bytes())["rows"] if float(r["reset"]) > now}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            set_aside(path, f"not valid ledger JSON: {e}")

    def limits(self, provider, key_id=""):
        """(unit, window, limit) of a provider's free limits: the user's, else what the key's
        usage endpoint said, else the documented ones."""
        own = {f"{u}/{w}": n for u, w, n in provider.limits}
        own.update(self.learned.get((provider.name, key_id), {}))
        own.update(self.overrides.get(provider.name, {}))
        return [(*k.split("/", 1), n) for k, n in own.items() if isinstance(n, int)]

    def observe(self, route, key, model, headers):
        """One upstream answer: count it against the documented limits, then take what its
        headers say (they win)."""
        provider, now = route.provider, time.time()
        where = (route.name, key.id, model if provider.quota_per_model else "*")
        told = set()
        with self.lock:
            for unit, window, limit_h, left_h, reset_h in provider.quota_headers:
                left = _int(headers.get(left_h))
                if left is None:
                    continue
                reset = parse_reset(headers.get(reset_h) or "", now) if reset_h else None
                if window == "*":  # the nearer of a minute and a day, told by its reset
                    window = "day" if reset is not None and reset > 120 else "minute"
                row = self.rows.get((*where, unit, window))
                self.rows[(*where, unit, window)] = [
                    _int(headers.get(limit_h)) or (row[0] if row else left), left,
                    now + (reset if reset is not None else WINDOWS.get(window, 60)), True]
                told.add((unit, window))
            changed = bool(told)
            for unit, window, limit in self.limits(provider, key.id):
                if unit != "requests" or (unit, window) in told:
                    continue
                row = self.rows.get((*where, unit, window))
                if row is None or row[2] <= now:
                    reset = WINDOWS.get(window) or calendar_reset(
                        provider.quota_reset if window == "day" else window, now)
                    row = self.rows[(*where, unit, window)] = [limit, limit, now + reset, False]
                if not row[3]:
                    row[1] = max(0, row[1] - 1)
                    changed = True
            self.dirty |= changed  # ledger.json is rewritten only when a row changed

    def _live(self, route, key, model):
        now = time.time()
        for scope in (model, "*"):
            for window in ("minute", "hour", "day", "month"):
                for unit in ("requests", "tokens"):
                    row = self.rows.get((route.name, key.id, scope, unit, window))
                    if row is not None and row[2] > now:
                        yield unit, window, row

    def spent(self, route, key, model, tokens=lambda: 0):
        """(unit, window, seconds to its reset) when this key cannot take this request now:
        no request left in a window, or clearly fewer tokens left this minute than `tokens()`
        (asked only then: the estimate reads the whole prompt)."""
        for unit, window, (limit, left, reset, _) in self._live(route, key, model):
            if (unit == "requests" and left <= 0) or (unit == "tokens" and window == "minute"
                                                      and tokens() > left):
                return unit, window, reset - time.time()
        return None

    def headroom(self, route, key, model):
        """The smallest share of a request window left (1.0 when nothing is known)."""
        return min((left / limit for unit, _, (limit, left, _, _) in self._live(route, key, model)
                    if unit == "requests" and limit > 0), default=1.0)

    def snapshot(self, now=None, told=False):
        """Every live row, for status, metrics and the models list; with `told` (whether a
        header said it), for ledger.json."""
        now = time.time() if now is None else now
        with self.lock:
            return [{"provider": p, "key": k, "model": m, "unit": u, "window": w, "limit": r[0],
                     "remaining": r[1], "reset": round(r[2], 3), **({"told": r[3]} if told else {})}
                    for (p, k, m, u, w), r in sorted(self.rows.items()) if r[2] > now]

    def flush(self):
        if self.dirty:
            self.dirty = False
            rows = self.snapshot(told=True)
            write_atomic(self.path, json.dumps({"version": 1, "rows": rows}).encode())


def _int(value):
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


PROM_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def _prom(labels):
    """Prometheus labels: k="v" joined by commas, the values' backslashes, quotes and line
    breaks escaped."""
    return ",".join(f'{k}="{str(v).translate(PROM_ESCAPES)}"' for k, v in labels.items())


# =============================================================================================
# upstream
# =============================================================================================

class UpstreamFailure(Exception):
    """An attempt failed: an HTTP error answer, a broken body or stream, or no connection."""

    def __init__(self, status, headers=None, body=b"", reason="", timeout=""):
        super().__init__(reason or f"HTTP {status}")
        self.status = status          # 0 when no HTTP answer came at all
        self.headers = headers if headers is not None else http.client.HTTPMessage()
        self.body = body
        self.reason = reason
        self.timeout = timeout        # the deadline that fired: headers, first content, idle


MAX_HEADER_LINE, MAX_HEADERS = 65536, 100   # http.client's own limits


class Headers(http.client.HTTPMessage):
    """An HTTPMessage whose get() is a dict lookup, not a scan lowering every header (asked
    about ten times a request). The first of a repeated header wins, as in Message.get.
    Read-only: nothing sets or deletes a header once read."""

    def __init__(self, pairs):
        super().__init__()
        self._headers = pairs
        self._index = {}
        for name, value in pairs:
            self._index.setdefault(name.lower(), value)

    def get(self, name, failobj=None):
        return self._index.get(name.lower(), failobj)

    def __getitem__(self, name):
        return self._index.get(name.lower())

    def __contains__(self, name):
        return name.lower() in self._index


def read_headers(fp):
    """An HTTP header block from fp as Headers, without the email parser (about 25 us a
    block, a tenth of the gateway's budget for a request): the same lines (folded ones joined,
    malformed ones dropped) under http.client's limits, raising LineTooLong / HTTPException
    as it does. A block already all buffered (nearly always) is taken in one read."""
    buffered = fp.peek(MAX_HEADER_LINE) if hasattr(fp, "peek") else b""
    end = buffered.find(b"\r\n\r\n")
    if buffered.startswith(b"\r\n"):
        fp.read(2)
        raw = []
    elif 0 <= end and (buffered.count(b"\n", 0, end) == buffered.count(b"\r\n", 0, end)
                       == buffered.count(b"\r", 0, end)):  # CRLF line ends only
        raw = fp.read(end + 4)[:-4].split(b"\r\n")
        if any(len(line) > MAX_HEADER_LINE for line in raw):
            raise http.client.LineTooLong("header line")
    else:  # one readline at a time
        raw = []
        while len(raw) <= MAX_HEADERS:
            line = fp.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                raise http.client.LineTooLong("header line")
            if line in (b"\r\n", b"\n", b""):
                break
            raw.append(line.rstrip(b"\r\n"))
    if len(raw) > MAX_HEADERS:
        raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
    headers = []
    for line in raw:
        text = line.decode("iso-8859-1")
        if text[:1] in (" ", "\t"):  # obsolete line folding: part of the previous value
            if headers:
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + text.strip())
            continue
        name, colon, value = text.partition(":")
        if colon and name and name == name.strip():
            headers.append((name, value.strip()))
    return Headers(headers)


class Response(http.client.HTTPResponse):
    """http.client's response, with its head read by read_headers."""

    def begin(self):
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != 100:
                break
            read_headers(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = read_headers(self.fp)
        self.chunked = (self.headers.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        length = self.headers.get("content-length")
        try:
            self.length = int(length) if length and not self.chunked else None
        except ValueError:
            self.length = None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        elif self.length is not None and self.length < 0:
            self.length = None
        self.will_close = self._check_close() or (not self.chunked and self.length is None)


class LocalResponse(io.BytesIO):
    """An upstream answer made in-process (the offline demo), shaped like http.client's."""

    def __init__(self, status, headers, body):
        super().__init__(body)
        self.status = status
        self.headers = Headers(list(headers.items()))
        self.will_close = True

    def isclosed(self):
        return True


class Pool:
    """Keep-alive connections to upstreams, per (scheme, host, port, proxy), thread-safe.
    Proxies follow urllib's environment rules (HTTPS_PROXY, HTTP_PROXY, NO_PROXY). One TLS
    context serves every HTTPS connection, so a pooled connection never handshakes twice."""
    MAX_IDLE = 64

    def __init__(self, connect_timeout, ca_bundle=""):
        self.connect_timeout = connect_timeout
        self.ca_bundle = ca_bundle
        self.idle = {}
        self.lock = threading.Lock()
        self.proxies = urllib.request.getproxies_environment()
        self._tls = None

    @property
    def tls(self):
        with self.lock:  # connections opened at once must share one context
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=self.ca_bundle or None)
        return self._tls

    def _target(self, url):
        parts = urllib.parse.urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        proxy = self.proxies.get(scheme)
        if proxy and urllib.request.proxy_bypass_environment(host, self.proxies):
            proxy = None
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return (scheme, host, port, proxy), url if proxy and scheme == "http" else path

    def _connect(self, target):
        scheme, host, port, proxy = target
        address = (host, port)
        if proxy:
            p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
            address = (p.hostname, p.port or 80)
        if scheme == "https":
            conn = http.client.HTTPSConnection(*address, timeout=self.connect_timeout,
                                               context=self.tls)
            if proxy:
                conn.set_tunnel(host, port)
        else:
            conn = http.client.HTTPConnection(*address, timeout=self.connect_timeout)
        conn.freeride_target = target
        return conn

    def _take(self, target):
        with self.lock:
            idle = self.idle.get(target)
            while idle:
                conn = idle.pop()
                if not _dropped(conn.sock):
                    return conn
                conn.close()
        return None

    def request(self, method, url, body, headers, timeout, guard=None):
        """Send a request in one write (head and body); return the response once its head has
        arrived (within timeout). http.client only connects (TLS, proxy tunnels) and reads.
        `guard(sock)` arms a Deadline over the whole head (a trickle never trips a per-read
        timeout); it stays armed on the response (freeride_guard) for the caller to cancel."""
        target, path = self._target(url)
        data = self._message(method, path, target, body, headers)
        conn = self._take(target)
        reused = conn is not None
        while True:
            conn = conn or self._connect(target)
            sock = armed = None
            try:
                if conn.sock is None:
                    conn.connect()
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock = conn.sock
                sock.settimeout(timeout)
                armed = guard(sock) if guard is not None else None
                sock.sendall(data)
                response = Response(sock, method=method)
                response.begin()
            except Exception as e:
                if armed is not None:
                    armed.cancel()
                conn.close()
                if armed is not None and armed.fired:
                    raise UpstreamFailure(0, reason=f"no response head within {timeout:g} s",
                                          timeout="headers") from None
                if not isinstance(e, (OSError, http.client.HTTPException, ValueError)):
                    raise
                failure = self._failure(e, reused, sock)
                if failure is not None:
                    raise failure from None
                conn, reused = None, False
                continue
            response.freeride_sock, response.freeride_guard = sock, armed
            response.freeride_conn = conn
            return response

    @staticmethod
    def _failure(e, reused, sock):
        """The UpstreamFailure a failed send or head is; None: try once more, freshly connected."""
        if isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            # A reset means the server's socket was closed with the request unread (a server
            # that read it and hung up ends cleanly): only then may the request go once more,
            # on a fresh connection. After a clean end, never send it twice.
            if reused and (not isinstance(e, http.client.RemoteDisconnected) or _was_reset(sock)):
                return None
            return UpstreamFailure(0, reason=f"connection lost: {e.__class__.__name__}")
        if isinstance(e, socket.timeout):
            return UpstreamFailure(0, reason="timed out waiting for the upstream",
                                   timeout="headers")
        if isinstance(e, ValueError):  # a host name IDNA refuses, a header http.client refuses
            return UpstreamFailure(0, reason=f"cannot send the request: {e.__class__.__name__}")
        return UpstreamFailure(0, reason=f"cannot reach upstream: {_short(e)}")

    @staticmethod
    def _message(method, path, target, body, headers):
        """The request's bytes. Like http.client, refuse what would split or break the head."""
        scheme, host, port, _ = target
        lines = [f"{method} {path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        given = "".join(lines)
        if "\r" in given or "\n" in given or "\0" in given or " " in path:
            raise UpstreamFailure(0, reason="cannot send the request: a line break, NUL or "
                                  "space in its URL or in a header value")
        try:
            if not host.isascii():
                host = host.encode("idna").decode("ascii")
            if ":" in host:
                host = f"[{host}]"
            if port != (443 if scheme == "https" else 80):
                host = f"{host}:{port}"
            lines[1:1] = [f"Host: {host}", "Accept-Encoding: identity"]
            if body is not None:
                lines.append(f"Content-Length: {len(body)}")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeError as e:  # a host IDNA refuses, a header not latin-1: a ValueError
            raise Pool._failure(e, reused=False, sock=None) from None
        return head + body if body else head

    def get(self, url, headers, timeout, limit=32 * MiB):
        """A small GET: (status, headers, body); connection errors raise UpstreamFailure."""
        response = self.request("GET", url, None, headers, timeout)
        try:
            body = response.read(limit)
        except (OSError, http.client.HTTPException) as e:
            self.discard(response)
            raise UpstreamFailure(0, reason=f"answer cut off: {_short(e)}") from None
        self.release(response)
        return response.status, response.headers, body

    def release(self, response):
        """Give back the connection of a response that was read to its end."""
        conn = getattr(response, "freeride_conn", None)
        if conn is None:
            return
        response.freeride_conn = None
        if not response.will_close and response.isclosed() and conn.sock is not None:
            with self.lock:
                idle = self.idle.setdefault(conn.freeride_target, [])
                if len(idle) < self.MAX_IDLE:
                    idle.append(conn)
                    return
        conn.close()

    @staticmethod
    def discard(response):
        conn = getattr(response, "freeride_conn", None)
        if conn is not None:
            response.freeride_conn = None
            conn.close()
        response.close()

    def close(self):
        with self.lock:
            idle, self.idle = self.idle, {}
        for conn in itertools.chain.from_iterable(idle.values()):
            conn.close()


def _dropped(sock):
    """True if an idle pooled socket was closed by the server (or holds unexpected bytes)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _was_reset(sock, wait=0.2):
    """After a clean end of a reused connection: did a reset follow (the request we sent
    arrived at a socket already closed)? On loopback it is there at once; over a network it
    takes a round trip, so wait a little for it."""
    until = time.monotonic() + wait
    try:
        while sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) not in (errno.ECONNRESET,
                                                                          errno.EPIPE):
            if time.monotonic() >= until:
                return False
            time.sleep(0.01)
    except OSError:
        return False
    return True


def _short(e):
    return f"{e.__class__.__name__}: {e}"[:200]


MAX_EVENT = 4 * MiB


def sse_events(response):
    """Yield each server-sent event of a response as bytes (its lines, without the blank line)
    as soon as it is complete: lines are read as they arrive."""
    lines, size = [], 0
    while True:
        line = response.readline(MAX_EVENT)
        if not line:
            if lines:
                yield b"\n".join(lines)
            return
        line = line.rstrip(b"\r\n")
        if line:
            size += len(line)
            if size > MAX_EVENT:
                raise UpstreamFailure(0, reason="server-sent event too large")
            lines.append(line)
        elif lines:
            yield b"\n".join(lines)
            lines, size = [], 0


class Event(NamedTuple):
    """What one SSE event means to the router."""
    kind: str        # "comment", "content", "chunk", "usage", "error", "done", "garbage"
    raw: bytes
    doc: object      # the parsed data JSON, or None


def read_event(raw):
    data, name = [], b""
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data:
        return Event("comment", raw, None)
    payload = b"\n".join(data)
    if payload.strip() == b"[DONE]":
        return Event("done", raw, None)
    try:
        doc = json.loads(payload)
    except ValueError:
        return Event("error" if name == b"error" else "garbage", raw, None)
    if not isinstance(doc, dict) or not isinstance(doc.get("choices", []), list):
        return Event("garbage", raw, doc)
    if name == b"error" or doc.get("error"):
        return Event("error", raw, doc)
    if carries(doc, CONTENT_FIELDS):
        deltas = [c.get("delta") for c in doc["choices"] if isinstance(c, dict)]
        if not all(_text_ok(d) for d in deltas if isinstance(d, dict)):
            return Event("garbage", raw, doc)  # text that is not text
        if b"tool_calls" in raw and not all(_objects(d.get("tool_calls") or [])
                                            for d in deltas if isinstance(d, dict)):
            return Event("garbage", raw, doc)  # tool calls that are not a list of objects
        return Event("content", raw, doc)
    if doc.get("usage") and not doc.get("choices"):
        return Event("usage", raw, doc)
    return Event("chunk", raw, doc)


def _text_ok(delta):
    """A delta's text fields are text (or absent): checked as events come and on assembly."""
    for field in ("content", "reasoning_content", "reasoning"):
        value = delta.get(field)
        if value is not None and not isinstance(value, str):
            return False
    return True


def _objects(value):
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def read_events(body):
    """Every event of a whole SSE body, as read_event() would make them one by one, with the
    data of all of them decoded in a single json.loads (the plain path's cost is per event)."""
    raws = [r for r in body.replace(b"\r\n", b"\n").split(b"\n\n") if r.strip()]
    plain = all(r.startswith(b"data: {") and b"\n" not in r for r in raws[:-1]) and raws \
        and raws[-1].strip() == b"data: [DONE]"
    if plain:
        try:
            docs = json.loads(b"[" + b",".join(r[6:] for r in raws[:-1]) + b"]")
        except ValueError:
            docs = [None]
        if all(isinstance(d, dict) and isinstance(d.get("choices", []), list) for d in docs):
            return [Event("error" if d.get("error") else "chunk", r, d)
                    for r, d in zip(raws, docs)] + [Event("done", raws[-1], None)]
    return [read_event(r) for r in raws]  # comments, event names, garbage: one by one


CONTENT_FIELDS = ("content", "tool_calls", "function_call", "reasoning_content", "reasoning",
                  "refusal")


def carries(doc, fields):
    for choice in doc.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(delta.get(f) for f in fields):
            return True
    return False


def assemble(events, headers):
    """The chat.completion a provider would have answered plainly, from its stream: text,
    reasoning (in the provider's field), tool calls joined by index, finish reason, usage, and
    the provider's id, model, created and system_fingerprint. An error event, a malformed
    chunk or a stream cut before its end raises UpstreamFailure."""
    top, texts, reasons, calls, finish, usage = {}, [], {}, {}, None, None
    for event in events:
        if event.kind == "error":
            raise stream_error(event, headers)
        if event.kind == "garbage":
            raise UpstreamFailure(502, headers, event.raw[:2000], reason="a malformed event")
        chunk = event.doc
        if chunk is None:
            continue  # comments, [DONE]
        for field in ("id", "model", "created", "system_fingerprint"):
            if chunk.get(field) is not None:
                top.setdefault(field, chunk[field])
        extra = chunk.get("x_groq") if isinstance(chunk.get("x_groq"), dict) else {}
        for found in (chunk.get("usage"), extra.get("usage")):
            usage = found if isinstance(found, dict) else usage
        for choice in chunk.get("choices") or ():  # a list: read_event made sure
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict) or not _text_ok(delta):
                raise UpstreamFailure(502, headers, event.raw[:2000], reason="a malformed chunk")
            texts.append(delta.get("content") or "")
            for name in ("reasoning_content", "reasoning"):
                if delta.get(name):
                    reasons.setdefault(name, []).append(delta[name])
            calls_here = delta.get("tool_calls") or []
            for call in calls_here if isinstance(calls_here, list) else [None]:  # 5: malformed
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(call.get("index", 0), int):
                    raise UpstreamFailure(502, headers, event.raw[:2000],
                                          reason="a malformed tool call")
                merged = calls.setdefault(call.get("index", 0), {
                    "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                merged["id"] = merged["id"] or call.get("id")
                merged["function"]["name"] += str(function.get("name") or "")
                merged["function"]["arguments"] += str(function.get("arguments") or "")
            finish = choice.get("finish_reason") or finish
    if finish is None and not (events and events[-1].kind == "done"):
        raise UpstreamFailure(0, reason="the stream was cut before its end")
    text = "".join(texts)
    message = {"role": "assistant", "content": text if text or not calls else None}
    message.update((name, "".join(parts)) for name, parts in reasons.items())
    if calls:
        message["tool_calls"] = [dict(c, id=c["id"] or _new_id("call"))
                                 for _, c in sorted(calls.items())]
    doc = {"id": top.get("id") or _new_id("chatcmpl"), "object": "chat.completion",
           "created": top.get("created") or int(time.time()), "model": top.get("model")}
    if "system_fingerprint" in top:
        doc["system_fingerprint"] = top["system_fingerprint"]
    doc["choices"] = [{"index": 0, "message": message, "logprobs": None,
                       "finish_reason": finish or "stop"}]
    if usage is not None:
        doc["usage"] = usage
    return doc


def is_answer(doc):
    """True for a chat.completion that holds an answer: choices, each with a message."""
    choices = doc.get("choices")
    return isinstance(choices, list) and bool(choices) and all(
        isinstance(c, dict) and isinstance(c.get("message"), dict)
        and isinstance(c["message"].get("content"), (str, type(None)))
        and isinstance(c["message"].get("tool_calls") or [], list) for c in choices)


def stream_error(event, headers):
    """Turn an SSE error event into the failure it reports (status from its error code)."""
    error = event.doc.get("error") if isinstance(event.doc, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    code = str(code) if isinstance(code, (int, str)) else ""
    if code.isdecimal() and len(code) == 3:  # a status; int() refuses some digit strings
        status = int(code)
    else:
        status = 429 if "rate" in code or "limit" in code else 502
    # The classifier reads the event's JSON (messages, retry hints), not its SSE framing.
    body = json.dumps(event.doc).encode() if isinstance(event.doc, dict) else event.raw
    return UpstreamFailure(status if 400 <= status <= 599 else 502, headers, body)


# =============================================================================================
# router
# =============================================================================================

# Common open-model families, recognised in any spelling; each provider maps a family to its
# own model id (Provider.families).
FAMILIES = {
    "llama-3.3-70b": r"llama[-_ ]?3[._]3\b.*70b",
    "llama-3.1-8b": r"llama[-_ ]?3\.1\b.*\b8b",
    "gpt-oss-120b": r"gpt-oss[-:]120b",
    "gpt-oss-20b": r"gpt-oss[-:]20b",
    "qwen3.8-27b": r"qwen3\.8-27b",
    "qwen-coder": r"qwen[\d.]*-coder",
    "nemotron-3-super": r"nemotron-3-super",
    "nemotron-3-ultra": r"nemotron-3-ultra",
    "gemma-4-31b": r"gemma-4-31b",
    "gemma": r"gemma",
    "deepseek": r"deepseek",
}
ALIASES = ("auto", "free", "openrouter/free")

# Class defaults when neither the answer nor the provider's rule gives a time (seconds).
DEFAULT_COOLDOWN = {RATE_LIMIT: 120, QUOTA: 3600, AUTH: 3600, MODEL_NOT_FOUND: 3600,
                    UPSTREAM: 15, CONTEXT: 0, CLIENT: 0}
# The longest each class may cool, whatever an answer says (Retry-After: 1e30): a rate limit
# is a minute's or an hour's window, a cap a day's (a monthly one: 32 days, see classify).
MAX_COOLDOWN = {RATE_LIMIT: 3600, QUOTA: 86400 + 3600, UPSTREAM: 300}
CAP_FLOOR = 900  # seconds: the shortest cooldown of a daily or monthly cap (providers.md)

# Rows for every provider, tried after the provider's own rules.
GENERIC_RULES = (
    Rule(AUTH, (401, 403), scope=KEY),
    Rule(MODEL_NOT_FOUND, (404, 410), scope=MODEL),
    Rule(UPSTREAM, (408, 504, 524), scope=MODEL, cooldown=30),
    Rule(UPSTREAM, (409,), scope=MODEL, cooldown=5),
    Rule(CONTEXT, (413,)),
    Rule(CONTEXT, (400, 422), r"context[ _]length|maximum context|too many tokens|token limit"
         r"|reduce the length|too long"),
    Rule(QUOTA, (402,), scope=KEY),
    Rule(RATE_LIMIT, (429,), scope=KEY),
    Rule(UPSTREAM, (0,), scope=MODEL),
)


class Verdict(NamedTuple):
    """classify's answer."""
    cls: str
    scope: str
    seconds: float
    message: str


def family_of(model):
    low = model.lower()
    return low if low in FAMILIES else next(
        (name for name, pattern in FAMILIES.items() if re.search(pattern, low)), None)


def resolve(routes, model, tools=False, vision=False):
    """The ordered candidates (route, provider model id) for a requested model name: an exact
    id first to the providers serving it now, then a family's spelling on the others (the
    module's, else a live model of that family); aliases and names nobody serves to each
    provider's best free model that can handle the request's tools and images. A local server
    that is not answering is left out."""
    routes = [r for r in routes if r.available]

    def capable(route, model_id):
        info = route.info(model_id)
        return info is None or ((info.tools or not tools) and (info.vision or not vision))

    if model not in ALIASES:
        exact = [(r, model) for r in routes if r.serves(model)]
        family = family_of(model)
        if exact or family:
            served = {r.name for r, _ in exact}
            spelled = [(r, m) for r in routes if family and r.name not in served
                       for m in [spelling(r, family)] if m]
            return [(r, m) for r, m in exact + spelled if capable(r, m)]

    def spill(route, model):  # its next good model, when this one's own quota is spent
        ids = [m.id for m in route.offer.models if capable(route, m.id)]
        return ids[ids.index(model) + 1] if model in ids[:-1] else None

    out = Candidates()
    out.spill = spill
    for route in routes:
        best = next((m.id for m in route.offer.models if capable(route, m.id)), None)
        if best:
            out.append((route, best))
    return out


class Candidates(list):
    """resolve()'s (route, model) list; for an alias, `spill` names a provider's next model
    (an explicit model or family never changes model)."""
    spill = None


def spelling(route, family):
    """This provider's live model of a family: its module's spelling while the catalog lists
    it, else the first live model of that family; None if it has none."""
    own = route.provider.families.get(family)
    return own if own and own in route.offer.ids else route.offer.families.get(family)


def model_context(route, model_id):
    """The context window a provider gives a model; 0 when unknown."""
    info = route.info(model_id)
    return info.context if info else 0


def embedding_family(model_id):
    """Vectors are comparable only within one model: '@cf/baai/bge-m3' ~ 'baai/bge-m3' ~
    'bge-m3:latest' (a documented equivalent: the same weights under another name)."""
    return model_id.rsplit("/", 1)[-1].split(":", 1)[0].lower()


# Names agents send for "an embedding model": answered by the default family.
OPENAI_EMBEDDINGS = ("auto", "text-embedding-3-small", "text-embedding-3-large",
                     "text-embedding-ada-002")


def resolve_embeddings(routes, model):
    """Candidates (route, model id, dimension) that all give vectors of one model family: a
    named model's, or a documented equivalent's of the same dimension, never another model's
    (a name nobody serves gets none); for `auto` and OpenAI's names, the family most providers
    serve, the same one every time for one configuration. Dimension 0: unknown (a local
    server); the vectors it returns must then have the family's dimension."""
    offered = [(r, m, d) for r in routes if r.available for m, d in r.offer.embeddings.items()]
    if model.lower() in OPENAI_EMBEDDINGS:
        counts = {}
        for route, m, _ in offered:
            counts.setdefault(embedding_family(m), set()).add(route.name)
        family = max(counts, key=lambda f: len(counts[f]), default=None)  # the first of a tie
        exact = [o for o in offered if embedding_family(o[1]) == family][:1]
    else:
        family = embedding_family(model)
        exact = [o for o in offered if o[1] == model] or \
            [o for o in offered if embedding_family(o[1]) == family]
    if not exact:
        return []
    dimension = next((d for _, _, d in exact if d), 0)
    out = {}  # one candidate a provider, its first
    for r, m, d in exact + [o for o in offered if embedding_family(o[1]) == family]:
        if d in (dimension, 0):
            out.setdefault(r.name, (r, m, d or dimension))
    return list(out.values())


def error_message(doc, text):
    """The human message of an error body, in any of the shapes providers use."""
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for field in ("message", "detail", "title"):
            if isinstance(doc.get(field), str):
                return doc[field]
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
    text = re.sub(r"<[^>]+>|\s+", " ", text).strip()
    return text[:2000]  # cut short only once redacted (Router._judge)


DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
                      r"(?:(\d+(?:\.\d+)?)ms)?$")
PROSE_WAIT = re.compile(
    r"(?:try again in|retry in|retry after|wait)\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s)?)+)", re.I)


def parse_duration(text):
    """Seconds from '17', '26.28', '2m59.56s', '825ms', '1h2m3s'; None if it is none of them."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        m = DURATION.match(text)
        if not m:
            return None
        h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
        return h * 3600 + mi * 60 + s + ms / 1000
    return None if value != value else value  # not NaN


def parse_reset(value, now):
    """A reset time: epoch milliseconds, epoch seconds, or seconds from now."""
    seconds = parse_duration(value)
    if seconds is not None and seconds > 1e9:  # a time, not a wait
        return (seconds / 1000 if seconds > 1e12 else seconds) - now
    return seconds


def cooldown_hints(headers, doc, text, now):
    """The seconds the answer itself says to wait, best first as providers.md ranks them; each
    source yields None when the answer does not give it."""
    ms = parse_duration(headers.get("retry-after-ms"))
    yield None if ms is None else ms / 1000
    value = headers.get("retry-after")
    if value:
        yield parse_duration(value)
        try:  # or an HTTP date
            yield email.utils.parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    for kind in ("requests", "tokens"):  # Groq: the budget that ran out says when it is back
        if (headers.get(f"x-ratelimit-remaining-{kind}") or "").strip() == "0":
            yield parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
    if headers.get("x-ratelimit-reset"):
        yield parse_reset(headers.get("x-ratelimit-reset"), now)
    error = doc.get("error") if isinstance(doc, dict) else None
    error = error if isinstance(error, dict) else {}
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("retryDelay"), str):  # Google
            yield parse_duration(detail["retryDelay"])
    metadata = error["metadata"] if isinstance(error.get("metadata"), dict) else {}
    if isinstance(metadata.get("retry_after_seconds"), (int, float)):
        yield float(metadata["retry_after_seconds"])
    if isinstance(metadata.get("headers"), dict):  # OpenRouter: the provider's own headers
        inner = {str(k).lower(): str(v) for k, v in metadata["headers"].items()}
        yield parse_duration(inner.get("retry-after"))
        yield parse_reset(inner.get("x-ratelimit-reset"), now)
    m = PROSE_WAIT.search(text)
    yield parse_duration(m.group(1)) if m else None


def calendar_reset(kind, now):
    """Seconds until a cap's calendar reset: 'day' and 'month', the next 00:00 UTC (a monthly
    cap, HuggingFace's or Mistral's, resets on the 1st, but credits can be bought at any time
    and the instant is not documented: it is probed again daily, providers.md); 'pacific-day',
    the next 00:00 US Pacific time (Gemini)."""
    local = now - 3600 * pacific_offset(now) if kind == "pacific-day" else now
    return 86400 - local % 86400


def pacific_offset(now):
    """Hours US Pacific time is behind UTC at `now`: 7 from the second Sunday of March at 2:00
    to the first Sunday of November at 2:00 (local), else 8. No time zone database needed."""
    year = time.gmtime(now).tm_year

    def sunday(month, nth):  # 00:00 UTC of that month's nth Sunday
        first = calendar.timegm((year, month, 1, 0, 0, 0))
        return first + 86400 * ((6 - time.gmtime(first).tm_wday) % 7 + 7 * (nth - 1))
    return 7 if sunday(3, 2) + 10 * 3600 <= now < sunday(11, 1) + 9 * 3600 else 8


def classify(provider, status, headers, body, now=None):
    """Turn one failed answer into a Verdict: class, cooldown scope and seconds, message."""
    now = time.time() if now is None else now
    text = body[:65536].decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, list) and doc:  # Gemini wraps its error object in an array
        doc = doc[0]
    for rule in tuple(provider.rules) + GENERIC_RULES:
        if (not rule.status or status in rule.status) and (not rule.header or (
                headers.get(rule.header[0]) or "").strip() == rule.header[1]) and (
                not rule.body or re.search(rule.body, text, re.I)):
            break
    else:
        rule = Rule(UPSTREAM, scope=MODEL) if status >= 500 or status < 400 else Rule(CLIENT)
    seconds = rule.cooldown or DEFAULT_COOLDOWN[rule.cls]
    if rule.cls in (RATE_LIMIT, QUOTA, UPSTREAM):
        hint = next((s for s in cooldown_hints(headers, doc, text, now) if s is not None), None)
        # A daily or monthly cap whose answer says "retry in 26 s" (Gemini, OpenRouter) is
        # still spent until its reset: a hint shorter than CAP_FLOOR is not believed there.
        if rule.reset and (hint is None or hint < CAP_FLOOR):
            seconds = calendar_reset(rule.reset, now)
        elif hint is not None:
            seconds = hint
        floor = max(rule.floor, CAP_FLOOR if rule.reset else 0, 1)
        # Caps per class: an absurd hint (Retry-After: 1e30) never parks a key for a month.
        cap = {"": MAX_COOLDOWN[rule.cls], "month": 32 * 86400}.get(
            rule.reset, calendar_reset(rule.reset, now) + 3600)
        seconds = min(max(seconds, floor), max(cap, floor))
    return Verdict(rule.cls, rule.scope, seconds, error_message(doc, text))


class Exhausted(Exception):
    """No candidate could answer; `attempts` says why, one row per (provider, key, model)."""

    def __init__(self, attempts, message):
        super().__init__(message)
        self.attempts = attempts


class ClientFault(Exception):
    """The provider rejected the request itself; it goes back to the client unchanged."""

    def __init__(self, failure, verdict, attempt):
        super().__init__(verdict.message)
        self.failure = failure
        self.verdict = verdict
        self.attempt = attempt


class Router:
    """Walks the candidates of one request over keys that are not cooling; the one walk every
    route (and later every dialect) shares."""

    def __init__(self, config, cooldowns, writer, catalogs=None, ledger=None):
        self.config = config
        self.cooldowns = cooldowns
        self.writer = writer
        self.catalogs = catalogs
        self.ledger = ledger

    def walk(self, rid, candidates, send, deadline, hold=False, tokens=lambda: 0, spill=None):
        """Call send(route, key, model, timeout) until one returns; an UpstreamFailure (anything
        not a usable answer) fails over. Keys go most headroom first (the ledger); a key whose
        requests are spent, or with clearly too few tokens left this minute for `tokens()` (the
        request's estimate, made once and only if a key has a token budget), is
        skipped without a call; when only a minute about to reset (2 s) stands in the way, the
        walk waits for it once. With `spill(route, model)`, a model whose own quota is spent on
        every key gives way to that provider's next model. Busy keys of a provider taking one
        request at a time per key are skipped, not waited for; with `hold` the winning key stays
        taken until the caller gives it back (a stream, still being relayed)."""
        attempts, queue, waited = [], list(candidates), False
        tokens = functools.cache(tokens)
        while queue:
            route, model = queue.pop(0)
            spent_here = 0
            keys = route.keys_in_turn()
            if self.ledger is not None and len(keys) > 1:
                keys.sort(key=lambda k: -self.ledger.headroom(route, k, model))  # stable
            for key in keys:
                cooling = self.cooldowns.lookup(route.name, key.id, model)
                spent = self.ledger.spent(route, key, model, tokens) if self.ledger else None
                if cooling is not None or spent is not None:
                    skip = {"class": cooling.cls, "skipped": "cooling",
                            "cooldown_s": round(cooling.until - time.time(), 1)} if cooling \
                        else {"class": QUOTA if spent[1] != "minute" else RATE_LIMIT,
                              "skipped": f"no {spent[0]} left this {spent[1]}",
                              "cooldown_s": round(spent[2], 1)}
                    attempts.append({"provider": route.name, "key": key.index, "model": model,
                                     **skip})
                    self.writer.event(req=rid, event="skip", **attempts[-1])
                    own = self.cooldowns.table.get((route.name, key.id, model))  # this model's
                    spent_here += (spent is not None and spent[1] != "minute"
                                   and route.provider.quota_per_model) or (
                        cooling is not None and own is cooling and cooling.cls == QUOTA)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    attempts.append({"provider": route.name, "key": key.index, "model": model,
                                     "class": UPSTREAM, "skipped": "request deadline reached"})
                    raise Exhausted(attempts, "the request deadline passed before any provider "
                                    "answered")
                if not route.take(key):
                    attempts.append({"provider": route.name, "key": key.index, "model": model,
                                     "class": RATE_LIMIT, "skipped": "busy", "cooldown_s": 1})
                    self.writer.event(req=rid, event="skip", **attempts[-1])
                    continue
                self.writer.event(req=rid, event="attempt", provider=route.name, key=key.index,
                                  model=model)
                started = time.monotonic()
                try:
                    answer = send(route, key, model, remaining)
                except UpstreamFailure as failure:
                    route.give(key)
                    ms = round((time.monotonic() - started) * 1000)
                    verdict = self._judge(route, key, model, failure)
                    attempt = {"provider": route.name, "key": key.index, "model": model,
                               "class": verdict.cls, "status": failure.status,
                               "message": verdict.message[:300], "ms": ms}
                    if verdict.cls not in (CLIENT, CONTEXT, MODEL_NOT_FOUND):
                        attempt["cooldown_s"] = round(verdict.seconds, 1)
                    if failure.timeout:
                        attempt["timeout"] = failure.timeout
                    attempts.append(attempt)
                    self.writer.event(req=rid, event="result", ok=False, **attempt)
                    if verdict.cls == CLIENT:
                        raise ClientFault(failure, verdict, attempt) from None
                    if verdict.cls in (RATE_LIMIT, QUOTA, AUTH) and verdict.scope != MODEL:
                        spent_here += verdict.scope == KEY_MODEL and verdict.cls == QUOTA
                        continue
                    break
                except BaseException:
                    route.give(key)
                    raise
                if not hold:
                    route.give(key)
                self.cooldowns.recovered(route.name, key.id, model)
                self.writer.event(req=rid, event="result", ok=True, provider=route.name,
                                  key=key.index, model=model,
                                  ms=round((time.monotonic() - started) * 1000))
                return route, key, model, answer
            else:  # every key was tried or skipped: is it this model's own quota that is out?
                if spill and spent_here == len(keys) and (after := spill(route, model)):
                    queue.insert(0, (route, after))
            if not queue and not waited:  # a minute about to reset is worth a short wait
                soon = [a["cooldown_s"] for a in attempts if a.get("class") == RATE_LIMIT
                        and str(a.get("skipped", "")).endswith("minute")]
                if soon and 0 <= min(soon) <= 2 and deadline - time.monotonic() > min(soon) + 1:
                    waited = True
                    time.sleep(min(soon) + 0.05)
                    queue = list(candidates)
        raise Exhausted(attempts, "every free provider and key is cooling or failed" if attempts
                        else "no configured provider serves this model")

    def _judge(self, route, key, model, failure):
        verdict = classify(route.provider, failure.status, failure.headers, failure.body)
        verdict = verdict._replace(message=self.config.redact(failure.reason or verdict.message))
        if verdict.cls == UPSTREAM and failure.status == 0 and route.provider.local_server \
                and self.catalogs is not None:
            self.catalogs.local_down(route)  # not answering: unused until a probe finds it
        if verdict.cls in (CLIENT, CONTEXT):
            return verdict
        if verdict.cls == MODEL_NOT_FOUND and verdict.scope == MODEL:
            # Gone for every key: dropped until a newer catalog lists it again. A name the
            # provider never listed is only skipped, so junk names grow no table.
            if model in route.offer.ids and self.catalogs is not None:
                self.catalogs.drop(route, model)
            return verdict
        scope = {KEY: (key.id, "*"), KEY_MODEL: (key.id, model), MODEL: ("*", model)}[verdict.scope]
        if verdict.cls == UPSTREAM:
            verdict = verdict._replace(
                seconds=self.cooldowns.backoff(route.name, *scope, verdict.seconds))
        self.cooldowns.cool(route.name, *scope, verdict.seconds, verdict.cls, verdict.message[:200])
        return verdict


# =============================================================================================
# front
# =============================================================================================

class HTTPError(Exception):
    """An error answered as OpenAI-shaped JSON (Anthropic-shaped on the Anthropic routes)."""

    def __init__(self, status, message, kind="invalid_request_error", code=None, headers=None,
                 **extra):
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code
        self.headers, self.extra = headers or {}, extra

    def body(self, anthropic=False):
        if anthropic:
            error = {"type": anthropic_error_type(self.status), "message": str(self), **self.extra}
            return json.dumps({"type": "error", "error": error}).encode()
        return json.dumps({"error": {"message": str(self), "type": self.kind, "code": self.code,
                                     "param": None, **self.extra}}).encode()


def print_traceback(redact):
    """--debug: the traceback being handled, on stderr, with every configured key redacted."""
    sys.stderr.write(redact(traceback.format_exc()))


def header_safe(value):
    """A header value from anything a client or a provider sent: printable ASCII as it is, the
    rest percent-encoded (no CR/LF can add a header, nothing outside Latin-1 break the answer)."""
    text = str(value)
    return text if text.isascii() and text.isprintable() else urllib.parse.quote(text, safe="")


def new_request_id():
    return "req_" + os.urandom(4).hex()


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a deep backlog, a cap on open connections (a thread each:
    beyond FREERIDE_MAX_CONNECTIONS, a 503 at once), a pause when accept fails (out of
    descriptors, it would fail again at once), and live connections it can close."""
    daemon_threads = True
    request_queue_size = 1024
    BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n"
            b"X-FreeRide-Request-Id: %s\r\n\r\n%s")

    def __init__(self, address, handler, gateway):
        self.gateway = gateway
        self.live = set()
        self.live_lock = threading.Lock()
        self.stopping = False
        self.stopped = threading.Event()
        self.accept_failed = False
        self.wakes, self.waker = socket.socketpair()  # first: a failed bind calls server_close
        super().__init__(address, handler)

    def serve_forever(self, poll_interval=None):
        """socketserver's loop, woken by shutdown() through a socket pair rather than polling
        for it (as its own comment wishes): it stops at once, and sleeps while idle."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self.wakes, selectors.EVENT_READ)
                while not self.stopping:
                    ready = selector.select(poll_interval)
                    if self.stopping:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()
                        if self.accept_failed:  # no descriptor left: pause, do not spin
                            self.accept_failed = False
                            selector.unregister(self)
                            selector.select(0.1)
                            selector.register(self, selectors.EVENT_READ)
                    self.service_actions()
        finally:
            self.stopped.set()

    def shutdown(self):
        """Stop serve_forever (running in another thread) and wait until it has."""
        self.stopping = True
        if not self.stopped.is_set():  # a gateway may be closed twice
            try:
                self.waker.send(b"x")
            except OSError:
                pass
            self.stopped.wait()

    def server_close(self):
        super().server_close()
        self.wakes.close()
        self.waker.close()

    def get_request(self):
        try:
            return super().get_request()
        except OSError:
            self.accept_failed = True
            raise

    def process_request(self, request, client_address):
        with self.live_lock:
            full = len(self.live) >= self.gateway.config.max_connections
            if not full:
                self.live.add(request)
        if not full:
            return super().process_request(request, client_address)
        body = HTTPError(503, "too many open connections to this gateway "
                         "(FREERIDE_MAX_CONNECTIONS); retry shortly", kind="service_unavailable",
                         code="too_many_connections").body()
        try:
            request.settimeout(1)
            request.sendall(self.BUSY % (len(body), new_request_id().encode(), body))
        except OSError:
            pass
        self.shutdown_request(request)

    def shutdown_request(self, request):
        with self.live_lock:
            self.live.discard(request)
        super().shutdown_request(request)

    def close_live(self):
        with self.live_lock:
            live = list(self.live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.gateway.debug:
            print_traceback(self.gateway.config.redact)


class Hangups:
    """Closes a stream's upstream connection the moment its client hangs up, even while the
    upstream is silent (a slow model), so the provider stops generating at once. One thread
    watches every streaming client's socket; nothing runs until a stream starts."""

    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.thread = None
        self.stopped = threading.Event()
        self.waker = None  # written to by close(), so the watcher stops at once

    def watch(self, client, response):
        """Watch client while response streams; the returned Event is set if it hung up."""
        hung_up = threading.Event()
        conn = getattr(response, "freeride_conn", None)
        if conn is None or conn.sock is None:
            return hung_up
        with self.lock:
            if self.stopped.is_set():
                return hung_up
            try:
                self.selector.register(client, selectors.EVENT_READ, (conn.sock, hung_up))
            except (KeyError, ValueError, OSError):
                return hung_up
            if self.thread is None:
                self.waker, wakes = socket.socketpair()
                self.selector.register(wakes, selectors.EVENT_READ, None)
                self.thread = threading.Thread(target=self._run, name="freeride-hangups",
                                               daemon=True)
                self.thread.start()
        return hung_up

    def forget(self, client):
        with self.lock:
            try:
                self.selector.unregister(client)
            except (KeyError, ValueError, OSError):
                pass

    def close(self):
        """Stop the watcher (idempotent: a gateway may be closed twice)."""
        with self.lock:
            thread, self.thread = self.thread, None
            self.stopped.set()
        if thread is not None:
            self.waker.send(b"x")
            thread.join(timeout=2)
            for key in list(self.selector.get_map().values()):
                if key.data is None:
                    key.fileobj.close()
            self.waker.close()
        self.selector.close()

    def _run(self):
        while not self.stopped.is_set():
            try:
                ready = self.selector.select()
            except (OSError, ValueError):
                ready = []
                self.stopped.wait(0.1)
            for key, _ in ready:
                if key.data is None:  # the waker: close() was called
                    continue
                # Under the lock, and only while the stream still has the client watched: once
                # forget() has returned, its upstream connection may already serve another
                # request, and shutting it down would cut that one.
                with self.lock:
                    try:
                        if self.selector.get_key(key.fileobj).data is not key.data:
                            continue  # watched again by a newer stream since select() said so
                        self.selector.unregister(key.fileobj)
                    except (KeyError, ValueError, OSError):
                        continue  # forgotten meanwhile: the stream ended first
                    try:
                        gone = key.fileobj.recv(1, socket.MSG_PEEK) == b""
                    except OSError:
                        gone = True
                    if gone:  # EOF from the client (bytes: a pipelined request, keep going)
                        upstream, hung_up = key.data
                        hung_up.set()
                        try:
                            upstream.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass


class Deadline:
    """One armed deadline: its socket is shut down at `when` unless cancelled first (for
    reading only, `how`=SHUT_RD, when an answer must still go out: a client's 408)."""
    __slots__ = ("when", "sock", "fired", "cancelled", "how")

    def __init__(self, when, sock, how=socket.SHUT_RDWR):
        self.when, self.sock, self.how, self.fired, self.cancelled = when, sock, how, False, False

    def __lt__(self, other):
        return self.when < other.when

    def cancel(self):
        self.cancelled = True


NEVER = Deadline(float("inf"), None)  # for an answer with no socket to shut (made in-process)


class Deadlines:
    """Shuts sockets down when their deadline passes: a trickle of bytes never trips a
    per-read timeout, so requests and upstream answers get a whole-exchange bound. One thread
    serves every deadline (a heap), started on first use: arming one costs a heap push."""

    def __init__(self):
        self.heap = []
        self.compact_at = 1024
        self.wake = threading.Condition()
        self.thread = None
        self.stopped = False

    def arm(self, sock, seconds, how=socket.SHUT_RDWR):
        deadline = Deadline(time.monotonic() + seconds, sock, how)
        with self.wake:
            if len(self.heap) >= self.compact_at:
                # Cancelled deadlines leave the heap only when due: drop them now and then,
                # so a busy gateway (deadlines minutes long, a few a request) keeps it small.
                self.heap = [d for d in self.heap if not d.cancelled]
                heapq.heapify(self.heap)
                self.compact_at = max(1024, 2 * len(self.heap))
            heapq.heappush(self.heap, deadline)
            if self.thread is None and not self.stopped:
                self.thread = threading.Thread(target=self._run, name="freeride-deadlines",
                                               daemon=True)
                self.thread.start()
            elif self.heap[0] is deadline:
                self.wake.notify()
        return deadline

    def close(self):
        with self.wake:
            self.stopped = True
            self.wake.notify()
        if self.thread is not None:
            self.thread.join(timeout=2)

    def _run(self):
        with self.wake:
            while not self.stopped:
                while self.heap and self.heap[0].cancelled:
                    heapq.heappop(self.heap)
                if not self.heap:
                    self.wake.wait()
                    continue
                due = self.heap[0].when - time.monotonic()
                if due > 0:
                    self.wake.wait(due)
                    continue
                deadline = heapq.heappop(self.heap)
                deadline.fired = True
                try:
                    deadline.sock.shutdown(deadline.how)
                except OSError:
                    pass


class Handler(BaseHTTPRequestHandler):
    """One client connection: HTTP/1.1 keep-alive, every answer (even a parse error) as JSON."""
    protocol_version = "HTTP/1.1"
    server_version = "FreeRide/" + __version__

    def setup(self):
        self.timeout = self.server.gateway.config.client_timeout  # a silent client is dropped
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self):
        gateway = self.server.gateway
        self._head_deadline = gateway.deadlines.arm(self.connection,
                                                     gateway.config.client_timeout * 2,
                                                     socket.SHUT_RD)
        try:
            super().handle_one_request()
        finally:
            self._head_deadline.cancel()

    def parse_request(self):
        """http.server's parse_request, with the headers read by read_headers (no email
        parser): the request line, the version, Connection and Expect as it treats them."""
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            number = version[5:].split(".") if version.startswith("HTTP/") else []
            if len(number) != 2 or not all(n.isdecimal() and len(n) <= 10 for n in number):
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            number = int(number[0]), int(number[1])
            if number >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
                return False
            self.close_connection = number < (1, 1)
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2 and command != "GET":  # HTTP/0.9: close_connection is still True
            self.send_error(400, f"Bad HTTP/0.9 request type ({command!r})")
            return False
        self.command = command
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            self.headers = read_headers(self.rfile)
        except http.client.LineTooLong:
            self.send_error(431, "Line too long")
            return False
        except http.client.HTTPException:
            self.send_error(431, "Too many headers")
            return False
        if self._head_deadline.fired:  # trickled past the bound: what came is not the head
            self.send_error(408)
            return False
        connection = (self.headers.get("Connection") or "").lower()
        if connection in ("close", "keep-alive"):
            self.close_connection = connection == "close"
        if (self.headers.get("Expect") or "").lower() == "100-continue" \
                and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def log_message(self, fmt, *args):
        if self.server.gateway.debug:
            sys.stderr.write("freeride: %s - %s\n" % (self.address_string(), fmt % args))

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, huge headers) as OpenAI-shaped JSON."""
        self.close_connection = True
        self.rid = new_request_id()
        self.extra_headers = {"X-FreeRide-Request-Id": self.rid}
        if self._head_deadline.fired:
            code, message = 408, "the request did not arrive in time (FREERIDE_CLIENT_TIMEOUT)"
        code = {501: 405, 505: 400}.get(code, code)
        self.reply_error(HTTPError(code, message or http.client.responses.get(code, "error")))

    def do_request(self):
        gateway = self.server.gateway
        self.rid = new_request_id()
        self.extra_headers = {"X-FreeRide-Request-Id": self.rid}
        self._head_deadline.cancel()
        with gateway.active_lock:
            gateway.active += 1
        try:
            gateway.dispatch(self)
        except HTTPError as e:
            self.reply_error(e)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as e:
            self.close_connection = True
            if gateway.debug:
                print_traceback(gateway.config.redact)
            else:
                print(gateway.config.redact(f"freeride: internal error: {e!r}"), file=sys.stderr)
            try:
                self.reply_error(HTTPError(500, "internal error in the FreeRide gateway",
                                           kind="server_error", code="internal_error"))
            except OSError:
                pass
        finally:
            with gateway.active_lock:
                gateway.active -= 1

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_request

    def head(self, status, fields, headers, last):
        """An answer's head: the status line, Server, `fields`, the route's headers and ours
        (made safe), then `last`."""
        head = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Unknown')}",
                f"Server: {self.server_version}", *fields]
        head += [f"{k}: {header_safe(v)}" for some in (headers, self.extra_headers)
                 for k, v in some.items()]
        return ("\r\n".join(head + last) + "\r\n\r\n").encode("latin-1")

    def reply(self, status, body, headers=None, content_type="application/json"):
        """The whole answer (head and body) in one write."""
        body = self.server.gateway.config.redact_bytes(body)
        head = self.head(status, (f"Content-Type: {content_type}", f"Content-Length: {len(body)}"),
                         headers or {}, ["Connection: close"] if self.close_connection else [])
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def reply_json(self, status, doc, headers=None):
        self.reply(status, json.dumps(doc).encode(), headers)

    def reply_error(self, error):
        anthropic = is_anthropic_path(getattr(self, "path", ""))
        self.reply(error.status, error.body(anthropic), error.headers)

    def start_stream(self, headers):
        """Send the head of a server-sent event stream (chunked under HTTP/1.1)."""
        self.chunked = self.request_version == "HTTP/1.1"
        self.close_connection |= not self.chunked
        fields = ("Content-Type: text/event-stream", "Cache-Control: no-cache")
        self.wfile.write(self.head(200, fields, headers, ["Transfer-Encoding: chunked" if
                                                          self.chunked else "Connection: close"]))

    def send_events(self, events):
        """SSE events (bytes, each without its blank line) to the client, at once."""
        redact = self.server.gateway.config.redact_bytes
        for data in events:
            data = redact(data) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def end_stream(self):
        if self.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def read_body(self, limit):
        """The request body, by Content-Length or chunked transfer; never more than limit. The
        whole body gets the bound the head has (twice FREERIDE_CLIENT_TIMEOUT): a trickle never
        trips the per-read timeout. One refused closes the connection (the rest is no request).
        """
        gateway = self.server.gateway
        deadline = gateway.deadlines.arm(self.connection, gateway.config.client_timeout * 2,
                                         socket.SHUT_RD)
        try:
            return self._read_body(limit)
        except (HTTPError, socket.timeout) as e:
            self.close_connection = True
            if deadline.fired or isinstance(e, socket.timeout):
                raise HTTPError(408, "the request body did not arrive in time",
                                code="request_timeout") from None
            raise
        finally:
            deadline.cancel()

    def _read_body(self, limit):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command in ("POST", "PUT", "PATCH"):
                raise HTTPError(411, "a request body needs a Content-Length header",
                                code="length_required")
            return b""
        try:
            length = int(length)
        except ValueError:
            length = -1
        if length < 0:
            raise HTTPError(400, "invalid Content-Length header")
        if length > limit:
            raise HTTPError(413, f"request body over the {limit}-byte limit (FREERIDE_MAX_BODY)",
                            code="request_too_large")
        body = self.rfile.read(length)
        if len(body) != length:
            raise HTTPError(400, "request body shorter than its Content-Length")
        return body

    def _read_chunked(self, limit):
        parts, size = [], 0
        for _ in range(1_000_000):
            try:
                n = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            except ValueError:
                n = -1
            if n < 0:
                raise HTTPError(400, "malformed chunked request body")
            if n == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(parts)
            size += n
            if size > limit:
                raise HTTPError(413, f"request body over the {limit}-byte limit "
                                "(FREERIDE_MAX_BODY)", code="request_too_large")
            chunk = self.rfile.read(n)
            self.rfile.readline(8)
            if len(chunk) != n:
                raise HTTPError(400, "request body ended inside a chunk")
            parts.append(chunk)
        raise HTTPError(400, "too many chunks in the request body")

    def read_json(self, limit):
        """The request body as a JSON object, nested no deeper than MAX_NESTING levels (checked
        here, before any recursive walk of it). A leading UTF-8 BOM is no error."""
        try:
            doc = json.loads(self.read_body(limit).removeprefix(b"\xef\xbb\xbf"))
            too_deep = isinstance(doc, dict) and nested_over(doc, MAX_NESTING)
        except UnicodeDecodeError:
            raise HTTPError(400, "request body is not valid UTF-8") from None
        except ValueError as e:
            raise HTTPError(400, f"request body is not valid JSON: {e}") from None
        except RecursionError:
            too_deep = True
        if too_deep:
            raise HTTPError(400, f"request body is nested too deeply: at most {MAX_NESTING} "
                            "levels of arrays and objects")
        if not isinstance(doc, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return doc


def status_snapshot(config, cooling, usage, stats=None, quota=()):
    """What `freeride status` shows, from configuration and state (no gateway needed), keys as
    index and hash. cooling: Cooldowns.active(); usage: Stats.read_usage(); quota: the Ledger's."""
    now, day, pending = time.time(), usage.get(today(), {}), {}
    if stats is not None:  # this gateway's own counts, not all flushed yet
        with stats.lock:
            pending = {p: row for (d, p), row in stats.pending.items() if d == today()}
    cooling = sorted(cooling.items(), key=lambda kv: kv[1].until)
    providers_ = []
    for route in config.routes:
        index = {k.id: k.index for k in route.keys}  # a provider-wide cooldown's key is "*"
        used, extra = day.get(route.name, {}), pending.get(route.name, (0, 0))
        providers_.append({"name": route.name, "keys": len(route.keys), "cooling": [
            {"key": index.get(key, key), "model": model, "class": c.cls, "reason": c.reason,
             "until": round(c.until, 3), "remaining_s": round(c.until - now, 1)}
            for (provider, key, model), c in cooling if provider == route.name],
            "key_ids": [k.id for k in route.keys],
            "quota": [dict(q, key=index.get(q["key"], q["key"])) for q in quota
                      if q["provider"] == route.name],
            "local": route.provider.local_server, "answering": route.available,
            "today": {"requests": used.get("requests", 0) + extra[0],
                      "tokens": used.get("tokens", 0) + extra[1]}})
    left = sum(q["remaining"] for q in quota if q["unit"] == "requests" and q["window"] == "day")
    return {"providers": providers_, "capacity_today": {"requests": left},
            "unconfigured": [{"name": n, "fix": how} for n, how in config.unconfigured]}


KEYLESS_HINT = ("FREERIDE_KEYLESS=1 gives real answers with no sign-up, from keyless gateways "
                "(Kilo, LLM7, OVH): your prompts then go to services you never signed up with, "
                "limited per IP, and some log prompts.")


def model_entries(routes, quota=()):
    """GET /v1/models and `freeride list`: every model the walk can use now, merged across
    providers, then the aliases and families; a module's preferred model that its provider's
    catalog dropped is listed with "available": false, so a user sees why it is not used."""
    merged = {}
    for route in [r for r in routes if r.available]:
        for model in route.offer.models:
            entry = merged.setdefault(model.id, {
                "id": model.id, "object": "model", "created": 0, "owned_by": route.name,
                "providers": [], "context_length": model.context, "tools": model.tools,
                "vision": model.vision, "live": False})
            entry["live"] |= route.offer.live
            if route.name not in entry["providers"]:
                entry["providers"].append(route.name)
            entry["context_length"] = max(entry["context_length"] or 0, model.context or 0)
    for alias in ALIASES + tuple(FAMILIES):
        serving = resolve(routes, alias)
        if not serving:
            continue
        infos = [route.info(m) or providers.Model(m) for route, m in serving]
        merged[alias] = {"id": alias, "object": "model", "created": 0, "owned_by": "freeride",
                         "providers": [r.name for r, _ in serving],
                         "context_length": min((i.context for i in infos if i.context), default=0),
                         "tools": all(i.tools for i in infos),
                         "vision": all(i.vision for i in infos)}
    for route in routes:
        for model_id in route.offer.gone:
            merged.setdefault(model_id, {
                "id": model_id, "object": "model", "created": 0, "owned_by": route.name,
                "providers": [route.name], "context_length": 0, "available": False,
                "note": f"no longer in {route.name}'s catalog; not called"})
    for q in quota:  # what the ledger knows is left today, on every key
        entry = merged.get(q["model"])
        if entry is not None and q["unit"] == "requests" and q["window"] == "day":
            entry["requests_left_today"] = entry.get("requests_left_today", 0) + q["remaining"]
    return list(merged.values())


# -- the status page --------------------------------------------------------------------------
# Its files (dashboard/) sit beside this module, in a checkout, an installed copy or the zipapp.
# The page holds no secret and needs no key; its data and events do, and its script asks once.
DASHBOARD_FILES = {"index.html": "text/html; charset=utf-8",
                   "dashboard.css": "text/css; charset=utf-8",
                   "dashboard.js": "text/javascript; charset=utf-8"}
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src "
                "'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                "form-action 'none'; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def dashboard_file(name):
    """The bytes of dashboard/<name>, through this module's loader (a zip member works too)."""
    filename = __loader__.get_filename(__spec__.name if __spec__ else __name__)
    return __loader__.get_data(os.path.join(os.path.dirname(filename), "dashboard", name))


class Feed:
    """Every event as it happens, for the status pages open: the last RECENT for a page that
    opens, then a queue per page. A queue holds at most QUEUED (a page that does not read
    loses its oldest), so the request path never waits for a page. A page with nothing new
    gets a keep-alive comment every KEEP_ALIVE seconds (which finds a page that has gone)."""
    RECENT, QUEUED, KEEP_ALIVE = 400, 1000, 15.0

    def __init__(self):
        self.recent = collections.deque(maxlen=self.RECENT)
        self.queues = []
        self.wake = threading.Condition()
        self.closed = False

    def publish(self, event):
        with self.wake:
            self.recent.append(event)
            for queue in self.queues:
                queue.append(event)
            self.wake.notify_all()

    def join(self):
        with self.wake:
            self.queues.append(collections.deque(self.recent, maxlen=self.QUEUED))
            return self.queues[-1]

    def leave(self, queue):
        with self.wake:
            self.queues.remove(queue)

    def take(self, queue, timeout):
        """What is queued for one page, waiting up to timeout ([]); None once closing."""
        with self.wake:
            self.wake.wait_for(lambda: queue or self.closed, timeout)
            items = None if self.closed else list(queue)
            queue.clear()
            return items

    def close(self):
        with self.wake:
            self.closed = True
            self.wake.notify_all()


def dashboard_page(template, data, events):
    """The status page with plain tables filled in, for a browser with the script off (it
    reloads every 10 s; the script redraws them live). data None: the key is needed first."""
    def row(tag, cells):
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    def table(head, rows):
        return f"<table><thead>{row('th', head)}</thead><tbody>" \
            + "".join(row("td", r) for r in rows) + "</tbody></table>"
    if data is None:
        return template.replace("<!--{gateway}-->", "<p>This gateway needs its key "
                                "(FREERIDE_API_KEY): the page asks for it, with JavaScript on.</p>")
    status, runs, month, requests = data["status"], {}, {}, []
    for e in events:
        if e.get("req"):
            runs.setdefault(e["req"], []).append(e)
    for run in list(runs.values())[::-1][:30]:  # the latest requests, newest first
        kinds = {e["event"]: e for e in run}
        end = kinds.get("complete") or kinds.get("interrupted") or kinds.get("failed") or {}
        requests.append((time.strftime("%H:%M:%S", time.gmtime(run[0]["ts"])),
                         kinds.get("request", {}).get("model", ""), "; ".join(
            f"{a['provider']} k{a['key']} {a['model']}: {'OK' if a.get('ok') else a['class']}"
            for a in run if a["event"] in ("result", "skip")),
            end.get("provider") or end.get("event", "..."),
            *(fmt_ms(end[f]) if f in end else "" for f in ("ttft_ms", "ms")),
            end.get("tokens") or ""))
    for day in data["usage"].values():
        for name, used in day.items():
            was = month.get(name, (0, 0))
            month[name] = (was[0] + used.get("requests", 0), was[1] + used.get("tokens", 0))
    gateway, left = status["gateway"], status["capacity_today"]["requests"]
    parts = {"gateway": f"<p>freeride {gateway['version']} at {html.escape(gateway['url'])}, up "
             f"{fmt_seconds(gateway['uptime_s'])}</p>",
             "capacity": f"<p>{left} free requests left today, where providers say</p>"}
    parts["providers"] = table(("Provider", "Keys", "Cooling", "Left", "Today"), [(
        p["name"], ("local, " + ("answering" if p["answering"] else "not answering"))
        if p["local"] else p["keys"],
        "; ".join(f"k{c['key']} {c['model']}: {c['class']}, {fmt_seconds(c['remaining_s'])} "
                  f"({c['reason']})" for c in p["cooling"]) or "none",
        "; ".join(f"k{q['key']} {q['model']}: {q['remaining']}/{q['limit']} {q['unit']} "
                  f"{PER[q['window']]}" for q in p["quota"]),
        f"{p['today']['requests']} requests, {p['today']['tokens']} tokens")
        for p in status["providers"]])
    parts["requests"] = table(("Time", "Model", "Attempts", "Served by", "First token", "Total",
                               "Tokens"), requests)
    parts["usage"] = table(("Provider", "Requests", "Tokens"),
                           [(n, *t) for n, t in sorted(month.items())])
    parts["models"] = table(("Model", "Served by", "Context", "Tools", "Vision"), [(
        m["id"], ", ".join(m["providers"]), m.get("context_length") or "",
        "yes" if m.get("tools") else "", "yes" if m.get("vision") else "") for m in data["models"]])
    return re.sub(r"<!--\{(\w+)\}-->", lambda m: parts.get(m.group(1), ""), template)


class Gateway:
    """The running gateway: configuration, state, upstream pool, router and HTTP server."""

    def __init__(self, config, debug=False):
        self.config = config
        self.debug = debug
        self.started = time.time()
        self.stats = Stats(config.home / "usage.json")
        self.feed = Feed()
        self.writer = Writer(config.home, config.events, observe=self.observe)
        self.writer.ticks.append(self.stats.flush)
        self.cooldowns = Cooldowns(config.home / "cooldown.json", self.writer)
        self.pool = Pool(config.connect_timeout, config.ca_bundle)
        self.ledger = Ledger(config.home / "ledger.json", config.limits)
        self.catalogs = Catalogs(config, self.pool, self.writer, self.ledger)
        self.writer.ticks.append(self.ledger.flush)
        self.router = Router(config, self.cooldowns, self.writer, self.catalogs, self.ledger)
        self.routes = {
            "/": {"GET": self.root},
            "/health": {"GET": self.health},
            "/v1/chat/completions": {"POST": self.chat},
            "/v1/embeddings": {"POST": self.embeddings},
            "/v1/models": {"GET": self.models},
            "/freeride/status": {"GET": self.status},
            "/freeride/dashboard": {"GET": self.dashboard},
            "/freeride/events": {"GET": self.events},
            "/freeride/dashboard.css": {"GET": self.asset},
            "/freeride/dashboard.js": {"GET": self.asset},
            "/metrics": {"GET": self.metrics},
            "/v1/messages": {"POST": self.messages},
            "/v1/messages/count_tokens": {"POST": self.count_tokens},
            "/v1/responses": {"POST": self.responses},
        }
        self.hangups = Hangups()
        self.deadlines = Deadlines()
        self.active = 0  # requests being answered right now
        self.active_lock = threading.Lock()
        self.server = Server((config.host, config.port), Handler, self)
        self.port = self.server.server_address[1]
        # Host names a loopback gateway answers to (None: bound beyond loopback, key required)
        bound = config.host.strip("[]").lower()
        self.local_hosts = {"localhost", "127.0.0.1", "[::1]", bound, f"[{bound}]"} \
            if is_loopback(config.host) else None
        self.thread = None

    @property
    def url(self):
        host = self.config.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def start(self):
        """Serve on a background thread (tests, and serve's main thread waits on signals)."""
        self.thread = threading.Thread(target=self.server.serve_forever, name="freeride-server",
                                       daemon=True)
        self.thread.start()
        self.catalogs.start()
        return self

    def close(self, grace=0.0):
        """Stop accepting, give requests in flight up to `grace` seconds, flush state."""
        if self.thread is not None:
            self.server.shutdown()
        self.server.server_close()
        self.feed.close()  # open status pages end their streams now, not after the grace
        until = time.monotonic() + grace
        while self.active and time.monotonic() < until:
            time.sleep(0.05)
        self.server.close_live()
        self.catalogs.close()
        self.hangups.close()
        self.deadlines.close()
        self.pool.close()
        self.writer.flush_soon(self.cooldowns.flush)
        self.writer.flush_soon(self.ledger.flush)
        self.writer.close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    # -- routing --------------------------------------------------------------------------
    def dispatch(self, handler):
        path = urllib.parse.urlsplit(handler.path).path
        self.check_browser(handler)
        if handler.command == "OPTIONS":  # an allowed browser's CORS preflight
            handler.reply(204, b"", {
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": handler.headers.get(
                    "Access-Control-Request-Headers") or "authorization, content-type, x-api-key",
                "Access-Control-Max-Age": "600"})
            return
        public = handler.command in ("GET", "HEAD") and (path in self.PUBLIC or (
            path == "/" and self.wants_page(handler)))
        if self.config.api_key and not public and not self.client_key_ok(handler):
            raise HTTPError(401, "this gateway needs its key (FREERIDE_API_KEY) as "
                            "'Authorization: Bearer <key>' or 'x-api-key'",
                            kind="authentication_error", code="invalid_api_key")
        methods = self.routes.get(path) or self.routes.get("/v1" + path)
        if methods is None:
            raise HTTPError(404, f"unknown path {handler.command} {path}", code="not_found")
        action = methods.get(handler.command) or (methods.get("GET") if handler.command == "HEAD"
                                                  else None)
        if action is None:
            raise HTTPError(405, f"{handler.command} is not allowed on {path}",
                            code="method_not_allowed", headers={"Allow": ", ".join(methods)})
        action(handler)

    def check_browser(self, handler):
        """Refuse DNS-rebinding Host names and web pages the user did not allow: on loopback,
        only Host values that name this machine; a browser Origin only if it is listed in
        FREERIDE_ALLOWED_ORIGINS."""
        host = handler.headers.get("Host")
        if host is not None and self.local_hosts is not None:
            name = host.strip().lower()
            name = name.rsplit(":", 1)[0] if not name.endswith("]") else name
            if name not in self.local_hosts:
                raise HTTPError(403, f"Host {host!r} does not name this machine (FreeRide "
                                "answers only localhost names, against DNS rebinding)",
                                kind="permission_error", code="forbidden_host")
        origin = handler.headers.get("Origin")
        if origin is not None:
            if origin.rstrip("/") not in self.config.allowed_origins:
                raise HTTPError(403, f"requests from the web page {origin!r} are not allowed "
                                "(add it to FREERIDE_ALLOWED_ORIGINS to allow it)",
                                kind="permission_error", code="forbidden_origin")
            handler.extra_headers["Access-Control-Allow-Origin"] = origin
            handler.extra_headers["Vary"] = "Origin"

    def client_key_ok(self, handler):
        """Whether the request carries FREERIDE_API_KEY (compared in constant time)."""
        sent = handler.headers.get("x-api-key") or ""
        auth = handler.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            sent = auth[7:].strip()
        return hmac.compare_digest(sent.encode(), self.config.api_key.encode())

    PUBLIC = ("/health", "/freeride/dashboard.css", "/freeride/dashboard.js")

    @staticmethod
    def wants_page(handler):
        return handler.command == "GET" and "text/html" in (handler.headers.get("Accept") or "")

    def observe(self, event):
        """Every event, on the thread that makes it: counted, and shown to open pages."""
        self.stats.observe(event)
        self.feed.publish(event)

    def root(self, handler):
        """GET and HEAD /: Claude Code checks that its base URL answers; a browser (Accept:
        text/html) gets the status page."""
        if not self.wants_page(handler):
            handler.reply_json(200, {"status": "ok", "service": "freeride", "version": __version__})
            return
        data = self.dashboard_data() if not self.config.api_key or self.client_key_ok(handler) \
            else None
        with self.feed.wake:
            events = list(self.feed.recent)
        page = dashboard_page(dashboard_file("index.html").decode(), data, events)
        handler.reply(200, page.encode(), PAGE_HEADERS, DASHBOARD_FILES["index.html"])

    def asset(self, handler):
        name = urllib.parse.urlsplit(handler.path).path.rsplit("/", 1)[1]
        handler.reply(200, dashboard_file(name), PAGE_HEADERS, DASHBOARD_FILES[name])

    def dashboard_data(self):
        """The status page's figures: status, 31 days of usage (today's as status counts
        it) and the models."""
        days, quota = self.stats.read_usage(), self.ledger.snapshot()  # read once for both
        status = self.status_doc(days, quota)
        for p in status["providers"]:
            days.setdefault(today(), {})[p["name"]] = p["today"]
        return {"status": status, "usage": days, "now": round(time.time(), 3),
                "models": model_entries(self.config.routes, quota)}

    def dashboard(self, handler):
        handler.reply_json(200, self.dashboard_data(), PAGE_HEADERS)

    def events(self, handler):
        """GET /freeride/events: the events as they happen, as server-sent events (the
        recent ones first; one write for all that came at once), until the gateway closes."""
        handler.close_connection = True
        if handler.command == "HEAD":
            return handler.reply(200, b"", PAGE_HEADERS, "text/event-stream")
        queue = self.feed.join()
        try:
            handler.start_stream(PAGE_HEADERS)
            while (items := self.feed.take(queue, self.feed.KEEP_ALIVE)) is not None:
                handler.send_events([b"\n\n".join(b"data: " + json.dumps(e).encode()
                                                    for e in items) if items else b": keep-alive"])
            handler.end_stream()
        except OSError:
            pass
        finally:
            self.feed.leave(queue)

    def health(self, handler):
        handler.reply_json(200, {"status": "ok", "version": __version__,
                                 "providers": [r.name for r in self.config.routes if r.available]})

    def status(self, handler):
        handler.reply_json(200, self.status_doc())

    def status_doc(self, usage=None, quota=None):
        doc = status_snapshot(self.config, self.cooldowns.active(),
                              self.stats.read_usage() if usage is None else usage, self.stats,
                              self.ledger.snapshot() if quota is None else quota)
        doc["gateway"] = {"url": self.url, "pid": os.getpid(), "version": __version__,
                          "started": round(self.started, 3),
                          "uptime_s": round(time.time() - self.started, 1)}
        return doc

    def metrics(self, handler):
        cooling = {route.name: 0 for route in self.config.routes}
        for provider, key, model in self.cooldowns.active():
            if key != "*" and model == "*":
                cooling[provider] = cooling.get(provider, 0) + 1
        handler.reply(200, self.stats.metrics(cooling, self.ledger.snapshot(),
                                              {k.id: k.index for r in self.config.routes
                                               for k in r.keys}).encode(),
                      content_type="text/plain; version=0.0.4; charset=utf-8")

    def require_provider(self, handler):
        """A 503 that says what to set when no provider can answer at all (logged, and marked
        for SDKs as not worth retrying)."""
        if any(r.available for r in self.config.routes):
            return
        wanted = "; ".join(f"{name}: {how}" for name, how in self.config.unconfigured)
        raise self.failed(handler.rid, HTTPError(
            503, "FreeRide has no provider to ask: set at least one key and restart the gateway "
            f"({wanted}). {KEYLESS_HINT} Or start a local server (Ollama, llama.cpp, LM Studio), "
            "or try `freeride serve --demo`.", kind="service_unavailable",
            code="no_providers_configured", headers={"x-should-retry": "false"}),
            "no provider configured")

    def unserved(self, rid, model, candidates, tools, vision):
        """The 404 for a request no configured model can take, saying why."""
        if candidates:
            return
        needs = " and ".join(n for n, on in (("call tools", tools), ("see images", vision)) if on)
        if needs and resolve(self.config.routes, model):
            why = f"no configured model that serves {model!r} can {needs}"
        else:
            why = f"no configured provider serves {model!r} (GET /v1/models lists what does)"
        raise self.failed(rid, HTTPError(404, why, code="model_not_found", param="model",
                                         headers={"x-should-retry": "false"}))

    def failed(self, rid, error, message=None):
        """The HTTPError that answers a request, logged as its failure (with `message`)."""
        self.writer.event(req=rid, event="failed", status=error.status,
                          message=str(error) if message is None else message)
        return error

    def exhausted(self, rid, failure):
        """The final answer when nothing could serve: 429 if waiting helps, else 503."""
        attempts = failure.attempts
        if not attempts:  # nothing to try: asking again will not help
            return self.failed(rid, HTTPError(404, str(failure), code="model_not_found",
                                              param="model", attempts=[],
                                              headers={"x-should-retry": "false"}))
        if all(a["class"] in (RATE_LIMIT, QUOTA) for a in attempts):
            waits = [a["cooldown_s"] for a in attempts if a.get("cooldown_s") is not None]
            retry = max(1, int(min(waits) + 0.999)) if waits else 60
            hint = (f"Every free provider is rate-limited or out of quota; the soonest is back "
                    f"in {retry} s. Add keys for more providers to get more capacity.")
            error = HTTPError(429, f"{failure}. {hint}", kind="rate_limit_error",
                              code="all_providers_exhausted", headers={"Retry-After": str(retry)},
                              attempts=attempts, hint=hint)
        else:
            hint = ("See `attempts` for what each provider answered; `freeride watch` shows "
                    "failovers live.")
            error = HTTPError(503, f"{failure}. {hint}", kind="service_unavailable",
                              code="no_provider_available", attempts=attempts, hint=hint)
        return self.failed(rid, error, str(failure))

    def client_fault(self, rid, fault):
        """A provider's CLIENT error, as the client's own: its status and message."""
        failure = fault.failure
        # Redacted whole, then cut: a key across the cut must not leave its first characters.
        text = self.config.redact(failure.body.decode("utf-8", "replace"))[:65536]
        try:
            upstream = json.loads(text)
        except ValueError:
            upstream = text
        provider = fault.attempt["provider"]
        return self.failed(rid, HTTPError(failure.status, fault.verdict.message,
                                          code="upstream_client_error", provider=provider,
                                          upstream=upstream,
                                          headers={"X-FreeRide-Provider": provider}),
                           fault.attempt["message"])

    # -- the upstream exchange --------------------------------------------------------------
    def open(self, route, key, path, payload, timeout):
        """POST payload to one provider with one key; a non-2xx answer raises UpstreamFailure."""
        provider = route.provider
        payload = provider.prepare(payload, path)
        if provider.local:
            status, headers, body = provider.respond(key.secret, path, payload)
            response = LocalResponse(status, headers, body)
        else:
            headers = provider.headers(key.secret)
            headers["Content-Type"] = "application/json"
            headers["Accept"] = "text/event-stream" if payload.get("stream") else "application/json"
            body = json.dumps(payload, separators=(",", ":")).encode()
            head = min(self.config.first_byte_timeout, timeout)
            response = self.pool.request("POST", provider.url(path, key.account), body, headers,
                                         head, lambda sock: self.deadlines.arm(sock, head))
            self.ledger.observe(route, key, payload.get("model"), response.headers)
        guard = getattr(response, "freeride_guard", NEVER)
        ok, body, whole = 200 <= response.status < 300, b"", False
        if not ok:
            try:  # an error body that never ends is cut at the head's deadline too
                body = response.read(1 * MiB)
                whole = response.isclosed()
            except (OSError, http.client.HTTPException):
                pass
        guard.cancel()
        if guard.fired:  # its shutdown ended a trickled head (or error body) early
            self.pool.discard(response)
            what = "response head" if ok else "whole error answer"
            raise UpstreamFailure(0, reason=f"no {what} within {head:g} s", timeout="headers")
        if ok:
            return response
        # An error read to its end leaves the connection fit to serve the next attempt.
        if whole:
            self.pool.release(response)
        else:
            self.pool.discard(response)
        raise UpstreamFailure(response.status, response.headers, body)

    def _guard(self, response, seconds):
        """A Deadline over a whole upstream answer: its socket is shut when `seconds` pass."""
        sock = getattr(response, "freeride_sock", None)
        return NEVER if sock is None else self.deadlines.arm(sock, seconds)

    def read_answer(self, response, timeout):
        """The JSON body of a successful plain answer; a broken one is an UpstreamFailure."""
        guard = self._guard(response, timeout)
        try:
            _set_timeout(response, self.config.idle_timeout)
            body = response.read(64 * MiB)
            if guard.fired:
                raise OSError("the request deadline passed while the answer came in")
        except (OSError, http.client.HTTPException) as e:
            self.pool.discard(response)
            raise UpstreamFailure(0, reason=f"answer cut off: {_short(e)}") from None
        finally:
            guard.cancel()
        self.pool.release(response)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not doc:
            raise UpstreamFailure(502, response.headers, body, reason="answer is not JSON")
        if doc.get("error"):
            status = stream_error(Event("error", body, doc), response.headers).status
            raise UpstreamFailure(status, response.headers, body)
        return body, doc

    # -- dialects ---------------------------------------------------------------------------
    def chat(self, handler):
        request = handler.read_json(self.config.max_body)
        check_request(request, CHAT_FIELDS)
        self.exchange(handler, "/v1/chat/completions", request, request["model"])

    def messages(self, handler):
        """POST /v1/messages: the Anthropic Messages API (Claude Code) over the one walk."""
        request = handler.read_json(self.config.max_body)
        check_request(request, ANTHROPIC_FIELDS, dotted=True)  # as its translator names items
        payload, dropped = anthropic_to_chat(request)
        self.exchange(handler, "/v1/messages", payload, request["model"].strip(), dropped,
                      AnthropicEncoder(functools.partial(estimate_tokens, payload["messages"])),
                      chat_to_anthropic)

    def count_tokens(self, handler):
        """POST /v1/messages/count_tokens: an estimate (no provider is asked), which is what
        Claude Code needs it for: judging how full its context is."""
        request = handler.read_json(self.config.max_body)
        check_request(request, ANTHROPIC_FIELDS, dotted=True)
        anthropic_to_chat(request)  # the 400s /v1/messages would answer
        counted = [request.get(field) for field in ("system", "messages", "tools")]
        handler.reply_json(200, {"input_tokens": estimate_tokens(counted)})

    def responses(self, handler):
        """POST /v1/responses: the OpenAI Responses API (Codex), stateless, over the one walk."""
        request = handler.read_json(self.config.max_body)
        check_request(request, RESPONSES_FIELDS, dotted=True)  # as its translator names items
        payload, names, dropped = responses_to_chat(request)
        self.exchange(handler, "/v1/responses", payload, request["model"].strip(), dropped,
                      ResponsesEncoder(functools.partial(estimate_tokens, payload["messages"]),
                                       names),
                      lambda doc, used: chat_to_response(doc, used, names))

    def walk(self, rid, candidates, send, deadline, hold=False, tokens=lambda: 0):
        """Router.walk for a route: nothing left, or the client's own error, as the HTTPError
        to answer."""
        try:
            return self.router.walk(rid, candidates, send, deadline, hold, tokens,
                                    getattr(candidates, "spill", None))
        except Exhausted as e:
            raise self.exhausted(rid, e) from None
        except ClientFault as e:
            raise self.client_fault(rid, e) from None

    def exchange(self, handler, path, payload, model, dropped=(), encoder=None, shape=None):
        """Answer one chat-completions payload, for every dialect: the candidates for `model`
        walked, the answer streamed through `encoder` (payload["stream"]) or plain, made by
        `shape(doc, model)` (None: chat completions, the provider's own bytes). Nothing left,
        or the client's own error: raised as the HTTPError to answer."""
        self.require_provider(handler)
        rid, routes = handler.rid, self.config.routes
        tools = bool(payload.get("tools") or payload.get("functions"))
        vision = _has_images(payload["messages"])
        if path == "/v1/messages" and model.lower().startswith("claude-"):
            # Claude Code names its opus/sonnet/haiku slots; all get the best free tool model.
            candidates = resolve(routes, self.config.claude_model, tools, vision) \
                if self.config.claude_model else resolve(routes, "auto", True, vision)
        else:
            candidates = resolve(routes, model.strip(), tools, vision)
        self.writer.event(req=rid, event="request", model=model,
                          stream=payload.get("stream") is True, path=path)
        self.unserved(rid, model, candidates, tools, vision)
        if dropped:
            self.writer.event(req=rid, event="dropped", tools=dropped,
                              message="tools only the original service runs were not sent on")
        started = time.monotonic()
        deadline = started + self.config.request_deadline
        if payload.get("stream"):
            return self.relay_stream(handler, rid, payload, candidates, deadline, encoder)
        # Streamed upstream and assembled, so that a dead provider shows within seconds, not
        # when a plain answer's timeout ends; what assembly cannot reproduce goes plainly.
        whole = payload.get("n") in (None, 1) and not payload.get("logprobs")
        first = []

        def send(route, key, model, timeout):
            provider = route.provider
            if whole and provider.stream_plain:
                body = dict(payload, model=model, stream=True)
                body.pop("stream_options", None)
                if provider.stream_usage:
                    body["stream_options"] = {"include_usage": True}
                return self.collect(self.open(route, key, "/chat/completions", body, timeout),
                                    timeout, first)
            answer = self.read_answer(self.open(route, key, "/chat/completions",
                                                dict(payload, model=model), timeout), timeout)
            if not is_answer(answer[1]):
                raise UpstreamFailure(502, body=answer[0], reason="a 200 that holds no answer")
            return answer

        route, key, used, (body, doc) = self.walk(rid, candidates, send, deadline,
                                                  tokens=lambda: request_tokens(payload, encoder))
        usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
        now = time.monotonic()
        self.writer.event(req=rid, event="complete", provider=route.name, model=used,
                          tokens=usage.get("total_tokens"), ms=round((now - started) * 1000),
                          ttft_ms=round(((first[-1] if first else now) - started) * 1000))
        if shape is None:  # the provider's own bytes, marked with who answered
            mark = b',"_freeride_provider":' + json.dumps(route.name).encode()
            body = body.rstrip()[:-1] + mark + b"}"
        else:
            body = json.dumps(dict(shape(doc, used), _freeride_provider=route.name)).encode()
        handler.reply(200, body, {"X-FreeRide-Provider": route.name, "X-FreeRide-Model": used})

    def embeddings(self, handler):
        request = handler.read_json(self.config.max_body)
        check_request(request, EMBEDDING_FIELDS)
        model = request.get("model") or "auto"
        inputs = request.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs
                                       and all(_is_int(t) for t in inputs)):
            inputs = [inputs]  # one text, or one text as token ids
        if isinstance(inputs, list) and inputs and all(
                isinstance(i, list) and i and all(map(_is_int, i)) for i in inputs):
            # OpenAI's tokenizer's ids: no free model reads them; its vectors would be noise.
            raise HTTPError(400, "`input` as token ids only means something to OpenAI's own "
                            "models; send the text (LangChain: OpenAIEmbeddings("
                            "check_embedding_ctx_length=False))", param="input")
        if not isinstance(inputs, list) or not inputs or not all(
                isinstance(i, str) and i for i in inputs):
            raise HTTPError(400, "`input` must be a string or a list of strings", param="input")
        self.require_provider(handler)
        candidates = resolve_embeddings(self.config.routes, model.strip())
        if not candidates:
            served = sorted({m for r in self.config.routes if r.available
                             for m in r.offer.embeddings})
            raise HTTPError(404, f"no configured provider serves embeddings for {model!r}; "
                            "vectors of another model would not be comparable. Embedding "
                            "models here: " + (", ".join(served) + " (or 'auto')" if served else
                                               "none (OpenRouter, Gemini, Mistral, NVIDIA and "
                                               "Cloudflare keys give some)"),
                            code="model_not_found", param="model", models=served)
        rid = handler.rid
        self.writer.event(req=rid, event="request", model=model, stream=False,
                          path="/v1/embeddings")
        dimensions = {(r.name, m): d for r, m, d in candidates}

        def send(route, key, used, timeout):
            payload = dict(request, model=used, encoding_format="float")
            body, doc = self.read_answer(self.open(route, key, "/embeddings", payload, timeout),
                                         timeout)
            rows = doc.get("data")
            want = dimensions[(route.name, used)]
            if not want and isinstance(rows, list) and rows and isinstance(rows[0], dict) \
                    and isinstance(rows[0].get("embedding"), list):
                want = len(rows[0]["embedding"]) or -1  # unknown (a local server): consistent
            if not isinstance(rows, list) or len(rows) != len(inputs) or not all(
                    isinstance(r, dict) and _is_int(r.get("index", 0))
                    and isinstance(r.get("embedding"), list) and len(r["embedding"]) == want
                    and all(isinstance(x, (int, float)) for x in r["embedding"]) for r in rows):
                raise UpstreamFailure(502, body=body, reason=f"answer is not {len(inputs)} "
                                      f"vectors of dimension {want}")
            return doc

        route, key, used, doc = self.walk(rid, [(r, m) for r, m, _ in candidates], send,
                                          time.monotonic() + self.config.request_deadline)
        vectors = [r["embedding"] for r in sorted(doc["data"], key=lambda r: r.get("index", 0))]
        if request.get("encoding_format") == "base64":
            vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
        self.writer.event(req=rid, event="complete", provider=route.name, model=used,
                          tokens=usage.get("total_tokens"))
        handler.reply_json(200, {"object": "list", "data": data, "model": used, "usage": usage,
                                 "_freeride_provider": route.name},
                           {"X-FreeRide-Provider": route.name, "X-FreeRide-Model": used})

    def models(self, handler):
        handler.reply_json(200, {"object": "list", "data": model_entries(
            self.config.routes, self.ledger.snapshot())})

    def first_content(self, response, timeout, fields=CONTENT_FIELDS):
        """Read a stream until its first event with content; a failure before it raises. Role-only
        chunks, keep-alive comments and empty events are held back, not counted; so is a delta
        with none of `fields` (what the client's dialect shows). Something (content, reasoning
        or a keep-alive comment) must come within FREERIDE_FIRST_CONTENT_TIMEOUT, then no silence
        may last FREERIDE_IDLE_TIMEOUT, all within the request's deadline. Garbage is a failure.
        """
        config, started = self.config, time.monotonic()
        events, held, alive = sse_events(response), [], False
        _set_timeout(response, min(config.first_content_timeout, timeout))
        guard = self._guard(response, min(config.first_content_timeout, timeout))
        try:
            for raw in events:
                event = read_event(raw)
                if event.kind == "error":
                    raise stream_error(event, response.headers)
                if event.kind == "garbage":
                    raise UpstreamFailure(502, response.headers, raw[:2000],
                                          reason="a malformed event before any content")
                if event.kind == "done":
                    raise UpstreamFailure(502, reason="the stream ended with no content")
                held.append(event)
                if not alive and event.kind in ("comment", "content"):
                    alive = True  # not dead: from here only silence and the deadline count
                    guard.cancel()
                    guard = self._guard(response, timeout - (time.monotonic() - started))
                    _set_timeout(response, config.idle_timeout)
                if event.kind == "content" and (fields is CONTENT_FIELDS
                                                or carries(event.doc, fields)):
                    return response, held, events
            # the stream ended: the guard's shutdown reads as an end too
            timed_out, cut = guard.fired, "stream ended before any content"
        except UpstreamFailure:
            self.pool.discard(response)
            raise
        except (OSError, http.client.HTTPException) as e:
            timed_out = isinstance(e, socket.timeout) or guard.fired
            cut = f"stream cut before any content: {_short(e)}"
        finally:
            guard.cancel()
        self.pool.discard(response)
        if timed_out:
            stage = "idle" if alive else "first content"
            raise UpstreamFailure(0, reason=f"nothing within the {stage} timeout", timeout=stage)
        raise UpstreamFailure(0, reason=cut)

    def collect(self, response, timeout, first):
        """A plain answer from an upstream stream: read whole, then assembled into the
        chat.completion the provider would have sent. Anything short of a whole answer (an
        error event, a cut, a stall, garbage) is an UpstreamFailure, so the walk fails over
        before the client has seen a byte."""
        started = time.monotonic()
        if "text/event-stream" not in (response.headers.get("content-type") or "event-stream"):
            body, doc = self.read_answer(response, timeout)  # it ignored "stream": fine too
            if not is_answer(doc):
                raise UpstreamFailure(502, response.headers, body, reason="a 200 with no answer")
            first.append(time.monotonic())
            return body, doc
        response, held, events = self.first_content(response, timeout)
        first.append(time.monotonic())
        guard = self._guard(response, timeout - (time.monotonic() - started))
        try:  # the rest in one read and one parse, not a line and a json.loads per event
            rest = read_events(response.read(64 * MiB))
        except socket.timeout:
            self.pool.discard(response)
            raise UpstreamFailure(0, reason="nothing within the idle timeout",
                                  timeout="idle") from None
        except (OSError, http.client.HTTPException) as e:
            self.pool.discard(response)
            raise UpstreamFailure(0, reason=f"the stream was cut: {_short(e)}",
                                  timeout="request" if guard.fired else "") from None
        finally:
            guard.cancel()
        try:
            doc = assemble(held + rest, response.headers)
        except UpstreamFailure:
            self.pool.discard(response)
            raise
        if rest and rest[-1].kind == "done":
            self._finish(response)
        else:
            self.pool.discard(response)
        return json.dumps(doc).encode(), doc

    def relay_stream(self, handler, rid, request, candidates, deadline, encoder=None):
        """Stream the first candidate that produces content; relay each event as it comes,
        written by `encoder` in the client's dialect (default: chat completions as they are)."""
        options = request.get("stream_options") or {}  # checked: an object or null
        wants_usage = options.get("include_usage") is True
        encoder = encoder or ChatEncoder(wants_usage)

        def send(route, key, model, timeout):
            payload = dict(request, model=model)
            if route.provider.stream_usage and not wants_usage:
                payload["stream_options"] = dict(options, include_usage=True)
            return self.first_content(self.open(route, key, "/chat/completions", payload,
                                                timeout), timeout, encoder.shown)

        route, key, used, (response, held, events) = self.walk(
            rid, candidates, send, deadline, True, lambda: request_tokens(request, encoder))
        started, first = deadline - self.config.request_deadline, time.monotonic()
        usage, outcome = {}, "complete"
        try:
            hung_up = self.hangups.watch(handler.connection, response)
        except BaseException:
            route.give(key)
            raise
        try:
            handler.start_stream({"X-FreeRide-Provider": route.name, "X-FreeRide-Model": used})
            handler.send_events(encoder.start(used))
            for event in itertools.chain(held, self._rest(events, response)):
                if event.kind == "usage" or (event.doc and isinstance(event.doc, dict)
                                             and isinstance(event.doc.get("usage"), dict)):
                    usage = event.doc["usage"]
                if event.kind == "error":
                    failure = stream_error(event, response.headers)
                    message = self.config.redact(classify(route.provider, failure.status,
                                                          failure.headers, failure.body).message)
                    handler.send_events(encoder.error(f"{route.name}: {message}"))
                    outcome = "error"
                    break
                handler.send_events(encoder.chunk(event))
                if event.kind == "done":
                    break
            else:
                # An upstream end with no [DONE] is a cut, unless it was the watcher closing
                # the upstream because the client left (it sets hung_up before closing).
                outcome = "client closed" if hung_up.is_set() else "cut"
                if outcome == "cut":
                    handler.send_events(encoder.error(f"{route.name}: the stream ended "
                                                      "without [DONE]"))
            handler.end_stream()
        except UpstreamFailure as e:  # the upstream broke off after content was sent
            outcome = "client closed" if hung_up.is_set() else "cut"
            try:
                handler.send_events(encoder.error(f"{route.name}: {e.reason}"))
                handler.end_stream()
            except OSError:
                pass
        except OSError:  # the client went away: stop the provider generating at once
            outcome = "client closed"
            handler.close_connection = True
        finally:
            # A hang-up seen after the outcome was settled is the client leaving after the
            # end of the stream: it changes how the connections are kept, not the outcome.
            self.hangups.forget(handler.connection)
            route.give(key)
            if hung_up.is_set():
                handler.close_connection = True
            if outcome == "complete" and not hung_up.is_set():
                self._finish(response)
            else:
                self.pool.discard(response)
        self.writer.event(req=rid, event="complete" if outcome == "complete" else "interrupted",
                          provider=route.name, model=used, tokens=usage.get("total_tokens"),
                          outcome=outcome, ttft_ms=round((first - started) * 1000),
                          ms=round((time.monotonic() - started) * 1000))

    def _rest(self, events, response):
        """The events after the first content, as Event values; a cut raises UpstreamFailure."""
        try:
            for raw in events:
                if raw.startswith(b":"):
                    yield Event("comment", raw, None)
                elif b'"error"' in raw or b'"usage"' in raw or raw.startswith(b"event:") \
                        or raw.endswith(b"[DONE]"):
                    yield read_event(raw)
                elif raw.startswith(b"data:") and not _json_ok(raw[5:]):
                    continue  # garbage from the upstream is not the client's to parse
                else:
                    yield Event("content", raw, None)
        except socket.timeout:
            raise UpstreamFailure(0, reason="the stream stalled past the idle timeout") from None
        except (OSError, http.client.HTTPException) as e:
            raise UpstreamFailure(0, reason=f"the stream was cut: {_short(e)}") from None

    def _finish(self, response):
        """After [DONE]: read what is left of the body briefly, then pool the connection."""
        try:
            _set_timeout(response, 1.0)
            response.read(65536)
        except (OSError, http.client.HTTPException):
            pass
        if response.isclosed():
            self.pool.release(response)
        else:
            self.pool.discard(response)


def _json_ok(data):
    try:
        json.loads(data)
        return True
    except ValueError:
        return False


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _set_timeout(response, seconds):
    conn = getattr(response, "freeride_conn", None)
    if conn is not None and conn.sock is not None:
        conn.sock.settimeout(seconds)


def _has_images(messages):
    return any(isinstance(p, dict) and p.get("type") in ("image_url", "input_image", "image")
               for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)
               for p in m["content"])


# =============================================================================================
# dialects
# =============================================================================================
#
# Every route speaks to the providers in chat completions and walks the same Router. A dialect
# is a translation on either side of that walk: its request into a chat-completions payload,
# the plain answer back into its own shape, and, for streams, an encoder that the shared relay
# loop (Gateway.relay_stream) hands each upstream event to. An encoder has three methods, each
# returning the SSE events (bytes, without their blank line) to send to the client:
#
#   start(model)   once, when the first content is in and the stream head is sent
#   chunk(event)   for each upstream Event (content, chunk, usage, comment, done)
#   error(message) when the upstream fails after content was sent; the stream then ends

# -- request checks ---------------------------------------------------------------------------
# A request wrong in itself gets the 400 its own API would give, naming the field in `param`,
# before the walk: it never spends a provider's free request. A table maps a field to (test,
# what it must be[, required]); the test is a predicate, a table (an object with those
# fields) or [table] (a list of such objects, not empty when required); `required` is True or
# a predicate on the object holding the field. null passes wherever a field is optional, as
# in OpenAI's API, and fields no table names pass through untouched.

MAX_NESTING = 100  # levels of arrays and objects in a request body (Handler.read_json)


def nested_over(doc, limit):
    """Whether doc holds more than `limit` levels of arrays and objects (a walk by levels,
    without recursion)."""
    level = [doc]
    for _ in range(limit):
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c)
                 if isinstance(v, (dict, list))]
        if not level:
            return False
    return True


def check_request(doc, fields, where="", dotted=False):
    """Raise the 400 for the first field of doc that breaks its row in `fields` (params are
    spelled `messages[1].role`, or `messages.1.role` when dotted, as Anthropic does)."""
    for name, (test, wanted, *required) in fields.items():
        param, value = f"{where}.{name}" if where else name, doc.get(name)
        if value is None:
            if required and (required[0] is True or required[0](doc)):
                raise HTTPError(400, f"`{param}` is required", param=param)
            continue
        if isinstance(test, dict):
            ok = isinstance(value, dict)
        elif isinstance(test, list):
            ok = isinstance(value, list) and bool(value or not required)
        else:
            ok = test(value)
        if not ok:
            raise HTTPError(400, f"`{param}` must be {wanted}", param=param)
        if isinstance(test, dict):
            check_request(value, test, param, dotted)
        for i, item in enumerate(value if isinstance(test, list) else ()):
            where_item = f"{param}.{i}" if dotted else f"{param}[{i}]"
            if not isinstance(item, dict):
                raise HTTPError(400, f"`{where_item}` must be an object", param=where_item)
            check_request(item, test[0], where_item, dotted)


def _integer(least):
    return lambda v: _is_int(v) and v >= least, f"an integer of at least {least}"


def _number(low, high):
    return (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high,
            f"a number from {low} to {high}")


def _one_of(*words):
    return lambda v: v in words, "one of " + ", ".join(map(repr, words))


def _strings(value, most=None):
    return isinstance(value, list) and all(isinstance(s, str) for s in value) \
        and (most is None or len(value) <= most)


def _parts(value):
    return isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                           for p in value)


_NAME = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
_MODEL = (*_NAME, True)
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_TEXT = (lambda v: isinstance(v, str), "a string")
_NAMED = ({"name": (*_TEXT, True)}, "an object")
_FORMAT = ({"type": (*_one_of("text", "json_object", "json_schema"), True)}, "an object")
def _tool_choice(value):
    if isinstance(value, str):
        return value in ("none", "auto", "required")
    return isinstance(value, dict) and all(isinstance(value.get(k), (str, type(None)))
                                           for k in ("type", "name", "namespace"))


_TOOL_CHOICE = (_tool_choice, "'none', 'auto', 'required' or an object naming a tool")

CHAT_FIELDS = {
    "model": _MODEL,
    "messages": ([{
        "role": (*_one_of("system", "developer", "user", "assistant", "tool", "function"), True),
        "content": (lambda v: isinstance(v, str) or _parts(v),
                    "a string or a list of content parts, each an object with a string `type`",
                    lambda m: m["role"] not in ("assistant", "function")),
    }], "a non-empty list of message objects", True),
    "stream": _BOOL, "stream_options": ({"include_usage": _BOOL}, "an object"),
    "max_tokens": _integer(1), "max_completion_tokens": _integer(1), "n": _integer(1),
    "temperature": _number(0, 2), "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2), "frequency_penalty": _number(-2, 2),
    "stop": (lambda v: isinstance(v, str) or _strings(v, 4), "a string or up to 4 strings"),
    "tools": ([{"type": (*_TEXT, True),  # a provider's own kinds too (Groq's browser_search)
                "function": (*_NAMED, lambda t: t["type"] == "function"),
                "custom": (*_NAMED, lambda t: t["type"] == "custom")}], "a list of tool objects"),
    "tool_choice": _TOOL_CHOICE, "parallel_tool_calls": _BOOL, "response_format": _FORMAT,
}
EMBEDDING_FIELDS = {"model": _NAME, "dimensions": _integer(1),
                    "encoding_format": _one_of("float", "base64")}
ANTHROPIC_FIELDS = {  # messages item by item: anthropic_to_chat
    "model": _MODEL, "messages": (lambda v: isinstance(v, list) and v != [],
                                  "a non-empty list of messages", True),
    "system": (lambda v: isinstance(v, str) or _parts(v), "a string or a list of text blocks"),
    "stream": _BOOL, "max_tokens": _integer(1), "temperature": _number(0, 1),
    "top_p": _number(0, 1), "top_k": _integer(0), "stop_sequences": (_strings, "a list of strings"),
    "tools": ([{"name": (*_TEXT, True), "input_schema": ({}, "an object")}], "a list of tools"),
    "tool_choice": ({"type": (*_one_of("auto", "any", "tool", "none"), True),
                     "name": (*_TEXT, lambda c: c["type"] == "tool")}, "an object"),
    "metadata": ({}, "an object"),
}
RESPONSES_FIELDS = {  # input item by item: RESPONSES_ITEMS, in responses_to_chat
    "model": _MODEL, "stream": _BOOL, "instructions": _TEXT,
    "max_output_tokens": _integer(1), "temperature": _number(0, 2), "top_p": _number(0, 1),
    "tools": ([{"type": (*_TEXT, True), "tools": ([{}], "a list of tool objects")}],
              "a list of tool objects"),
    "tool_choice": _TOOL_CHOICE, "parallel_tool_calls": _BOOL,
    "text": ({"format": _FORMAT}, "an object"),
}
RESPONSES_ITEMS = {
    "message": {"role": (*_one_of("user", "assistant", "system", "developer"), True)},
    "function_call": {"name": (*_TEXT, True), "namespace": _TEXT, "arguments": _TEXT,
                      "call_id": _TEXT},
    "custom_tool_call": {"name": (*_TEXT, True), "input": _TEXT, "call_id": _TEXT},
    "function_call_output": {"call_id": _TEXT},
    "custom_tool_call_output": {"call_id": _TEXT},
}


class ChatEncoder:
    """Chat completions: the upstream's own events, passed through byte for byte."""
    shown = CONTENT_FIELDS  # the delta fields the client sees (reasoning included)

    def __init__(self, wants_usage):
        self.wants_usage = wants_usage

    def start(self, model):
        return []

    def chunk(self, event):
        if event.kind == "usage" and not self.wants_usage:
            return []
        return [event.raw]

    def error(self, message):
        error = {"error": {"message": message, "type": "upstream_error",
                           "code": "stream_interrupted", "param": None}}
        return [b"data: " + json.dumps(error).encode(), b"data: [DONE]"]


def _sse(name, doc):
    """One named event, as the Anthropic and Responses APIs stream them."""
    data = json.dumps(doc, separators=(",", ":")).encode()
    return b"event: " + name.encode() + b"\ndata: " + data


def _new_id(prefix):
    return prefix + os.urandom(12).hex()


def _text_of(content):
    """The text of a string, or of a list of text blocks or parts (other kinds are skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _user_content(parts):
    """Chat content for a user message: a plain string unless it carries images."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _tool_input(arguments):
    """A tool call's arguments (a JSON string from the model) as an object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:  # the model wrote broken JSON: keep it, so the agent can say so
        return {"_unparsed_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _answer(doc):
    """(text, tool calls as (id, name, arguments), finish_reason, (input, output) tokens) of
    a plain chat-completion answer, whatever shape the upstream gave it."""
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
        else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    calls = [(c.get("id"), str(c["function"].get("name") or ""), c["function"].get("arguments"))
             for c in message.get("tool_calls") or ()
             if isinstance(c, dict) and isinstance(c.get("function"), dict)]
    finish_reason = choice.get("finish_reason")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    return (_text_of(message.get("content")), calls,
            finish_reason if isinstance(finish_reason, str) else None,
            (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0))


def request_tokens(payload, encoder=None):
    """What a chat request may cost in tokens: its prompt's estimate (the one a dialect's
    encoder made already, if any) plus what it may write."""
    most = payload.get("max_completion_tokens") or payload.get("max_tokens")
    prompt = getattr(encoder, "input_estimate", None)
    prompt = estimate_tokens(payload.get("messages")) if prompt is None else prompt
    return prompt + (most if _is_int(most) else 0)


def estimate_tokens(value):
    """A rough token count of a request, where no upstream has counted yet (count_tokens, a
    stream's first usage figure): about four characters a token, 1600 per image."""
    def chars(v):
        if isinstance(v, dict):
            if v.get("type") in ("image", "image_url", "input_image"):
                return 6400
            return sum(len(str(k)) + chars(x) for k, x in v.items())
        if isinstance(v, list):
            return sum(chars(x) for x in v)
        return len(v) if isinstance(v, str) else len(json.dumps(v))
    return max(1, chars(value) // 4)


class BlockEncoder:
    """The part the Anthropic and Responses encoders share: chat-completion deltas become
    blocks opened and closed in order, text, then each tool call by its index. A subclass
    renders a block of kind "text" or "tool": open_block(kind, call_id, name), piece(kind,
    piece) of its text or arguments, close(kind); then end() after [DONE], start(), error()."""
    call_prefix = "call_"
    shown = ("content", "tool_calls")  # reasoning is not rendered: it is not content here

    def __init__(self, input_estimate):
        self._input = input_estimate  # tokens, or a function making them when first needed
        self.open = None           # ("text", None) or ("tool", the upstream's tool-call index)
        self.finish_reason = None
        self.usage = {}
        self.tools_called = False
        self.chars = 0             # of text and arguments, for usage when the upstream gives none

    @functools.cached_property
    def input_estimate(self):
        """The prompt's tokens by estimate (it reads the whole prompt: only when asked for)."""
        return self._input() if callable(self._input) else self._input

    def chunk(self, event):
        if event.kind == "done":
            return self._close() + self.end()
        doc = event.doc if event.doc is not None else read_event(event.raw).doc
        if event.kind == "comment" or not isinstance(doc, dict):
            return []
        if isinstance(doc.get("usage"), dict):
            self.usage = doc["usage"]
        choices = doc.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices \
            and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        out = []
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open != ("text", None):
                out += self._close() + self.open_block("text")
                self.open = ("text", None)
            self.chars += len(text)
            out += self.piece("text", text)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():  # 5 or "x": the upstream's garbage
            if not isinstance(call, dict):
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            index = call.get("index", 0)
            if self.open != ("tool", index):
                out += self._close()
                self.open = ("tool", index)
                self.tools_called = True
                out += self.open_block("tool", str(call.get("id") or _new_id(self.call_prefix)),
                                       str(function.get("name") or ""))
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                self.chars += len(arguments)
                out += self.piece("tool", arguments)
        if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
            self.finish_reason = choice["finish_reason"]
            out += self._close()
        return out

    def _close(self):
        if self.open is None:
            return []
        kind, self.open = self.open[0], None
        return self.close(kind)

    def tokens(self):
        """(input, output) tokens: the upstream's count, else an estimate."""
        prompt, completion = self.usage.get("prompt_tokens"), self.usage.get("completion_tokens")
        return (prompt if isinstance(prompt, int) else self.input_estimate,
                completion if isinstance(completion, int) else (self.chars + 3) // 4)


# -- Anthropic Messages (Claude Code) ---------------------------------------------------------

ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal"}
ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def is_anthropic_path(path):
    path = urllib.parse.urlsplit(path or "").path
    return path in ANTHROPIC_PATHS or "/v1" + path in ANTHROPIC_PATHS


def anthropic_error_type(status):
    return ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_stop_reason(finish_reason, tools_called):
    """Anthropic's stop_reason for a chat finish_reason. OpenAI does not say which stop
    sequence ended an answer, so a matched stop sequence reads as end_turn."""
    if tools_called and finish_reason != "length":
        return "tool_use"
    return ANTHROPIC_STOP.get(finish_reason, "end_turn")


def _anthropic_part(block):
    """The chat part of a text block, an image or a text document; None for other blocks."""
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    kind = (block.get("type"), source.get("type"))
    if kind[0] == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    if kind == ("document", "text"):
        return {"type": "text", "text": str(source.get("data") or "")}
    if kind == ("image", "base64") and isinstance(source.get("data"), str):
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    else:
        url = source.get("url") if kind == ("image", "url") else None
    if isinstance(url, str) and url:
        return {"type": "image_url", "image_url": {"url": url}}
    return None


def _anthropic_blocks(content, where):
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not _parts(content):
        raise HTTPError(400, f"{where}.content must be a string or a list of content blocks, "
                        "each an object with a string `type`", param=f"{where}.content")
    return content


def _anthropic_message(message, where):
    """The chat messages for one Anthropic message (a user turn with tool results becomes
    tool messages first, then the rest of the turn as a user message)."""
    role = message["role"]
    blocks = _anthropic_blocks(message.get("content"), where)
    if role == "system":
        return [{"role": "system", "content": _text_of(blocks)}]
    if role == "assistant":  # thinking blocks are signed for Claude only: other models skip them
        texts = [b["text"] for b in blocks
                 if b["type"] == "text" and isinstance(b.get("text"), str)]
        calls = [{"id": str(b.get("id") or _new_id("toolu_")), "type": "function",
                  "function": {"name": str(b.get("name") or ""),
                               "arguments": json.dumps(b.get("input") or {})}}
                 for b in blocks if b["type"] == "tool_use"]
        out = {"role": "assistant", "content": "\n".join(texts) if texts or not calls else None}
        return [dict(out, tool_calls=calls) if calls else out]
    results, parts = [], []
    for j, block in enumerate(blocks):
        if block["type"] != "tool_result":
            parts.append(_anthropic_part(block))
            continue
        inner = _anthropic_blocks(block.get("content") or "", f"{where}.content.{j}")
        results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""),
                        "content": ("Error: " if block.get("is_error") else "") + _text_of(inner)})
        parts += [_anthropic_part(b) for b in inner if b["type"] == "image"]  # in the user turn
    parts = [p for p in parts if p]
    if parts:
        results.append({"role": "user", "content": _user_content(parts)})
    return results


def anthropic_to_chat(body):
    """(chat payload, the tools dropped: server tools, which only Anthropic runs) for an
    Anthropic Messages request. thinking, output_config, context_management, metadata, top_k
    and the like are accepted and not sent on: the free models have no use for them."""
    messages, system = body.get("messages"), body.get("system")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(400, "`messages` must be a non-empty list", param="messages")
    if system is not None and not isinstance(system, (str, list)):
        raise HTTPError(400, "`system` must be a string or a list of text blocks", param="system")
    chat = [{"role": "system", "content": _text_of(system)}] if _text_of(system) else []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant",
                                                                         "system"):
            raise HTTPError(400, f"messages.{i} must be an object with a role of user, assistant "
                            "or system", param=f"messages.{i}")
        chat += _anthropic_message(message, f"messages.{i}")
    tools, dropped = [], []
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise HTTPError(400, "each of `tools` must be an object with a name", param="tools")
        if isinstance(tool.get("input_schema"), dict):
            tools.append({"type": "function", "function": {
                "name": tool["name"], "description": str(tool.get("description") or ""),
                "parameters": {k: v for k, v in tool["input_schema"].items() if k != "$schema"}}})
        else:
            dropped.append(str(tool.get("type") or tool["name"]))
    payload = {"messages": chat, "stream": body.get("stream") is True}
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    if tools:
        payload["tools"] = tools
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            payload["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif choice.get("type") in ("auto", "none", "any"):
            payload["tool_choice"] = {"any": "required"}.get(choice["type"], choice["type"])
        if choice.get("disable_parallel_tool_use") is True:
            payload["parallel_tool_calls"] = False
    payload.update((field, body[field]) for field in ("max_tokens", "temperature", "top_p")
                   if field in body)
    if isinstance(body.get("stop_sequences"), list) and body["stop_sequences"]:
        payload["stop"] = body["stop_sequences"]
    return payload, dropped


def _anthropic_answer(model, content, stop_reason, tokens):
    """An Anthropic `message` (a stream opens with one that has no content yet)."""
    return {"id": _new_id("msg_"), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1],
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def chat_to_anthropic(doc, model):
    """An Anthropic `message` for a plain chat-completion answer."""
    text, calls, finish_reason, tokens = _answer(doc)
    content = [{"type": "text", "text": text}] if text or not calls else []
    content += [{"type": "tool_use", "id": str(call_id or _new_id("toolu_")), "name": name,
                 "input": _tool_input(arguments)} for call_id, name, arguments in calls]
    return _anthropic_answer(model, content, anthropic_stop_reason(finish_reason, bool(calls)),
                             tokens)


class AnthropicEncoder(BlockEncoder):
    """A chat-completion stream as Anthropic's: message_start, ping, then per block
    content_block_start / content_block_delta... / content_block_stop, then message_delta
    (stop reason, usage) and message_stop; a failure is an `error` event."""
    call_prefix = "toolu_"
    index = -1  # of the block last opened

    def start(self, model):
        message = _anthropic_answer(model, [], None, (self.input_estimate, 0))
        return [_sse("message_start", {"type": "message_start", "message": message}),
                _sse("ping", {"type": "ping"})]

    def open_block(self, kind, call_id=None, name=None):
        self.index += 1
        block = {"type": "text", "text": ""} if kind == "text" \
            else {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        return [_sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                             "content_block": block})]

    def piece(self, kind, piece):
        delta = {"type": "text_delta", "text": piece} if kind == "text" \
            else {"type": "input_json_delta", "partial_json": piece}
        return [_sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                             "delta": delta})]

    def close(self, kind):
        return [_sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def end(self):
        prompt, completion = self.tokens()
        delta = {"stop_reason": anthropic_stop_reason(self.finish_reason, self.tools_called),
                 "stop_sequence": None}
        usage = {"input_tokens": prompt, "output_tokens": completion}
        return [_sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
                _sse("message_stop", {"type": "message_stop"})]

    def error(self, message):
        return [_sse("error", {"type": "error", "error": {"type": "api_error",
                                                          "message": message}})]


# -- OpenAI Responses (Codex) -----------------------------------------------------------------

class ToolNames:
    """Responses tools flattened for chat (`tools`; `dropped`: the types of those the free
    models cannot run), and the way back. A `namespace` tool's functions become top-level
    functions under their own name, or `<namespace>__<name>` where two namespaces share one;
    their calls come back with name and namespace. A `custom` tool (free-form text input,
    Codex's apply_patch) becomes a function taking one string, `input`; its calls come back
    as custom_tool_call items."""

    def __init__(self, tools=None):
        self.to_chat = {}    # (namespace or None, name) -> chat name
        self.from_chat = {}  # chat name -> (namespace or None, name)
        self.custom = set()  # chat names of custom tools
        self.tools, self.dropped, functions = [], [], []
        for tool in tools or ():  # objects, each with a string `type`: RESPONSES_FIELDS
            if tool.get("type") in ("function", "custom"):
                functions.append((None, tool))
            elif tool.get("type") == "namespace":
                functions += [(str(tool.get("name") or ""), t) for t in tool.get("tools") or ()
                              if isinstance(t, dict) and t.get("type", "function") == "function"]
            else:
                self.dropped.append(str(tool.get("type")))
        for namespace, tool in sorted(functions, key=lambda f: f[0] is not None):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise HTTPError(400, "a function tool needs a name", param="tools")
            chat = name if name not in self.from_chat else f"{namespace}__{name}"
            self.to_chat[(namespace, name)] = chat
            self.from_chat[chat] = (namespace, name)
            # `strict` is not sent: few free models know it
            parameters = tool.get("parameters") if isinstance(tool.get("parameters"), dict) \
                else {"type": "object", "properties": {}}
            if tool.get("type") == "custom":
                self.custom.add(chat)
                form = tool.get("format") if isinstance(tool.get("format"), dict) else {}
                grammar = f" It must follow this {form.get('syntax')} grammar:\n" \
                    f"{form['definition']}" if isinstance(form.get("definition"), str) else ""
                parameters = {"type": "object", "required": ["input"], "properties": {"input": {
                    "type": "string",
                    "description": "The tool's whole input, as raw text." + grammar}}}
            self.tools.append({"type": "function", "function": {
                "name": chat, "description": str(tool.get("description") or ""),
                "parameters": parameters}})

    def chat_name(self, namespace, name):
        return self.to_chat.get((namespace, name)) or self.to_chat.get((None, name)) or name

    def item(self, chat_name, call_id, arguments, status="completed"):
        """The output item for a chat tool call: a function_call, or a custom_tool_call."""
        namespace, name = self.from_chat.get(chat_name, (None, chat_name))
        if chat_name in self.custom:
            return {"type": "custom_tool_call", "id": _new_id("ctc_"), "call_id": call_id,
                    "name": name, "input": custom_input(arguments), "status": status}
        item = {"type": "function_call", "id": _new_id("fc_"), "call_id": call_id, "name": name,
                "arguments": arguments, "status": status}
        if namespace:
            item["namespace"] = namespace
        return item


def custom_input(arguments):
    """The raw text input of a custom tool call, from the function arguments it was sent as."""
    text = _tool_input(arguments).get("input", "")
    return text if isinstance(text, str) else json.dumps(text)


def _responses_parts(content, where):
    """Chat parts for the content of a Responses message item."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise HTTPError(400, f"{where}.content must be a string or a list of parts",
                        param=f"{where}.content")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal", "summary_text"):
            text = part.get("text") or part.get("refusal") or ""
            parts.append({"type": "text", "text": str(text)})
        elif kind == "input_image":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            detail = part.get("detail")
            if isinstance(url, str) and url:
                image = {"url": url, "detail": detail} if detail in ("low", "high", "auto") \
                    else {"url": url}
                parts.append({"type": "image_url", "image_url": image})
    return parts


def responses_to_chat(body):
    """(chat-completions payload, ToolNames, dropped tool types) for a Responses request.
    Stateless: the whole conversation comes in `input`, as Codex sends it. Reasoning items
    and items of tools the free models cannot run are skipped."""
    if body.get("previous_response_id"):
        raise HTTPError(400, "`previous_response_id` is not supported: FreeRide stores no "
                        "responses, so send the whole conversation in `input` (with Codex, "
                        "keep the default store = false)", param="previous_response_id",
                        code="unsupported_parameter")
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise HTTPError(400, "`input` must be a string or a non-empty list of items", param="input")
    names = ToolNames(body.get("tools"))
    chat, images = [], []  # images a tool returned come after all the tool messages of a turn
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        chat.append({"role": "system", "content": body["instructions"]})
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise HTTPError(400, f"input.{i} must be an object", param=f"input.{i}")
        kind = item.get("type") or ("message" if "role" in item else None)
        if not isinstance(kind, str):
            raise HTTPError(400, f"`input.{i}.type` must be a string", param=f"input.{i}.type")
        check_request(item, RESPONSES_ITEMS.get(kind, {}), f"input.{i}", dotted=True)
        if images and kind in ("message", "function_call", "custom_tool_call"):
            chat.append({"role": "user", "content": images})
            images = []
        if kind == "message":
            role = {"developer": "system"}.get(item["role"], item["role"])
            parts = _responses_parts(item.get("content"), f"input.{i}")
            chat.append({"role": role,
                         "content": _user_content(parts) if role == "user" else _text_of(parts)})
        elif kind in ("function_call", "custom_tool_call"):
            arguments = (item.get("arguments") or "{}") if kind == "function_call" \
                else json.dumps({"input": item.get("input") or ""})
            call = {"id": str(item.get("call_id") or item.get("id") or _new_id("call_")),
                    "type": "function", "function": {
                        "name": names.chat_name(item.get("namespace"), item["name"]),
                        "arguments": arguments}}
            if not chat or chat[-1]["role"] != "assistant":  # one turn: its text, its calls
                chat.append({"role": "assistant", "content": None})
            chat[-1].setdefault("tool_calls", []).append(call)
            chat[-1]["content"] = chat[-1]["content"] or None
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if isinstance(output, list):
                parts = _responses_parts(output, f"input.{i}.output")
                images += [p for p in parts if p["type"] == "image_url"]
                output = _text_of(parts)
            chat.append({"role": "tool", "tool_call_id": item.get("call_id") or "",
                         "content": output if isinstance(output, str) else json.dumps(output)})
        # reasoning, item_reference, and the calls of dropped tools: nothing a chat model reads
    if images:
        chat.append({"role": "user", "content": images})
    payload = {"messages": chat, "stream": body.get("stream") is True}
    choice = body.get("tool_choice")
    if names.tools:
        payload["tools"] = names.tools
        if choice in ("auto", "none", "required"):
            payload["tool_choice"] = choice
        elif isinstance(choice, dict) and choice.get("type") == "function" \
                and isinstance(choice.get("name"), str):
            payload["tool_choice"] = {"type": "function", "function": {
                "name": names.chat_name(choice.get("namespace"), choice["name"])}}
        if isinstance(body.get("parallel_tool_calls"), bool):
            payload["parallel_tool_calls"] = body["parallel_tool_calls"]
    if "max_output_tokens" in body:
        payload["max_tokens"] = body["max_output_tokens"]
    payload.update((field, body[field]) for field in ("temperature", "top_p") if field in body)
    form = (body.get("text") or {}).get("format") or {}
    if form.get("type") == "json_schema":
        payload["response_format"] = {"type": "json_schema", "json_schema": {
            k: form[k] for k in ("name", "schema", "strict", "description") if k in form}}
    elif form.get("type") == "json_object":
        payload["response_format"] = {"type": "json_object"}
    return payload, names, names.dropped


def _response(response_id, model, output, tokens=None, finish_reason=None, error=None):
    """A Responses `response` object: in progress until its tokens are counted, then failed,
    incomplete (cut by the token limit) or completed."""
    status = "in_progress" if tokens is None else "failed" if error \
        else "incomplete" if finish_reason == "length" else "completed"
    usage = None if tokens is None else {
        "input_tokens": tokens[0], "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": tokens[1], "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens[0] + tokens[1]}
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {"id": response_id, "object": "response", "created_at": int(time.time()),
            "status": status, "error": error, "incomplete_details": incomplete, "model": model,
            "output": output, "usage": usage}


def _text_item(item_id, text, status="completed"):
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def chat_to_response(doc, model, names):
    """A Responses `response` object for a plain chat-completion answer."""
    text, calls, finish_reason, tokens = _answer(doc)
    output = [_text_item(_new_id("msg_"), text)] if text else []
    output += [names.item(name, str(call_id or _new_id("call_")),
                          arguments if isinstance(arguments, str) else json.dumps(arguments or {}))
               for call_id, name, arguments in calls]
    return _response(_new_id("resp_"), model, output, tokens, finish_reason)


class ResponsesEncoder(BlockEncoder):
    """A chat-completion stream as the Responses API's events, each with a sequence_number:
    response.created, response.in_progress, per output item output_item.added, its deltas and
    dones, output_item.done, then response.completed (or .incomplete, when the token limit cut
    it) with usage; a failure is `error` then response.failed. No [DONE]."""

    def __init__(self, input_estimate, names):
        super().__init__(input_estimate)
        self.names = names
        self.sequence = 0
        self.id = _new_id("resp_")
        self.model = ""
        self.output = []   # finished items
        self.item = None   # the item being streamed
        self.where = {}    # its item_id and output_index, as its events name it
        self.pieces = []   # its text or arguments so far

    def _event(self, kind, /, **fields):
        self.sequence += 1
        return [_sse(kind, {"type": kind, "sequence_number": self.sequence - 1, **fields})]

    def start(self, model):
        self.model = model
        response = _response(self.id, model, [])
        return (self._event("response.created", response=response)
                + self._event("response.in_progress", response=response))

    def open_block(self, kind, call_id=None, name=None):
        self.item = self.names.item(name, call_id, "", "in_progress") if kind == "tool" else {
            "type": "message", "id": _new_id("msg_"), "status": "in_progress",
            "role": "assistant", "content": []}
        self.where = {"item_id": self.item["id"], "output_index": len(self.output)}
        out = self._event("response.output_item.added", output_index=len(self.output),
                          item=self.item)
        if kind == "text":
            out += self._event("response.content_part.added", **self.where, content_index=0,
                               part={"type": "output_text", "text": "", "annotations": []})
        return out

    def piece(self, kind, piece):
        self.pieces.append(piece)
        if kind == "text":
            return self._event("response.output_text.delta", **self.where, content_index=0,
                               delta=piece, logprobs=[])
        if self.item["type"] == "custom_tool_call":  # its input is sent whole, once decoded
            return []
        return self._event("response.function_call_arguments.delta", **self.where, delta=piece)

    def close(self, kind):
        whole = "".join(self.pieces)
        if kind == "text":
            done = _text_item(self.item["id"], whole)
            out = (self._event("response.output_text.done", **self.where, content_index=0,
                               text=whole, logprobs=[])
                   + self._event("response.content_part.done", **self.where,
                                 content_index=0, part=done["content"][0]))
        elif self.item["type"] == "custom_tool_call":
            done = dict(self.item, input=custom_input(whole), status="completed")
            out = (self._event("response.custom_tool_call_input.delta", **self.where,
                               delta=done["input"])
                   + self._event("response.custom_tool_call_input.done", **self.where,
                                 input=done["input"]))
        else:
            done = dict(self.item, arguments=whole, status="completed")
            out = self._event("response.function_call_arguments.done", **self.where,
                              name=done["name"], arguments=whole)
        out += self._event("response.output_item.done", output_index=len(self.output), item=done)
        self.output.append(done)
        self.pieces = []
        return out

    def end(self):
        response = _response(self.id, self.model, self.output, self.tokens(), self.finish_reason)
        return self._event("response." + response["status"], response=response)

    def error(self, message):
        failure = {"code": "server_error", "message": message}
        return (self._event("error", code="stream_interrupted", message=message, param=None)
                + self._event("response.failed", response=_response(
                    self.id, self.model, self.output, self.tokens(), error=failure)))


# =============================================================================================
# pack
# =============================================================================================

# The zipapp is made from the modules that are running, read back through their loaders, so
# `pack` works the same from a checkout, an installed copy or a freeride.pyz (which re-packs
# itself byte for byte). Fixed order, timestamps (1980, the earliest a zip entry can carry),
# permissions and compression level make the same sources give the same bytes.
PYZ_MAIN = b"""\
# FreeRide in one file, written by `freeride pack`. Run: python3 freeride.pyz serve
import sys

import freeride

sys.exit(freeride.main())
"""


def source_of(module):
    """The bytes of a module's .py file, through its loader (a path inside a zip works too)."""
    name = module.__spec__.name if module.__spec__ else module.__name__
    loader = module.__loader__
    try:
        filename = loader.get_filename(name)
        if not filename.endswith(".py"):
            raise OSError(f"only {filename} is there")
        return loader.get_data(filename)
    except (AttributeError, ImportError, OSError) as e:
        raise RuntimeError(f"cannot pack: no source for module {name!r} ({e})") from None


def pyz_sources():
    """{name in the archive: bytes}: __main__.py, this file, the providers and agents
    packages, and the status page's files.

    A package is the modules it imported (each one's registry imports every module of it),
    found by module name rather than by listing a directory. The gateway never imports
    agents/, so it is imported here.
    """
    _agents()
    files = {"__main__.py": PYZ_MAIN, "freeride.py": source_of(sys.modules[__name__])}
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in ("providers", "agents"):
            package = hasattr(module, "__path__")
            path = name.replace(".", "/") + ("/__init__.py" if package else ".py")
            files[path] = source_of(module)
    files.update({f"dashboard/{name}": dashboard_file(name) for name in DASHBOARD_FILES})
    return files


def build_pyz(files):
    """The bytes of an executable zipapp holding files, the same for the same files."""
    out = io.BytesIO()
    out.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3  # unix, so external_attr holds the mode on every platform
            info.external_attr = 0o100644 << 16  # -rw-r--r--
            archive.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=9)
    return out.getvalue()


def cmd_pack(args, config):
    data = build_pyz(pyz_sources())
    path = Path(args.output).expanduser().absolute()
    if path.is_dir():
        path = path / "freeride.pyz"
    write_atomic(path, data, mode=0o755)
    os.chmod(path, 0o755)  # whatever the umask: it is meant to be run
    print(f"wrote {path} ({len(data)} bytes)")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


# =============================================================================================
# bind
# =============================================================================================
# The agent side lives in agents/, beside providers/: `run` starts an agent pointed at the
# gateway, `bind` and `unbind` write the gateway into agents' config files, `auto`, `rotate`
# and `watcher` keep OpenClaw's models working. This is the glue: each command's line in
# `freeride --help`; agents/ is imported only when one runs, so `serve` never imports it.

AGENT_COMMANDS = {
    "run": "run an agent through the gateway, changing no file",
    "bind": "write the gateway into an agent's own config file",
    "unbind": "restore an agent's config file as it was before the first bind",
    "auto": "OpenClaw: set the primary model and fallbacks",
    "rotate": "OpenClaw: swap to the next working fallback if the primary fails",
    "watcher": "OpenClaw: rotate on failure, in a loop",
}


def _agents():
    """The agents package, imported on first use. It imports this module as `freeride`, which
    is registered first under that name (run as a script, this module is __main__)."""
    sys.modules.setdefault("freeride", sys.modules[__name__])
    import agents
    return agents


def __getattr__(name):
    """freeride.YamlDocument, freeride.AGENTS and the agent side's other names, which lived in
    this file before agents/ (#19), found there for code that still asks for them here."""
    if not name.startswith("__"):
        _agents()
        for module in sorted(sys.modules):
            if (module == "agents" or module.startswith("agents.")) and \
                    name in vars(sys.modules[module]):
                return vars(sys.modules[module])[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def watcher_main(argv=None):
    """The `freeride-watcher` console script: `freeride watcher` under its own name."""
    return main(["watcher", *(sys.argv[1:] if argv is None else argv)])


def cmd_agent(args, config):
    """run, bind, unbind, auto, rotate or watcher, run by agents/."""
    return _agents().commands.run(args, config)


class AgentCommand(argparse.ArgumentParser):
    """The parser of an agent command, given its description and arguments by agents/ the first
    time it parses or shows its help (building the parser imports nothing of agents/)."""

    def __init__(self, command, **kwargs):
        super().__init__(**kwargs)
        self.command, self.defined = command, False

    def define(self):
        if not self.defined:
            self.defined = True
            _agents().commands.add_arguments(self, self.command)

    def parse_known_args(self, args=None, namespace=None):
        self.define()
        return super().parse_known_args(args, namespace)

    def format_usage(self):
        self.define()
        return super().format_usage()

    def format_help(self):
        self.define()
        return super().format_help()


def add_agent_commands(commands):
    """Each agent command on build_parser's subparsers: its help line, and an AgentCommand in
    place of the parser add_parser made."""
    for name, summary in AGENT_COMMANDS.items():
        prog = commands.add_parser(name, help=summary).prog
        commands.choices[name] = AgentCommand(name, prog=prog)
        commands.choices[name].set_defaults(run=cmd_agent)


# =============================================================================================
# cli
# =============================================================================================

GRACE_SECONDS = 20  # how long a stopping gateway waits for requests in flight


def stop_signals():
    """Catch SIGINT and SIGTERM from now on; returns a function that waits for one.

    The interpreter itself writes a byte to a socket on the signal: a handler that set a
    threading.Event could deadlock on the Event's lock if the signal came while it was held.
    """
    readable, writable = socket.socketpair()
    writable.setblocking(False)
    signal.set_wakeup_fd(writable.fileno(), warn_on_full_buffer=False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)

    def wait():
        readable.recv(1)
        signal.set_wakeup_fd(-1)
        readable.close()
        writable.close()
    return wait


def cmd_serve(args, config):
    if not is_loopback(config.host) and not config.api_key:
        print(f"freeride: refusing to listen on {config.host}: it is reachable from other "
              "machines, so set FREERIDE_API_KEY first (clients then send it as their key)",
              file=sys.stderr)
        return 2
    try:
        gateway = Gateway(config, debug=args.debug)
    except OSError as e:
        reason = "the port is already in use" if e.errno in (98, 48, 10048) else e.strerror or e
        print(f"freeride: cannot listen on {config.host}:{config.port}: {reason}",
              file=sys.stderr)
        return 1
    wait_for_stop = stop_signals()  # now: whoever reads the lines below may stop us at once
    url = gateway.url
    print(f"freeride {__version__} gateway listening on {url}")
    hosted = [r for r in config.routes if not r.provider.local_server]
    if hosted:
        names = [f"{r.name} ({len(r.keys)} keys)" if len(r.keys) > 1 else r.name
                 for r in hosted]
        print(f"  providers: {', '.join(names)}")
        if config.demo:
            print("  demo mode: offline echo answers, key 0 always rate-limited; no quota used")
    else:
        print("  no provider keys found: requests will get a 503 until you set one:")
        for name, how in config.unconfigured:
            print(f"    {name}: {how}")
        print(f"  {KEYLESS_HINT}")
    local = [r for r in config.routes if r.provider.local_server]
    if local:
        print("  local servers, the last resort (used while they answer): "
              + ", ".join(f"{r.name} {r.provider.base_url}" for r in local))
    print(f"  status page: {url}/ (freeride open)\n  point any OpenAI-compatible agent at:\n"
          f"    export OPENAI_BASE_URL={url}/v1\n    export OPENAI_API_BASE={url}/v1\n"
          "    export OPENAI_API_KEY=any", flush=True)
    settings = read_settings(config.home)
    beacon = None
    if settings.get("telemetry") is True and config.telemetry_url:
        beacon = Telemetry(gateway, settings)
        beacon.start()
    gateway.start()
    wait_for_stop()
    if beacon is not None:
        beacon.stopped.set()  # none during the grace period
    print("freeride: stopping; letting requests in flight finish", file=sys.stderr)
    gateway.close(grace=GRACE_SECONDS)
    return 0


def fetch_local(base_url, path, timeout=1.5):
    """GET a running gateway's JSON (never through a proxy); None if nothing answers."""
    parts = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or DEFAULT_HOST, parts.port or 80,
                                      timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read(8 * MiB)
        return json.loads(body) if response.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def gateway_url(args, config):
    return (getattr(args, "url", None) or config.url).rstrip("/").removesuffix("/v1")


def fmt_seconds(seconds):
    """'47s', '3m12s', '2h03m', '4d02h'."""
    seconds = max(0, int(seconds + 0.5))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


PER = {"minute": "this minute", "hour": "this hour", "day": "today", "month": "this month"}


def fmt_ms(ms):
    """'312ms', '4.2s'."""
    return f"{ms}ms" if ms < 1000 else f"{ms / 1000:.1f}s"


class Paint:
    """ANSI colours on a terminal, none when piped or when NO_COLOR is set."""
    CODES = {"red": "31", "green": "32", "yellow": "33", "dim": "2", "bold": "1", "cyan": "36"}

    def __init__(self, stream, env):
        self.on = stream.isatty() and not env.get("NO_COLOR")

    def __call__(self, colour, text):
        return f"\033[{self.CODES[colour]}m{text}\033[0m" if self.on else text


CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 (ESC, BEL, CR...), DEL and C1 (CSI...)


def visible(value):
    """value with each control character in its text written as \\xNN, so that text from
    clients and providers (model names, error messages) cannot move the cursor, clear the
    screen or retitle the terminal; dicts and lists are gone through."""
    if isinstance(value, str):
        return CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    if isinstance(value, dict):
        return {visible(k): visible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [visible(v) for v in value]
    return value


# -- status -----------------------------------------------------------------------------------

def cmd_status(args, config):
    url = gateway_url(args, config)
    doc = fetch_local(url, "/freeride/status")
    if doc is None:
        doc = status_snapshot(config, Cooldowns(config.home / "cooldown.json", None).active(),
                              Stats(config.home / "usage.json").read_usage(),
                              quota=Ledger(config.home / "ledger.json").snapshot())
        doc["gateway"] = None
    doc["url"] = url
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    doc = visible(doc)  # reasons are the providers' words, and the doc may come from anything
    paint = Paint(sys.stdout, config.env)
    gateway = doc["gateway"]
    if gateway:
        print(f"gateway  {paint('green', 'running')} at {gateway['url']} (freeride "
              f"{gateway['version']}, pid {gateway['pid']}, up {fmt_seconds(gateway['uptime_s'])})")
        print(f"page     {gateway['url']}/ (freeride open)")
    else:
        print(f"gateway  {paint('yellow', 'not running')} (nothing answers at {url}); "
              f"showing saved state from {config.home}")
    now = time.time()
    for p in doc["providers"]:
        today_ = p["today"]
        what = (("local server, " + ("answering" if p["answering"] else "not answering"))
                if p.get("local") else f"{p['keys']} key{'s' if p['keys'] != 1 else ''}")
        print(f"{paint('bold', p['name']):<12} {what}"
              f"  today: {today_['requests']} requests, {today_['tokens']} tokens")
        for c in p["cooling"]:
            who = "all keys" if c["key"] == "*" else (f"k{c['key']}" if isinstance(c["key"], int)
                                                       else f"key {c['key']}")
            what = "" if c["model"] == "*" else f" {c['model']}"
            until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(c["until"]))
            print(f"  {who}{what}  {paint('yellow', c['class'])} until {until} (in "
                  f"{fmt_seconds(c['until'] - now)}){': ' + c['reason'] if c['reason'] else ''}")
        if not p["cooling"]:
            print(f"  {paint('green', 'no key cooling')}")
        for q in p.get("quota", ()):
            if q["window"] != "minute" or q["remaining"] <= 0:
                model = "" if q["model"] == "*" else f" {q['model']}"
                print(f"  k{q['key']}{model}  {q['remaining']}/{q['limit']} {q['unit']} "
                      f"{PER[q['window']]}, resets "
                      f"{time.strftime('%H:%M UTC', time.gmtime(q['reset']))}")
    print(f"free capacity left today: {doc['capacity_today']['requests']} requests where "
          "providers say (the ledger)")
    for u in doc["unconfigured"]:
        print(f"{u['name']:<12} not configured ({u['fix']})")
    return 0


def cmd_open(args, config):
    import webbrowser  # only this command needs a browser
    url = gateway_url(args, config) + "/"
    if fetch_local(url, "/health") is None:
        print(f"freeride: no gateway answers at {url}; start one with `freeride serve`",
              file=sys.stderr)
        return 1
    opened = webbrowser.open(url)
    print(f"opened {url}" if opened else f"no browser found here: open {url} yourself")
    return 0 if opened else 1


# -- watch ------------------------------------------------------------------------------------

def follow_events(path, since_start=False, poll=0.2, stop=None):
    """Yield each event of the events log as it is written, across rotations.

    Waits for the file if it does not exist yet; after a rotation it finishes the old file
    and continues at the start of the new one. A file that rotated before it could be
    followed (a burst between two polls) is read from the backup, so no event is lost.
    """
    backup = path.with_name(path.name + ".1")
    finished = set()  # inodes read to their end, or too old to show

    def inode(p):
        try:
            return os.stat(p).st_ino
        except FileNotFoundError:
            return None

    old = inode(backup)
    if old is not None:
        if since_start:
            yield from _parse_lines(backup.read_bytes().splitlines())
        finished.add(old)
    f, current, pending, from_start = None, None, b"", since_start
    try:
        while stop is None or not stop.is_set():
            if f is None:
                missed = inode(backup)
                if missed is not None and missed not in finished:
                    finished.add(missed)
                    yield from _parse_lines(backup.read_bytes().splitlines())
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    from_start = True  # it will be new when it appears: read it whole
                    time.sleep(poll)
                    continue
                current = os.fstat(f.fileno()).st_ino
                if not from_start:
                    f.seek(0, os.SEEK_END)
            chunk = f.read(1 * MiB)
            if chunk:
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                yield from _parse_lines(lines)
                continue
            now = inode(path)
            if now != current:  # rotated: the old file is read to its end, go on
                f.close()
                finished.add(current)
                f, pending, from_start = None, b"", True
                continue
            if os.fstat(f.fileno()).st_size < f.tell():
                f.seek(0)  # truncated in place
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()


def _parse_lines(lines):
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def render_event(e, paint):
    """One line per event, as `freeride watch` shows it, with the control characters in its
    text escaped (visible): only Paint's colours reach the terminal."""
    raw, e = e, visible(e)
    ts = e.get("ts", 0)
    stamp = paint("dim", time.strftime("[%H:%M:%S", time.localtime(ts))
                  + f".{int(ts * 1000) % 1000:03d}]")
    who = f"{e.get('provider')}[k{e.get('key')}]"
    kind = e.get("event")
    if kind == "request":
        text = f"▶ request model={e.get('model')}{' stream' if e.get('stream') else ''}"
    elif kind == "attempt":
        text = f"→ {who} {e.get('model')}"
    elif kind == "skip" and str(e.get("skipped", "")).startswith("no "):  # the ledger
        text = paint("dim", f"· skip {who} {e.get('model')} {e['skipped']}, resets in "
                            f"{fmt_seconds(e.get('cooldown_s') or 0)}")
    elif kind == "skip":
        text = paint("dim", f"· {who} {e.get('model')} cooling {e.get('class')} "
                            f"({fmt_seconds(e.get('cooldown_s') or 0)} left)")
    elif kind == "result" and e.get("ok"):
        text = f"← {who} {e.get('ms')}ms {paint('green', 'OK ✓')}"
    elif kind == "result":
        wait = f" (retry-after {fmt_seconds(e['cooldown_s'])})" if e.get("cooldown_s") else ""
        if e.get("timeout"):  # which deadline fired: headers, first content, idle
            took, what = f"{(e.get('ms') or 0) / 1000:.1f}s", f"TIMEOUT {e['timeout']}"
        else:
            took, what = f"{e.get('ms')}ms", str(e.get("class"))
        text = f"← {who} {took} {paint('red', what + ' ✗')}{wait}"
    elif kind == "complete":
        took = f" in {fmt_ms(e['ms'])} (first token {fmt_ms(e['ttft_ms'])})" \
            if isinstance(e.get("ms"), int) and isinstance(e.get("ttft_ms"), int) else ""
        tokens = f", {e['tokens']} tokens" if e.get("tokens") else ""
        text = paint("green", f"■ complete via {e.get('provider')}{took}") + tokens
    elif kind == "interrupted":
        text = paint("yellow", f"■ interrupted via {e.get('provider')} ({e.get('outcome')})")
    elif kind == "failed":
        text = paint("red", f"■ failed {e.get('status')}: {e.get('message')}")
    else:
        # json.dumps escapes every control character itself (ensure_ascii)
        text = f"{kind} {json.dumps({k: v for k, v in raw.items() if k not in ('ts', 'req')})}"
    return f"{stamp} {e.get('req', ''):<12}  {text}"


def cmd_watch(args, config):
    if not config.events:
        print("freeride: events are off (FREERIDE_EVENTS=0); nothing to watch", file=sys.stderr)
        return 1
    path = config.home / "events.jsonl"
    paint = Paint(sys.stdout, config.env)
    if not path.exists():
        print(f"waiting for {path} (start the gateway with `freeride serve`)", file=sys.stderr)
    shown = 0
    try:
        for event in follow_events(path, since_start=args.since_start):
            print(render_event(event, paint), flush=True)
            shown += 1
            if args.count and shown >= args.count:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()  # piped into `head`: a quiet end
    return 0


# -- list -------------------------------------------------------------------------------------

def cmd_list(args, config):
    live = None if args.refresh else fetch_local(gateway_url(args, config), "/v1/models", 15)
    if live is not None:
        entries = live.get("data") or []
    elif not config.routes:
        print("freeride: no provider key is set, so there is no model to list: "
              + "; ".join(f"{n}: {how}" for n, how in config.unconfigured), file=sys.stderr)
        return 1
    else:
        # No gateway: the cached catalogs (catalogs.json) where fresh, the rest fetched now.
        pool = Pool(config.connect_timeout, config.ca_bundle)
        try:
            catalogs = Catalogs(config, pool)
            catalogs.refresh_all(stale_only=not args.refresh)
            catalogs.save()
        finally:
            pool.close()
        entries = model_entries(config.routes)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    rows = [(e["id"], ",".join(e.get("providers", ())), str(e.get("context_length") or "?"),
             _yes(e.get("tools")), _yes(e.get("vision")),
             "gone" if e.get("available") is False else "alias" if e.get("owned_by") ==
             "freeride" else "live" if e.get("live") else "listed") for e in entries]
    header = ("MODEL", "PROVIDERS", "CONTEXT", "TOOLS", "VISION", "STATUS")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    gone = [e for e in entries if e.get("available") is False]
    if gone:
        print(f"\n'gone': in a provider's own list but no longer in its live catalog, so never "
              f"called ({len(gone)}); 'listed': no live catalog could be read, the provider's "
              "own list is used")
    return 0


def _yes(value):
    return "?" if value is None else ("yes" if value else "no")


# -- doctor -----------------------------------------------------------------------------------

def cmd_doctor(args, config):
    paint = Paint(sys.stdout, config.env)
    marks = {"ok": paint("green", "✓"), "warn": paint("yellow", "!"), "bad": paint("red", "✗"),
             "info": paint("dim", "·")}
    failed = False

    def line(mark, text, fix=""):
        nonlocal failed
        failed |= mark == "bad"
        print(f"{marks[mark]} {text}{' — ' + fix if fix else ''}")

    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info >= (3, 10):
        line("ok", f"Python {version}")
    else:
        line("bad", f"Python {version}", "FreeRide needs Python 3.10 or newer")
    try:
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = config.home / f".doctor-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        line("ok", f"{config.home} is writable")
    except OSError as e:
        line("bad", f"{config.home} is not writable ({e.strerror})",
             "set FREERIDE_HOME to a writable directory")
    for name, how in config.unconfigured:
        if name in config.half_configured:
            line("bad", f"{name}: half configured: {how}", f"set the missing variable")
        else:
            line("info", f"{name}: not configured ({how})")
    if not [r for r in config.routes if not r.provider.local_server]:
        line("bad", "no provider has a key", "set at least one key variable (see README)")
        line("info", KEYLESS_HINT)
    pool = Pool(min(config.connect_timeout, 5), config.ca_bundle)
    try:
        catalogs = Catalogs(config, pool)
        for route in config.routes:
            if route.provider.local_server:
                _doctor_local(route, catalogs, line)
                continue
            if route.provider.keyless and not route.keys[0].secret:
                line("info", f"{route.name}: keyless, no key sent; limits are per IP and your "
                             "prompts go to a service you did not sign up with")
            else:
                for key in route.keys:
                    _doctor_key(route, key, pool, line)
            _doctor_catalog(route, catalogs, line)
    finally:
        pool.close()
    url = gateway_url(args, config)
    health = fetch_local(url, "/health")
    if health is not None and health.get("status") == "ok":
        line("ok", f"gateway running at {url} (freeride {health.get('version')}, providers: "
                   f"{', '.join(health.get('providers', [])) or 'none'})")
    else:
        parts = urllib.parse.urlsplit(url)
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1):
                line("bad", f"{parts.hostname}:{parts.port} is taken by something that is not "
                            "a FreeRide gateway", "stop it or use another FREERIDE_PORT")
        except OSError:
            line("info", f"no gateway running at {url}", "start one with `freeride serve`")
    return 1 if failed else 0


def _doctor_local(route, catalogs, line):
    found = catalogs.fetch(route)
    if found is None:
        line("info", f"{route.name}: nothing answers at {route.provider.base_url} (a local "
                     "server is optional; FREERIDE_LOCAL=0 stops looking)")
    else:
        line("ok", f"{route.name} answers at {route.provider.base_url} ({len(found[0])} chat "
                   f"models, {len(found[1])} embedding models): used after every hosted provider")


def _doctor_catalog(route, catalogs, line):
    """Say when the live catalog no longer lists the models the module prefers."""
    found = catalogs.fetch(route) if catalogs.config.live_catalogs else None
    if found is None:
        return
    live = {m.id for m in found[0]}
    gone = [m.id for m in type(route.provider).models if m.id not in live]
    if gone:
        line("warn", f"{route.name}: {len(gone)} of its preferred models are gone from its "
                     f"catalog and are not called: {', '.join(gone)}",
             f"{len(live)} free models are live there (`freeride list`)")


def _doctor_key(route, key, pool, line):
    provider, var = route.provider, route.provider.key_vars[0]
    label = f"{route.name} key {key.index}" if len(route.keys) > 1 else f"{route.name} key"
    check = provider.key_check_url(key.account)
    url = check or provider.catalog_url(key.account)
    try:
        status, headers, body = pool.get(url, provider.headers(key.secret),
                                         pool.connect_timeout, 1 * MiB)
    except UpstreamFailure as e:
        line("bad", f"{label}: {urllib.parse.urlsplit(url).netloc} unreachable ({e.reason})",
             "check the network, a proxy (HTTPS_PROXY) or the base URL override")
        return
    if check is None:
        line("warn", f"{label}: {route.name} is reachable; its key can only be checked by a "
                     "billed request, so the first real request will tell")
    elif status == 200:
        line("ok", f"{label} accepted")
    elif classify(provider, status, headers, body).cls == AUTH:  # Gemini: a 400
        line("bad", f"{label} rejected ({status})", f"replace the key in {var}")
    else:
        line("warn", f"{label}: unexpected answer {status} from the key check")


# -- telemetry --------------------------------------------------------------------------------

def read_settings(home):
    """$FREERIDE_HOME/config.json (the file layer of the configuration); {} if absent."""
    path = home / "config.json"
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        set_aside(path, e)
        return {}


def telemetry_payload(config, settings, uptime_s=0.0, usage=None):
    """Exactly what a telemetry beacon carries: counts only, never prompts, models or keys."""
    usage = Stats(config.home / "usage.json").read_usage() if usage is None else usage
    day = usage.get(today(), {})
    return {"installation_id": settings.get("installation_id", ""), "version": __version__,
            "os": sys.platform, "tokens_served": sum(r.get("tokens", 0) for r in day.values()),
            "request_count": sum(r.get("requests", 0) for r in day.values()),
            "providers_active": [r.name for r in config.routes],
            "uptime_hours": int(uptime_s // 3600)}


def cmd_telemetry(args, config):
    settings = read_settings(config.home)
    if args.state or not settings.get("installation_id"):
        settings.setdefault("installation_id", str(uuid.uuid4()))
        if args.state:
            settings["telemetry"] = args.state == "on"
        write_atomic(config.home / "config.json", json.dumps(settings, indent=2).encode())
    on = settings.get("telemetry") is True
    print(f"telemetry is {'ON' if on else 'OFF'}" + ("" if on else
          " (FreeRide is local-first: nothing is sent unless you run `freeride telemetry on`)"))
    if config.telemetry_url:
        print(f"endpoint: {config.telemetry_url} (FREERIDE_TELEMETRY_URL), every "
              f"{fmt_seconds(config.telemetry_interval)} while `freeride serve` runs")
    else:
        print("endpoint: none (FREERIDE_TELEMETRY_URL is not set), so nothing is ever sent")
    print("payload, exactly as it would be sent (counts of today, UTC):")
    print(json.dumps(telemetry_payload(config, settings), indent=2))
    return 0


class Telemetry(threading.Thread):
    """The opt-in hourly beacon of a running gateway; off the request path, failures silent."""

    def __init__(self, gateway, settings):
        super().__init__(name="freeride-telemetry", daemon=True)
        self.gateway, self.settings = gateway, settings
        self.stopped = threading.Event()

    def run(self):
        config = self.gateway.config
        while not self.stopped.wait(config.telemetry_interval):
            payload = telemetry_payload(config, self.settings, time.time() - self.gateway.started)
            request = urllib.request.Request(config.telemetry_url, json.dumps(payload).encode(),
                                             {"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except Exception:  # a failed beacon is never the user's problem
                pass


def port_number(text):
    """argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return port


def build_parser():
    parser = argparse.ArgumentParser(
        prog="freeride", description="A local OpenAI-compatible gateway over free-tier LLM "
        "providers, with failover between keys and providers.")
    parser.add_argument("--version", action="version", version=f"freeride {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and access logs")
    commands = parser.add_subparsers(dest="command", metavar="command")
    serve = commands.add_parser("serve", help="run the gateway",
                                description="Run the gateway on 127.0.0.1:11343 (by default).")
    serve.add_argument("--host",
                       help=f"address to listen on (FREERIDE_HOST, default {DEFAULT_HOST})")
    serve.add_argument("--port", type=port_number,
                       help=f"port to listen on (FREERIDE_PORT, default {DEFAULT_PORT})")
    serve.add_argument("--demo", action="store_true",
                       help="serve only the offline demo provider (no keys, no network)")
    serve.set_defaults(run=cmd_serve)

    def gateway_option(command):
        command.add_argument("--url", help="a running gateway's address (default from "
                             "FREERIDE_HOST and FREERIDE_PORT)")

    watch = commands.add_parser("watch", help="tail live failover events",
                                description="Show each request, attempt and failover of a "
                                "running gateway as it happens (from $FREERIDE_HOME/events.jsonl).")
    watch.add_argument("--since-start", action="store_true",
                       help="replay the events already in the log first")
    watch.add_argument("--count", type=int, default=0, help="stop after this many events")
    watch.set_defaults(run=cmd_watch)
    status = commands.add_parser("status", help="gateway, keys, cooldowns and today's usage",
                                 description="Whether a gateway runs, which providers have keys, "
                                 "which keys are cooling and why, and today's requests and tokens. "
                                 "Works from the state files when no gateway runs.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    gateway_option(status)
    status.set_defaults(run=cmd_status)
    open_ = commands.add_parser("open", help="open the status page in the browser",
                                description="Open a running gateway's live status page "
                                "(http://127.0.0.1:11343/) in the default browser.")
    gateway_option(open_)
    open_.set_defaults(run=cmd_open)
    list_ = commands.add_parser("list", help="list the free models you can use",
                                description="The free models of every configured provider, from "
                                "their live catalogs (cached for FREERIDE_CATALOG_TTL, 4 hours by "
                                "default).")
    list_.add_argument("--refresh", action="store_true", help="fetch the catalogs again now")
    list_.add_argument("--json", action="store_true", help="machine-readable output")
    gateway_option(list_)
    list_.set_defaults(run=cmd_list)
    doctor = commands.add_parser("doctor", help="check the set-up and say how to fix it",
                                 description="Check Python, FREERIDE_HOME, each provider's keys "
                                 "(with zero-cost calls), the port and a running gateway. Exits 1 "
                                 "if anything is wrong.")
    gateway_option(doctor)
    doctor.set_defaults(run=cmd_doctor)
    telemetry = commands.add_parser("telemetry", help="show or switch the opt-in telemetry",
                                    description="Telemetry is off until you turn it on. Shows "
                                    "exactly what would be sent and where.")
    telemetry.add_argument("state", nargs="?", choices=("on", "off"))
    telemetry.set_defaults(run=cmd_telemetry)
    pack = commands.add_parser(
        "pack", help="write the single-file build freeride.pyz",
        description="Write freeride.pyz: this FreeRide (freeride.py, providers/, agents/ and "
        "dashboard/) in one executable zip that needs only Python 3.10+. Run it as python3 "
        "freeride.pyz serve.")
    pack.add_argument("-o", "--output", default="freeride.pyz", metavar="PATH",
                      help="where to write it (default ./freeride.pyz; a directory gets "
                      "freeride.pyz inside)")
    pack.set_defaults(run=cmd_pack, needs_config=False)
    add_agent_commands(commands)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    config = None  # pack reads no settings: a broken key variable must not stop it
    try:
        if getattr(args, "needs_config", True):
            config = Config(host=getattr(args, "host", None), port=getattr(args, "port", None),
                            demo=getattr(args, "demo", False))
        return args.run(args, config)
    except ConfigError as e:
        print(f"freeride: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        redact = config.redact if config is not None else str
        if args.debug:
            print_traceback(redact)
        else:
            print(redact(f"freeride: {e.__class__.__name__}: {e} (run with --debug for details)"),
                  file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
