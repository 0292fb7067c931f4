"""Mistral La Plateforme in Free mode: the default for new accounts, no card.

Facts, with their sources (shared/providers.md sections 8, 12, 13 unless named):
- Free mode: about $10 of API credits a month shared with the studio and Mistral's CLI,
  about 1 request a second, 500,000 tokens a minute; prompts may be used for training unless
  the user opts out [D: help.mistral.ai 225174, docs.mistral.ai tier page; O: awesome-free-
  llm-apis PR #100]. Around 2026-10-11 users reported 429s on Free-mode keys and asked whether
  the free API tier was gone; unconfirmed, the docs still described Free mode [O: OmniRoute
  discussion #16252]. If it goes, keys answer 401/403 (AUTH: the key cools, the request moves
  to the next provider) or 429s (RATE_LIMIT, likewise moved on), never a client error.
- GET /v1/models rows carry `capabilities` {completion_chat, function_calling, vision, ...},
  `max_context_length`, `aliases`, `deprecation` [O: PipedreamHQ/pipedream test event,
  simonw/llm-mistral#23]. A Free-mode key listed, 2026-09-20, mistral-medium-3-5,
  magistral-medium-latest, mistral-small-2603, ministral-{14b,8b,3b}-2512 and no large model;
  its Z.ai GLM rows answered 403 tier_not_allowed [O: vava-nessa/free-coding-models
  v0.5.93]; mistral-large-* answers the same 403 on free keys [O: public client code,
  2026-08-29 and 2026-09-05]. codestral-2508 is served on the same key [O: public configs].
- Errors: 429 `{"object":"error","message":"Rate limit exceeded","type":"rate_limited",
  "code":"1300"}` [O: raycast/extensions#31107] (older: `{"message":"Requests rate limit
  exceeded"}` [O: dnakov/anon-kode#53]); 429 "Service tier capacity exceeded for this model"
  (code 3505 in newer bodies) [O: continuedev/continue#6185]; monthly tokens gone: wording
  unknown, `x-ratelimit-remaining-tokens-month: 0` [O: mistralai/client-ts#169 for the header
  family; public fixtures]; 403 "This model is not available in your subscription tier",
  type tier_not_allowed, code 1910 [O: public client tests, 2026-08-29]; 400 invalid_model,
  code 1500 [O: a public capture log, 2026-10-04]; 401 `{"message":"Unauthorized"}` or
  `{"detail":"Unauthorized"}` [O: coolcline/CoolCline#36, nextcloud/integration_openai#332];
  context: 400 "Prompt contains N tokens, too large for model with M maximum context length"
  [D: docs.mistral.ai known limitations, quoted in public code].
- stream_options was rejected in one report [O: dnakov/anon-kode#53] and accepted in the
  2026-10-04 capture, where usage rode on the finish chunk anyway: it is stripped, at no loss.
- Windows from the catalog; offline: 262,144 with vision and tools for medium 3.5, small 2603
  and the Ministral 3 family [O: openclaw docs; public notes]. Order: medium 3.5 first (the
  agentic coding model), magistral after the faster small and codestral (it reasons at
  length). Embeddings: mistral-embed, 1024 dimensions.
"""
import re

from providers import (ALL, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT, UPSTREAM,
                       Model, Provider, Rule)

# Listed on free keys but answering 403 tier_not_allowed there (see above).
PAID_ONLY = r"^zai-|^mistral-large"


class Mistral(Provider):
    name = "mistral"
    title = "Mistral"
    base_url = "https://api.mistral.ai/v1"
    key_vars = ("MISTRAL_API_KEY",)
    signup = "https://console.mistral.ai/api-keys"
    models_override_var = "MISTRAL_FREE_MODELS_OVERRIDE"
    models = (
        Model("mistral-medium-3-5", 262144, vision=True),
        Model("mistral-small-2603", 262144, vision=True),
        Model("codestral-2508", 262144),
        Model("magistral-medium-latest", 131072, vision=True),
        Model("ministral-14b-2512", 262144, vision=True),
        Model("ministral-8b-2512", 262144, vision=True),
        Model("ministral-3b-2512", 262144, vision=True),
    )
    embedding_models = {"mistral-embed": 1024}
    free = ALL
    # Minute and month figures on every answer [O: mistralai/client-ts#169].
    quota_headers = (
        ("requests", "minute", "x-ratelimit-limit-req-minute", "x-ratelimit-remaining-req-minute",
         ""),
        ("tokens", "minute", "x-ratelimit-limit-tokens-minute",
         "x-ratelimit-remaining-tokens-minute", ""),
        ("tokens", "month", "x-ratelimit-limit-tokens-month", "x-ratelimit-remaining-tokens-month",
         ""))
    stream_usage = False
    rules = (
        Rule(UPSTREAM, (429,), r"Service tier capacity exceeded|\"3505\"", scope=MODEL,
             cooldown=30),
        Rule(QUOTA, (429,), header=("x-ratelimit-remaining-tokens-month", "0"), reset="month"),
        Rule(QUOTA, (429,), r"month", reset="month"),
        Rule(RATE_LIMIT, (429,), scope=KEY, cooldown=2),
        # The key is fine; this model is paid-only for it.
        Rule(MODEL_NOT_FOUND, (403,), r"tier_not_allowed|subscription tier|\"1910\"",
             scope=KEY_MODEL, cooldown=86400),
        Rule(MODEL_NOT_FOUND, (400, 404), r"Invalid model|invalid_model|\"1500\"", scope=MODEL,
             cooldown=86400),
    )

    def catalog_model(self, row):
        """Chat rows only, with tools and vision as the row's capabilities state them."""
        caps = row.get("capabilities") if isinstance(row.get("capabilities"), dict) else {}
        model = super().catalog_model(row)
        if model is None or not caps.get("completion_chat") or re.search(PAID_ONLY, model.id):
            return None
        return model._replace(tools=bool(caps.get("function_calling")),
                              vision=bool(caps.get("vision")))

    def prepare(self, payload, path):
        return {k: v for k, v in payload.items() if k != "stream_options"}
