"""Test support: a real gateway on a loopback port in front of fake providers, and a client.

Every test gets its own FREERIDE_HOME in a temp dir; the gateway reads only the environment
the test gives it (never the real one), and everything started is closed on cleanup.
"""
import functools
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import freeride
import providers
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent

# Everything FreeRide reads from the environment; cleared for subprocesses.
OWN_VARS = tuple(v for cls in providers.REGISTRY.values()
                 for v in cls.key_vars + ((cls.account_var,) if cls.account_var else ())
                 + ((cls.models_override_var,) if cls.models_override_var else ())
                 + (cls.base_url_var or f"{cls.name.upper()}_BASE_URL",))


# The documented free limits the ledger counts (30 a minute on Groq, ...) would stop tests
# that send more: every harness raises them, unless a test sets FREERIDE_LIMITS itself.
UNLIMITED = json.dumps({name: {f"{unit}/{window}": 10 ** 9 for unit, window, _ in cls.limits}
                        for name, cls in providers.REGISTRY.items() if cls.limits})


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        return self.json()["error"]


def clean_env(**extra):
    """os.environ without any FreeRide or provider variable, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in OWN_VARS and not k.startswith("FREERIDE_")}
    env["FREERIDE_LOCAL"] = "0"  # whatever listens on this machine's local-server ports
    env["FREERIDE_LIMITS"] = UNLIMITED
    env.update(extra)
    return env


class GatewayTest(unittest.TestCase):
    """Base class: fake providers, a gateway in front of them, and helpers to call it."""

    def setUp(self):
        self.home = Path(tempfile.mkdtemp(prefix="freeride-test-"))
        self.addCleanup(shutil.rmtree, self.home, True)
        self.fakes = {}

    def fake(self, provider):
        """A started fake for provider (one per provider per test)."""
        upstream = fakes.FakeUpstream(provider).start()
        self.addCleanup(upstream.close)
        self.fakes[provider] = upstream
        return upstream

    def provider_env(self, **keys):
        """Key and base-URL variables for each named provider, in the order given.

        A value is one key, or a list of keys (written as a JSON array). A provider without a
        fake yet gets one.
        """
        env = {"FREERIDE_PROVIDERS": ",".join(keys)}
        for name, value in keys.items():
            cls = providers.REGISTRY[name]
            upstream = self.fakes.get(name) or self.fake(name)
            env[cls.key_vars[0]] = json.dumps(value) if isinstance(value, list) else value
            env[cls.base_url_var or f"{name.upper()}_BASE_URL"] = upstream.url
            if cls.account_var:
                env[cls.account_var] = "acct0123"
        return env

    def start_gateway(self, env=None, **keys):
        """A gateway on 127.0.0.1:<free port> with the given environment and provider keys."""
        full = {"FREERIDE_HOME": str(self.home), "FREERIDE_CONNECT_TIMEOUT": "2",
                "FREERIDE_LOCAL": "0", "FREERIDE_LIMITS": UNLIMITED,
                "FREERIDE_FIRST_BYTE_TIMEOUT": "5", "FREERIDE_IDLE_TIMEOUT": "5"}
        full.update(self.provider_env(**keys) if keys else {})
        full.update(env or {})
        gateway = freeride.Gateway(freeride.Config(env=full, port=0)).start()
        self.addCleanup(gateway.close)
        # The live catalogs are fetched in the background at start: tests begin once the first
        # round is in, so that what they route on does not race it.
        self.assertTrue(gateway.catalogs.ready.wait(10), "the first catalog fetches hung")
        for upstream in self.fakes.values():  # what a test scripts and counts comes after
            with upstream._lock:
                upstream.catalog_requests = list(upstream.requests)
                upstream.requests.clear()
        self.gateway = gateway
        return gateway

    def call(self, method, path, body=None, headers=None, gateway=None):
        gateway = gateway or self.gateway
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=15)
        try:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            conn.request(method, path, data, {"Content-Type": "application/json",
                                              **(headers or {})})
            response = conn.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            conn.close()

    def chat(self, model="auto", text="hello", **extra):
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return self.call("POST", "/v1/chat/completions", body)

    def cooldown_file(self):
        path = self.home / "cooldown.json"
        for _ in range(200):  # the writer thread flushes soon after a change
            if path.exists():
                break
            time.sleep(0.01)
        return json.loads(path.read_text())["cooldowns"]

    def events(self):
        """The events log, once the background writer has caught up."""
        self.gateway.writer.flush_soon(lambda: None)
        done = []
        self.gateway.writer.flush_soon(lambda: done.append(True))
        for _ in range(500):
            if done:
                break
            time.sleep(0.01)
        path = self.home / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def logged(self, *kinds, timeout=5):
        """The events log rows of these kinds, once at least one is written (a bounded wait):
        a stream's last row is logged just after its last byte, which the client may read
        first."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [row for row in self.events() if row.get("event") in kinds]
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.01)

    def keys_seen(self, provider):
        return [r.key for r in self.fakes[provider].requests if r.path.endswith("/completions")]


def run_cli(*args, env=None, timeout=30, **kwargs):
    """Run `python -m freeride ARGS` from the checkout; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "freeride", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@functools.lru_cache(maxsize=None)
def python310():
    """A Python 3.10 interpreter: the oldest FreeRide supports, so the one the pyz must run on.

    Looked for like CI does: under pyenv, then as python3.10 on PATH (which may be a pyenv shim
    that refuses to run, so each candidate is tried).
    """
    root = Path.home() / ".pyenv"
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        root = Path(found.stdout.strip() or root)
    candidates = [str(p) for p in sorted(root.glob("versions/3.10.*/bin/python3"))]
    candidates.append(shutil.which("python3.10"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 10))"],
                               capture_output=True)
        if probe.returncode == 0:
            return candidate
    raise AssertionError(f"no working Python 3.10 found (tried {candidates}); FreeRide promises "
                         "3.10, so these tests need one: install it (e.g. pyenv install 3.10)")
