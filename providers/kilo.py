"""Kilo Gateway: an OpenAI-compatible gateway (mostly in front of OpenRouter) whose free models
answer with no key at all, 200 requests an hour per IP address.

Keyless, so used only when FREERIDE_KEYLESS=1 or FREERIDE_PROVIDERS names it: prompts go to a
service the user never signed up with, and several of its free models log them. Kilo Auto
Free's own description warns that prompts "may be logged by the upstream provider and used to
improve their services"; the NVIDIA free endpoints say "Trial use only - do not submit
personal or confidential data. Your use is logged for security purposes and to improve NVIDIA
products and services"; Kilo's own free models require data collection (a request opting out
is refused with 400 data_collection_required) and partner experiments copy prompts for
evaluation; every request is classified for abuse with its IP address.

Facts, with their sources (shared/providers.md sections 12 and 13 unless named):
- Base `https://api.kilo.ai/api/gateway`; GET /models needs no key [D: kilo.ai/docs/gateway/
  models-and-providers]. Rows are OpenRouter's (`pricing.prompt`/`completion` strings,
  `context_length`, `architecture.input_modalities`, `supported_parameters`) plus Kilo's own
  free models priced "0.0000000" and the `kilo-auto/*` routers [O: Kilo-Org/cloud src/lib/
  providers/openrouter/index.ts, kilo-free-model.ts, 2026-02; auto-model.ts]. Free = a `:free`
  id or a zero price: `inclusionai/ling-3.1-flash` is priced $0 with no suffix; `kilo-auto/free`
  and `openrouter/free` are routers priced $0 [O: awesome-free-llm-apis data.json 2026-10-05,
  footnote 5]. The catalog lags what is served (models absent from it still answered probes,
  same footnote), so this module's own models the catalog does not mention stay offered.
- Limits: Kilo's own free models and kilo-auto/free: 200 requests per sliding hour per IP,
  anonymous or not; a refused request is not counted. Anonymous callers also have 10,000
  requests per 24 h per IP ("promotion" limit), answered 401 (not 429)
  PROMOTION_MODEL_LIMIT_REACHED [O: Kilo-Org/cloud src/lib/constants.ts,
  free-model-rate-limiter.ts, app/api/openrouter/[...path]/route.ts]. `:free` ids proxied to
  OpenRouter carry OpenRouter's upstream 429s through unchanged, minus their headers (only
  date, content-type and request-id are copied) [O: same, llm-proxy-helpers.ts].
- On 2026-09-20 every request, free, paid or BYOK, got 429 for about an hour [O: Kilo-Org/
  kilocode#14336, Kilo-Org/cloud#6436]: a Kilo 429 may be gateway-wide, so it cools the key,
  and with no key there is one anonymous key: the whole provider.
- Gateway errors are `{"error": <string>, "error_type": ..., "message": ...}` (or `"error":
  {"code", "message"}` for the 401s): 429 rate_limit_exceeded "Free model usage limit
  reached"; 401 PAID_MODEL_AUTH_REQUIRED (a paid model without a key); 402
  usage_limit_exceeded (a paid model, no credits); 403 feature_exclusive_model; 404
  model_not_found and discontinued_free_model ("The free period of this model ended");
  503 no_free_models_available (kilo-auto/free) and temporarily_unavailable; a context
  overflow keeps its status (400, or a generic 500) and gains error_type
  context_length_exceeded [O: Kilo-Org/cloud llm-proxy-helpers.ts, context-overflow.ts,
  2026]. A wrong KILO_API_KEY on a free model is not refused: the request runs anonymously.
- Streams: Kilo adds stream_options.include_usage itself [O: route.ts].
"""
from providers import (CONTEXT, KEY, MODEL, MODEL_NOT_FOUND, PRICE, QUOTA, RATE_LIMIT, UPSTREAM,
                       Model, Provider, Rule)


class Kilo(Provider):
    name = "kilo"
    title = "Kilo Gateway"
    base_url = "https://api.kilo.ai/api/gateway"
    key_vars = ("KILO_API_KEY",)
    signup = "https://app.kilo.ai"
    models_override_var = "KILO_FREE_MODELS_OVERRIDE"
    # Coding first: strong tool-using models with long windows, then the routers, which pick
    # an unknown model and cap the answer (kilo-auto/free: 32K tokens).
    models = (
        Model("qwen/qwen3.8-27b:free", 262144, vision=True),
        Model("nvidia/nemotron-3-ultra-550b-a55b:free", 1000000),
        Model("stepfun/step-3.7-flash:free", 262144, vision=True),
        Model("tencent/hy3:free", 262144),
        Model("poolside/laguna-s-2.1:free", 262144),
        Model("cohere/north-mini-code:free", 256000),
        Model("nvidia/nemotron-3-super-120b-a12b:free", 262144),
        Model("inclusionai/ling-3.1-flash", 262144),
        Model("kilo-auto/free", 256000),
        Model("openrouter/free"),
    )
    keyless = True
    free = PRICE
    limits = (("requests", "hour", 200),)  # per IP, free models (AFL-1005 footnote 5)
    stream_usage = True
    rules = (
        Rule(CONTEXT, (), r"context_length_exceeded|maximum context length"),
        # Kilo's per-IP sliding hour: a refused request does not count, so a retry after a few
        # minutes costs nothing and finds the first freed slot.
        Rule(RATE_LIMIT, (429,), r'Free model usage limit|"error_type":\s*"rate_limit_exceeded"',
             scope=KEY, cooldown=300),
        Rule(RATE_LIMIT, (429,), scope=KEY, cooldown=60),  # upstream, or the gateway itself
        Rule(QUOTA, (401,), r"PROMOTION_MODEL_LIMIT_REACHED|promotion_limit_reached", scope=KEY,
             cooldown=3600),
        # Priced, or reserved for Kilo's own products: not free here, whatever the key.
        Rule(MODEL_NOT_FOUND, (401, 402), r"PAID_MODEL_AUTH_REQUIRED|usage_limit_exceeded",
             scope=MODEL),
        Rule(MODEL_NOT_FOUND, (403,), r"feature_exclusive_model", scope=MODEL),
        Rule(MODEL_NOT_FOUND, (400,), r"data_collection_required", scope=MODEL),
        Rule(UPSTREAM, (503,), r"no_free_models_available", scope=MODEL, cooldown=60),
    )

    def catalog(self, doc):
        """The catalog's free models, then this module's models it does not mention at all
        (it lags what is served; one a row prices is not free and stays out)."""
        listed = super().catalog(doc)
        rows = {row.get("id") for row in self.catalog_rows(doc) if isinstance(row, dict)}
        if not any(isinstance(i, str) for i in rows):
            return listed  # not a catalog at all: nothing is known
        return listed + [m for m in self.models if m.id not in rows]

    def key_check_url(self, account=""):
        # The gateway's /models ignores keys and a bad key on a free model runs anonymously;
        # the profile balance answers 401 to a bad key [O: Kilo-Org/cloud api/profile/balance].
        return self.base_url.removesuffix("/gateway") + "/profile/balance"
