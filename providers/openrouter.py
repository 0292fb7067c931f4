"""OpenRouter: one key reaches many free models (`:free` ids and the `openrouter/free` router).

Free use is capped account-wide: about 20 requests a minute and 50 (or 1000) a day, reset at
00:00 UTC. Errors use the OpenAI envelope with the status repeated in `error.code`.
"""
from providers import (_context_of, AUTH, CLIENT, CONTEXT, KEY, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT,
                       UPSTREAM, Model, Provider, Rule)


class OpenRouter(Provider):
    name = "openrouter"
    title = "OpenRouter"
    base_url = "https://openrouter.ai/api/v1"
    key_vars = ("OPENROUTER_API_KEY",)
    signup = "https://openrouter.ai/keys"
    models = (
        Model("openrouter/free", 131072, tools=True, vision=True),
        Model("meta-llama/llama-3.3-70b-instruct:free", 131072),
        Model("openai/gpt-oss-120b:free", 131072),
        Model("openai/gpt-oss-20b:free", 131072),
        Model("qwen/qwen3-coder:free", 262144),
        Model("google/gemma-3-27b-it:free", 131072, tools=False, vision=True),
        Model("deepseek/deepseek-chat-v3-0324:free", 163840),
    )
    families = {
        "llama-3.3-70b": "meta-llama/llama-3.3-70b-instruct:free",
        "gpt-oss-120b": "openai/gpt-oss-120b:free",
        "gpt-oss-20b": "openai/gpt-oss-20b:free",
        "qwen-coder": "qwen/qwen3-coder:free",
        "gemma": "google/gemma-3-27b-it:free",
        "deepseek": "deepseek/deepseek-chat-v3-0324:free",
    }
    rules = (
        Rule(QUOTA, (429,), r"free-models-per-day|openrouter_free_tier_daily", reset="day"),
        Rule(RATE_LIMIT, (429,), r"free-models-per-min"),
        Rule(RATE_LIMIT, (429,), r"rate-limited upstream|upstream_provider_shared_pool"
             r"|Provider returned error", scope=MODEL, cooldown=20),
        Rule(QUOTA, (402,), cooldown=3600),
        Rule(MODEL_NOT_FOUND, (400,), r"is not a valid model ID", scope=MODEL, cooldown=86400),
        Rule(MODEL_NOT_FOUND, (404,), r"No endpoints found", scope=MODEL, cooldown=3600),
        Rule(CONTEXT, (400, 502), r"maximum context length|middle-out|reduce the length"),
        Rule(CLIENT, (403,), r"flagged_input|\"reasons\""),
        Rule(UPSTREAM, (408, 503), scope=MODEL, cooldown=30),
        Rule(AUTH, (401,), scope=KEY, cooldown=3600),
    )

    stream_usage = True

    def serves(self, model):
        return model in self.model_ids or model.endswith(":free")

    def catalog(self, doc):
        """Free models only: a `:free` id, or both prices the string "0"."""
        out = [self.models[0]]
        for row in doc.get("data") or () if isinstance(doc, dict) else ():
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                continue
            pricing = row.get("pricing") if isinstance(row.get("pricing"), dict) else {}
            free = row["id"].endswith(":free") or (
                str(pricing.get("prompt")) == "0" and str(pricing.get("completion")) == "0")
            if free and row["id"] != "openrouter/free":
                arch = row.get("architecture") if isinstance(row.get("architecture"), dict) else {}
                out.append(Model(row["id"], _context_of(row),
                                 tools="tools" in (row.get("supported_parameters") or ()),
                                 vision="image" in (arch.get("input_modalities") or ())))
        return out

    def key_check_url(self, account=""):
        return self.url("/key")
