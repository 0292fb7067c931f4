"""The provider contract (api = 1) and the explicit registry.

A provider is a translator, not a client: it declares data about one free-tier upstream
(its base URL, key variables, free models, the spellings of common model families and the
rules that turn its error answers into failover classes) and overrides a hook only where its
API really differs from OpenAI's. Sockets, timeouts, retries, cooldowns, logging and error
rendering live in the gateway core (freeride.py), never here.

Free models come from each provider's live catalog (GET /models, fetched in the background
and cached by the gateway); the module's `models` are the preference order and the offline
fallback, and `free` says as data how to tell a free chat model in that catalog.

Adding a provider: write providers/<name>.py with a `Provider` subclass, add it to `REGISTRY`
below and give it tests/fixtures/providers/<name>.json; tests/test_conformance.py says what is
missing (CONTRIBUTING.md). No directory scanning, so the registry works the same in the zipapp.
"""
import re
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
    calendar reset of a cap that gives no number ("day": 00:00 UTC, "pacific-day": 00:00 in
    US Pacific time, "month"); `floor` is the shortest cooldown allowed.
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


# How a provider's live catalog tells its free chat models (Provider.free).
ALL = "all"         # every chat model it lists (Groq, Mistral's Free mode, local servers)
PRICE = "price"     # `:free` ids and models priced zero (OpenRouter, Kilo, Requesty)
LISTED = "listed"   # only the module's own models, and ids matching `free_ids` (Gemini, HF)

# Ids in a catalog that are not chat models (speech, embeddings, images, safety classifiers).
NOT_CHAT = (r"embed|whisper|tts|speech|transcri|audio|guard|rerank|moderation|-image|imagen"
            r"|veo-|dall-e|flux|stable-diffusion|sdxl|ocr|parakeet|bge-|/e5-|clip|orpheus"
            r"|minilm|paraphrase-")


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
    stream_plain = True      # a plain request goes upstream streamed and is assembled, so a
                             # dead provider shows in seconds; False where a stream cannot
                             # reproduce the plain answer (no usage in streams)
    local = False            # True only for the offline demo: answered by respond()
    free = LISTED            # how the live catalog tells a free chat model (ALL, PRICE, LISTED)
    free_ids = ""            # regex: catalog ids that are free too, whatever `free` says
    paid = ()                # ids never called, even when the catalog lists them
    not_chat = NOT_CHAT      # regex: catalog ids that are not chat models
    keyless = False          # answers with no key: used only when FREERIDE_KEYLESS=1 or when
                             # FREERIDE_PROVIDERS names it (prompts go to a service the user
                             # never signed up with); key_vars, if any, are optional
    send_key = True          # False: never send a key (OVH bills keyed calls)
    local_server = False     # a server on this machine: probed in the background, used only
                             # while it answers GET /models, after every hosted provider
    concurrency = 0          # requests at once per key (0: no limit); more go elsewhere
    quota_headers = ()       # (unit, window, limit header, remaining header, reset header)
                             # rows: what every answer reports of its limits (the ledger);
                             # window "*": a minute or a day, as its reset says
    limits = ()              # (unit, window, count): documented free limits, counted locally
                             # where no header reports them (windows: minute, hour, day, month)
    quota_per_model = False  # True: those limits count per model on a key (Groq, Gemini)
    quota_reset = "day"      # when a daily window resets: "day" (00:00 UTC), "pacific-day"
    embedding_ids = ""       # regex: catalog ids that are embedding models, of a dimension
                             # only their answers tell (local servers: whatever is loaded)

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
        return {"Authorization": "Bearer " + key} if key and self.send_key else {}

    def catalog_url(self, account=""):
        return self.url("/models", account)

    def catalog(self, doc):
        """Every free chat model of a /models answer, in the catalog's order, as Model.

        A hook only where the answer's shape differs: catalog_rows() finds the list,
        catalog_model() reads one row, is_free() applies `free`.
        """
        out = []
        for row in self.catalog_rows(doc):
            model = self.catalog_model(row) if isinstance(row, dict) else None
            if model is None or model.id in self.paid or re.search(self.not_chat, model.id, re.I):
                continue
            if self.is_free(model.id, row):
                out.append(model)
        return out

    def catalog_embeddings(self, doc):
        """{id: 0} for each embedding model a /models answer lists (ids matching
        `embedding_ids`); hosted providers declare theirs, with dimensions, as data."""
        if not self.embedding_ids:
            return {}
        ids = (row.get("id") for row in self.catalog_rows(doc) if isinstance(row, dict))
        return {i: 0 for i in ids if isinstance(i, str) and re.search(self.embedding_ids, i, re.I)}

    def catalog_rows(self, doc):
        rows = doc.get("data") if isinstance(doc, dict) else None
        return rows if isinstance(rows, list) else []

    def catalog_model(self, row):
        """A Model from one catalog row (None: not a usable row); capabilities the row does
        not state come from the module's own entry for that id."""
        model_id = row.get("id")
        if not isinstance(model_id, str) or not model_id.strip():
            return None
        model_id = model_id.strip().removeprefix("models/")
        known = self.model_info(model_id) or Model(model_id)
        # OpenRouter-style rows (OpenRouter, Kilo, Hugging Face) say what goes in and out.
        arch = row.get("architecture") if isinstance(row.get("architecture"), dict) else {}
        if "text" not in (arch.get("output_modalities") or ["text"]):
            return None  # embeddings, images, speech
        params, inputs = row.get("supported_parameters"), arch.get("input_modalities")
        return known._replace(
            context=_context_of(row) or known.context,
            tools="tools" in params if isinstance(params, list) else known.tools,
            vision="image" in inputs if isinstance(inputs, list) else known.vision)

    def is_free(self, model_id, row):
        if self.free_ids and re.search(self.free_ids, model_id):
            return True
        if self.free == ALL:
            return True
        if self.free == PRICE:
            return model_id.endswith(":free") or _priced_zero(row)
        return model_id in self.model_ids

    def usage_url(self, account=""):
        """A zero-cost URL saying what this key's free limits are (read by usage()), or None."""
        return None

    def usage(self, doc):
        """{"unit/window": limit} from a usage_url() answer."""
        return {}

    def key_check_url(self, account=""):
        """A zero-cost URL that answers 401/403 to a bad key (for `freeride doctor`), or None."""
        return self.catalog_url(account)

    def prepare(self, payload, path):
        """Adjust an outgoing OpenAI request body (already carrying this provider's model)."""
        return payload


