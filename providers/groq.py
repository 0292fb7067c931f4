"""Groq: fast hosted open models; every chat model Groq lists is on the free plan.

Facts (as of 2026-12-06; the live catalog overrules the list below):
* Free plan from 2026-09-21: openai/gpt-oss-120b, openai/gpt-oss-20b and qwen/qwen3.8-27b,
  each 30 requests a minute and 1,000 a day [mnfst/awesome-free-llm-apis data.json,
  lastUpdated 2026-10-05, footnote 2]; qwen/qwen3.8-27b has 8K tokens a minute and 200K a
  day (console table of 2026-09-12) [orbi-build/orbi#776]; the gpt-oss models 8,000 tokens a
  minute on the free plan [zeeyado/koassistant.koplugin#106, 2026-09-03].
* Shut down: llama-3.3-70b-versatile and llama-3.1-8b-instant on 2026-08-16, qwen/qwen3-32b
  and meta-llama/llama-4-scout-17b-16e-instruct on 2026-07-17 [promptfoo/promptfoo PR #9933,
  2026-07-01, from console.groq.com/docs/deprecations], qwen/qwen3.6-27b on 2026-09-14 and
  groq/compound, groq/compound-mini on 2026-09-21 [awesome-free-llm-apis footnote 2,
  accuguide/accuguide#248].
* qwen/qwen3.8-27b: 131,072 tokens of context, text and image input [anomalyco/models.dev
  PR #5740, 2026-08-28, from GET /v1/models].
* A retired id answers 400 `"code":"model_decommissioned"` ("has been decommissioned and is
  no longer supported") [valentinfrlch/ha-llmvision#324, atiilla/sqlmap-ai#3] or 404
  `model_not_found` ("does not exist or you do not have access to it")
  [Luthiraa/julie#3, 2026-09-16, llama-3.3-70b-versatile after its shutdown]: either way the
  model is gone for every key.
* Limits are per organisation and per model (requests and tokens per minute and per day), so
  a 429 cools only that model on that key. Every answer carries x-ratelimit-* headers whose
  reset values are Go durations; daily windows roll, they do not reset at midnight; a request
  bigger than the per-minute token budget answers 413 (console.groq.com/docs/rate-limits,
  shared/providers.md section 2).
"""
from providers import (ALL, CLIENT, CONTEXT, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA,
                       RATE_LIMIT, UPSTREAM, Model, Provider, Rule)


class Groq(Provider):
    name = "groq"
    title = "Groq"
    base_url = "https://api.groq.com/openai/v1"
    key_vars = ("GROQ_API_KEY",)
    signup = "https://console.groq.com/keys"
    models_override_var = "GROQ_FREE_MODELS_OVERRIDE"
    # The free plan's chat models (awesome-free-llm-apis, 2026-10-05), best for agents first.
    models = (
        Model("openai/gpt-oss-120b", 131072),
        Model("qwen/qwen3.8-27b", 131072, vision=True),
        Model("openai/gpt-oss-20b", 131072),
    )
    families = {
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "gpt-oss-20b": "openai/gpt-oss-20b",
    }
    free = ALL  # speech (whisper, orpheus) and guard models fall to NOT_CHAT
    stream_usage = True
    # Every answer reports the requests left today and the tokens left this minute, per model
    # [D: GQ-RL]; 30 requests a minute per model is counted here [O: GQ-LIM].
    quota_headers = (
        ("requests", "day", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
         "x-ratelimit-reset-requests"),
        ("tokens", "minute", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
         "x-ratelimit-reset-tokens"))
    limits = (("requests", "minute", 30),)
    quota_per_model = True
    rules = (
        # Daily caps are rolling windows, not midnight resets: trust the hint, at least a minute.
        Rule(QUOTA, (429,), r"\((?:TPD|RPD)\)|per day", scope=KEY_MODEL, floor=60),
        Rule(QUOTA, (429,), header=("x-ratelimit-remaining-requests", "0"), scope=KEY_MODEL,
             floor=60),
        Rule(RATE_LIMIT, (429,), scope=KEY_MODEL),
        Rule(CONTEXT, (413,), r"Request too large"),
        Rule(CLIENT, (413,)),
        Rule(CONTEXT, (400,), r"context_length_exceeded"),
        Rule(MODEL_NOT_FOUND, (400,), r"model_decommissioned|has been decommissioned",
             scope=MODEL, cooldown=86400),
        Rule(MODEL_NOT_FOUND, (404,), scope=MODEL, cooldown=86400),
        Rule(UPSTREAM, (498,), scope=MODEL, cooldown=20),
    )
