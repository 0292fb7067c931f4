"""Requesty: an OpenAI-compatible router whose free plan (no card) serves the models it
prices at zero, 200 requests a day in total across them.

Facts, with their sources (shared/providers.md section 13 unless named):
- Base `https://router.requesty.ai/v1`, key from app.requesty.ai/api-keys; 200 requests a day
  across the free models, account-wide [O: diegosouzapw/OmniRoute#6120, 2026-07-03; the
  APIs.io profile of Requesty's limits]. When the day resets is not stated anywhere found:
  00:00 UTC is assumed [I]. Answered live 2026-09-25: the NVIDIA Nemotron ids below,
  google/gemma-4-31b-it and nvidia/muse-glimmer-30b (and mistral/leanstral-1-5, deprecated
  upstream on 2026-09-29, left out); NVIDIA-hosted models may train on prompts [O: awesome-
  free-llm-apis data.json 2026-10-05, footnote 14].
- GET /v1/models answers without a key; its rows are flat: `input_price`, `output_price`
  (USD per token), `caching_price`, `cached_price`, `context_window`, `max_output_tokens`,
  `supports_tool_calling`, `supports_vision`, `supports_reasoning` [O: cline/cline
  getRequestyModels; public clients filtering on supports_tool_calling]. Free = both prices
  zero (the shared price reader covers `input_price`/`output_price`).
- Errors are `{"error": {"origin": "router"|"provider", "message": ...}}`
  [D: docs.requesty.ai/features/error-codes]: 401 "Unauthorized" (no key); 403 "Invalid
  authorization token", "Your account has been restricted", "Provider blocked by policy"
  (the model is not on the key's list);
  402 "Insufficient balance" (reaching a priced model on a free account); 404 "Provider
  and/or model not supported"; 412 monthly spend limit of the key; 429 origin provider "Too
  many requests" (the upstream host of that model); 424 invalid or usage-less provider
  answer, 502, 503: transient. The free plan's daily-cap 429 was not found in any source: its
  wording below is a guess [I].
- stream_options support is not documented; usage is reported per answer [I], so it is not
  requested.
"""
from providers import (KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, PRICE, QUOTA, RATE_LIMIT, UPSTREAM,
                       Model, Provider, Rule)


class Requesty(Provider):
    name = "requesty"
    title = "Requesty"
    base_url = "https://router.requesty.ai/v1"
    key_vars = ("REQUESTY_API_KEY",)
    signup = "https://app.requesty.ai/api-keys"
    models_override_var = "REQUESTY_FREE_MODELS_OVERRIDE"
    models = (
        Model("nvidia/nemotron-3-ultra-550b-a55b", 1000000),
        Model("nvidia/nemotron-3-super-120b-a12b", 1000000),
        Model("google/gemma-4-31b-it", 262144, vision=True),
        Model("nvidia/nemotron-3.5-lightning-30b-a3b"),
        Model("nvidia/nemotron-3-nano-omni-30b-a3b-reasoning", vision=True),
        Model("nvidia/muse-glimmer-30b", tools=False),
    )
    families = {"gemma": "google/gemma-4-31b-it"}
    free = PRICE
    paid = ("mistral/leanstral-1-5",)  # priced zero but deprecated upstream
    limits = (("requests", "day", 200),)  # in all, across the free models (AFL-1005 note 14)
    rules = (
        Rule(QUOTA, (429,), r"daily|per day|a day|free (?:tier|plan|model)", scope=KEY,
             reset="day"),
        Rule(RATE_LIMIT, (429,), r'"origin":\s*"provider"', scope=MODEL, cooldown=20),
        Rule(RATE_LIMIT, (429,), scope=KEY, cooldown=60),
        # Only zero-priced models are called: a balance or policy refusal means this model
        # is not free (or not allowed) for this key, not that the key is bad.
        Rule(MODEL_NOT_FOUND, (402,), scope=KEY_MODEL, cooldown=86400),
        Rule(MODEL_NOT_FOUND, (403,), r"blocked by policy", scope=KEY_MODEL, cooldown=86400),
        Rule(QUOTA, (412,), scope=KEY, reset="month"),
        Rule(MODEL_NOT_FOUND, (400, 404), r"model not supported|model not found|unknown model"
             r"|invalid model", scope=MODEL, cooldown=86400),
        Rule(UPSTREAM, (424,), scope=MODEL, cooldown=20),
    )

    def catalog_model(self, row):
        """Tools and vision as the row states them; embedding rows are not chat models."""
        model = super().catalog_model(row)
        if model is None or row.get("api") not in (None, "chat"):
            return None
        tools, vision = row.get("supports_tool_calling"), row.get("supports_vision")
        return model._replace(tools=tools if isinstance(tools, bool) else model.tools,
                              vision=vision if isinstance(vision, bool) else model.vision)

    def key_check_url(self, account=""):
        return None  # /v1/models answers without a key; no other free call is documented
