"""The provider contract (api = 1) and the explicit registry.

A provider is a translator, not a client: it declares data about one free-tier upstream
(its base URL, key variables, free models, the spellings of common model families and the
rules that turn its error answers into failover classes) and overrides a hook only where its
API really differs from OpenAI's. Sockets, timeouts, retries, cooldowns, logging and error
rendering live in the gateway core (freeride.py), never here.

Adding a provider: write providers/<name>.py with a `Provider` subclass and add it to
`REGISTRY` below. No directory scanning, so the registry works the same inside the zipapp.
"""
from typing import NamedTuple

API = 1

# Failover classes (see ARCHITECTURE.md, "The request walk").
RATE_LIMIT = "RATE_LIMIT"            # per-minute limit: cool for the hinted time, next key
QUOTA = "QUOTA"                      # daily/monthly cap or credits gone: cool until the reset
AUTH = "AUTH"                        # bad or revoked key: cool the key for long, next key
MODEL_NOT_FOUND = "MODEL_NOT_FOUND"  # the model is unknown there: next candidate
CONTEXT = "CONTEXT"                  # the request is too large for this model: next candidate
CLIENT = "CLIENT"                    # the request itself is wrong: return it, no failover
UPSTREAM = "UPSTREAM"                # 5xx, timeout, connection error: next provider

# Cooldown scopes: the whole key, this model on this key, or this model on every key.
KEY, KEY_MODEL, MODEL = "key", "key-model", "model"


class Rule(NamedTuple):
    """One classification row: when status, header and body all match, the answer is `cls`.

    `body` is a regular expression searched (case-insensitively) in the raw body text;
    `header` is a (name, value) pair that must be present. `cooldown` is used when the answer
    carries no hint of its own (0: the class default); `reset` ("day" or "month") names the
    calendar reset of a cap that gives no number; `floor` is the shortest cooldown allowed.
    """
    cls: str
    status: tuple = ()
    body: str = ""
    header: tuple = ()
    scope: str = KEY
    cooldown: float = 0
    reset: str = ""
    floor: float = 0


class Model(NamedTuple):
    """A free chat model a provider serves; `context` 0 means unknown."""
    id: str
    context: int = 0
    tools: bool = True
    vision: bool = False


class Provider:
    """OpenAI-compatible upstream. Subclasses set the data; hooks are rarely needed."""
    api = API
    name = ""
    title = ""
    base_url = ""
    base_url_var = ""        # overrides base_url; default <NAME>_BASE_URL
    key_vars = ()            # environment variables holding a key (or a JSON array of keys)
    account_var = ""         # a second variable every key needs (Cloudflare's account id)
    signup = ""              # where to get a key
    models = ()              # free chat models, best first; models[0] is the default
    models_override_var = ""  # comma-separated ids added to `models`
    families = {}            # family name (see freeride.FAMILIES) -> this provider's model id
    embedding_models = {}    # embedding model id -> vector dimension
    rules = ()               # provider-specific Rule rows, tried before the generic ones
    stream_usage = False     # accepts stream_options.include_usage (usage for the events log)
    local = False            # True only for the offline demo: answered by respond()

    def __init__(self, base_url=None, extra_models=()):
        if base_url:
            self.base_url = base_url.rstrip("/")
        known = {m.id for m in self.models}
        self.models = tuple(self.models) + tuple(Model(m) for m in extra_models if m not in known)
        self.model_ids = {m.id for m in self.models}

    def serves(self, model):
        """True if `model` is a free model id this provider answers by that exact name."""
        return model in self.model_ids

    def model_info(self, model):
        return next((m for m in self.models if m.id == model), None)

    def url(self, path, account=""):
        return self.base_url.replace("{account_id}", account) + path

    def headers(self, key):
        return {"Authorization": "Bearer " + key}

    def catalog_url(self, account=""):
        return self.url("/models", account)

    def catalog(self, doc):
        """A Model for each free chat model of a /models answer.

        Default: the models of `self.models` that the live list confirms, with its context.
        """
        rows = doc.get("data") if isinstance(doc, dict) else None
        live = {}
        for row in rows if isinstance(rows, list) else ():
            if isinstance(row, dict) and isinstance(row.get("id"), str):
                live[row["id"]] = _context_of(row)
        return [m._replace(context=live[m.id] or m.context) for m in self.models if m.id in live]

    def key_check_url(self, account=""):
        """A zero-cost URL that answers 401/403 to a bad key (for `freeride doctor`), or None."""
        return self.catalog_url(account)

    def prepare(self, payload, path):
        """Adjust an outgoing OpenAI request body (already carrying this provider's model)."""
        return payload


def _context_of(row):
    """A model's context window from the field names providers use for it."""
    for field in ("context_length", "context_window", "max_context_length"):
        if isinstance(row.get(field), int):
            return row[field]
    top = row.get("top_provider")
    if isinstance(top, dict) and isinstance(top.get("context_length"), int):
        return top["context_length"]
    lengths = [p.get("context_length") for p in row.get("providers") or ()
               if isinstance(p, dict) and isinstance(p.get("context_length"), int)]
    return max(lengths, default=0)


from providers import cloudflare, demo, groq, huggingface, nvidia, openrouter  # noqa: E402

# Seed order: the default provider order when FREERIDE_PROVIDERS is not set.
REGISTRY = {
    "openrouter": openrouter.OpenRouter,
    "groq": groq.Groq,
    "nvidia": nvidia.Nvidia,
    "cloudflare": cloudflare.Cloudflare,
    "huggingface": huggingface.HuggingFace,
}
DEMO = demo.Demo