def _priced_zero(row):
    """True when a catalog row prices both input and output at zero, in the field names
    OpenAI-compatible gateways use (`pricing.prompt`/`completion`, `input`/`output`,
    `input_price`/`output_price`); a missing price is not zero."""
    pricing = row.get("pricing") if isinstance(row.get("pricing"), dict) else row
    for names in (("prompt", "completion"), ("input", "output"), ("input_price", "output_price")):
        values = [pricing.get(n) for n in names]
        if all(v is not None for v in values):
            try:
                return all(float(v) == 0 for v in values)
            except (TypeError, ValueError):
                return False
    return False


def _context_of(row):
    """A model's context window from the field names providers use for it."""
    for field in ("context_length", "context_window", "max_context_length", "max_model_len",
                  "input_token_limit"):
        if isinstance(row.get(field), int):
            return row[field]
    top = row.get("top_provider")
    if isinstance(top, dict) and isinstance(top.get("context_length"), int):
        return top["context_length"]
    lengths = [p.get("context_length") for p in row.get("providers") or ()
               if isinstance(p, dict) and isinstance(p.get("context_length"), int)]
    return max(lengths, default=0)


from providers import (cloudflare, demo, gemini, groq, huggingface, kilo, llamacpp,  # noqa: E402
                       llm7, lmstudio, mistral, nvidia, ollama, openrouter, ovh, requesty, zai)

# The default order when FREERIDE_PROVIDERS is not set (README, "Providers", says why):
# hosted providers with a key, then keyless gateways (only when turned on), then servers on
# this machine, the last resort.
REGISTRY = {
    "openrouter": openrouter.OpenRouter,
    "groq": groq.Groq,
    "gemini": gemini.Gemini,
    "nvidia": nvidia.Nvidia,
    "mistral": mistral.Mistral,
    "cloudflare": cloudflare.Cloudflare,
    "zai": zai.Zai,
    "requesty": requesty.Requesty,
    "huggingface": huggingface.HuggingFace,
    "kilo": kilo.Kilo,
    "llm7": llm7.Llm7,
    "ovh": ovh.Ovh,
    "ollama": ollama.Ollama,
    "llamacpp": llamacpp.LlamaCpp,
    "lmstudio": lmstudio.LmStudio,
}
DEMO = demo.Demo
