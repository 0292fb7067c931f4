"""OpenRouter: one key reaches many free models (`:free` ids and the `openrouter/free` router).

Facts (as of 2026-12-06; the live catalog overrules the list below):
* Free use is capped account-wide across every `:free` model: 20 requests a minute and 50 a
  day, 1,000 a day once $10 of credits were bought; the day is UTC
  [openrouter.ai/docs/guides/routing/model-variants/free; shared/providers.md section 13].
* Free ids named on 2026-10-05: qwen/qwen3.8-27b:free (262K, text+image+video),
  nvidia/nemotron-3-super-120b-a12b:free (262K), nvidia/nemotron-3-ultra-550b-a55b:free (1M),
  google/gemma-4-31b-it:free and google/gemma-4-26b-a4b-it:free (262K, text+image),
  cohere/north-mini-code:free (256K), poolside/laguna-s-2.1:free (262K),
  nvidia/nemotron-3.5-lightning:free (1M) and others [mnfst/awesome-free-llm-apis data.json,
  lastUpdated 2026-10-05]. On 2026-09-08 the catalog held 16 `:free` ids;
  google/gemma-4-31b-it:free answered 429 "temporarily rate-limited upstream"
  (`upstream_provider_shared_pool`) and cohere/north-mini-code:free answered 200
  [orbi-build/orbi#560].
* Gone: openai/gpt-oss-20b:free (withdrawn by 2026-08-22) [brcampidelli/chimera-agent PR #175];
  no source from 2026-09 on names meta-llama/llama-3.3-70b-instruct:free, qwen/qwen3-coder:free
  or openai/gpt-oss-120b:free, so they are left to the live catalog.
* Embeddings: POST /embeddings (OpenAI shape). nvidia/llama-nemotron-embed-vl-1b-v2:free is
  free, 2048 dimensions; its model page shows POST https://openrouter.ai/api/v1/embeddings and
  public clients call it there [openrouter.ai/nvidia/llama-nemotron-embed-vl-1b-v2:free/api, a
  page copy; shared/providers.md section 12]. Embedding rows say
  `"output_modalities": ["embeddings"]` [openrouter.ai/api/v1/embeddings/models, a copy that
  lists a model created 2026-07-16]. Not verified here: that this id is still free today.
* Errors use the OpenAI envelope with the status repeated in `error.code`; a 429 carries
  X-RateLimit-Reset in epoch milliseconds, also inside `error.metadata.headers`
  [openrouter.ai/docs/api/reference/errors-and-debugging; shared/providers.md section 1].
"""
from providers import (AUTH, CLIENT, CONTEXT, KEY, MODEL, MODEL_NOT_FOUND, PRICE, QUOTA,
                       RATE_LIMIT, UPSTREAM, Model, Provider, Rule)


class OpenRouter(Provider):
    name = "openrouter"
    title = "OpenRouter"
    base_url = "https://openrouter.ai/api/v1"
    key_vars = ("OPENROUTER_API_KEY",)
    signup = "https://openrouter.ai/keys"
    models_override_var = "OPENROUTER_FREE_MODELS_OVERRIDE"
    # The router first (it picks a free model that can serve the request), then the free
    # models a coding agent wants most (awesome-free-llm-apis, 2026-10-05).
    models = (
        Model("openrouter/free", 131072, tools=True, vision=True),
        Model("qwen/qwen3.8-27b:free", 262144, vision=True),
        Model("nvidia/nemotron-3-super-120b-a12b:free", 262144),
        Model("nvidia/nemotron-3-ultra-550b-a55b:free", 1048576),
        Model("google/gemma-4-31b-it:free", 262144, vision=True),
        Model("cohere/north-mini-code:free", 256000),
        Model("poolside/laguna-s-2.1:free", 262144),
        Model("google/gemma-4-26b-a4b-it:free", 262144, vision=True),
        Model("nvidia/nemotron-3.5-lightning:free", 1048576),
    )
    families = {
        "gemma": "google/gemma-4-31b-it:free",
    }
    embedding_models = {"nvidia/llama-nemotron-embed-vl-1b-v2:free": 2048}
    free = PRICE
    # X-RateLimit-* report whichever limit is nearer (the minute's, or the day's on a capped
    # key: "*" tells them apart by their reset); 50 free requests a day per account are
    # counted here (1,000 after $10 of credit: FREERIDE_LIMITS) [D: OR-FREE, OR-LIM].
    quota_headers = (("requests", "*", "x-ratelimit-limit", "x-ratelimit-remaining",
                      "x-ratelimit-reset"),)
    limits = (("requests", "minute", 20), ("requests", "day", 50))
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
        """The router first, listed or not, then the free chat models (none: nothing)."""
        router, found = self.models[0], super().catalog(doc)
        return [router] + [m for m in found if m.id != router.id] if found else []

    def usage_url(self, account=""):
        return self.url("/key")

    def usage(self, doc):
        """GET /key's is_free_tier: 50 free requests a day, 1,000 once credit was bought
        [D: OR-FREE; the key object: openrouter.ai/docs/api/api-reference/api-keys]."""
        data = doc.get("data") if isinstance(doc, dict) else None
        free = data.get("is_free_tier") if isinstance(data, dict) else None
        return {"requests/day": 50 if free else 1000} if isinstance(free, bool) else {}

    def key_check_url(self, account=""):
        return self.url("/key")
