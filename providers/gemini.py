"""Google Gemini through AI Studio's OpenAI-compatible endpoint; free tier, no card.

Facts, with their sources (shared/providers.md sections 6, 12, 13 unless named):
- Base `https://generativelanguage.googleapis.com/v1beta/openai`, Bearer key; chat, embeddings
  and /models [D: ai.google.dev/api/compatibility]. /models rows are
  `{"id": "models/gemini-2.5-flash", "object": "model", "owned_by": "google", "display_name"}`
  with no price, window or capability [O: a public database dump, 2026-06-15].
- Free per project and per model (RPM, TPM, RPD; the numbers live only in AI Studio and
  disagree between reports, so none is kept here: each 429 says which window ran out); RPD
  resets at midnight US Pacific [O]. Free on Google's pricing page read 2026-10-22:
  gemini-3.8-flash (launched
  2026-09-02), gemini-3.6-flash, gemini-3.5-flash-lite, gemini-3.1-flash-lite, Gemma 4; not
  gemini-4-argon, *-pro*, 3.7-flash, 3.5-flash, image or video models [O: apidog.com blog
  quoting the page; blockrunai/clawrouter v0.12.296; iBUHub/AIStudioToAPI PR #257].
  gemini-2.5-pro and gemini-2.5-flash shut down 2026-12-01 and are re-routed and billed at
  the substitute's rate; gemini-2.5-flash-lite stays [D: Google's deprecations page, copy
  read 2026-11-10]; it is missing from the 2026-10-22 free column, so it is kept last.
- Errors come as a JSON array around Google's error object [O: n4ze3m/page-assist#406]. 429
  RESOURCE_EXHAUSTED carries QuotaFailure (quotaId ...PerDay... or ...PerMinute...) and
  RetryInfo.retryDelay [O: google-gemini/gemini-cli#8437, RooCodeInc/Roo-Code#3883]; a model
  outside this key's free tier answers the same 429 with "limit: 0" [O: public client
  fixtures, 2025-12 to 2026-09]. Bad key: 400 API_KEY_INVALID, not 401; region refused: 400
  FAILED_PRECONDITION "User location is not supported" [O]; context: 400 "The input token
  count (N) exceeds the maximum" [O: gemini-cli#6678]; 404 NOT_FOUND [O: wwardaww/
  gnome-gemini-ai#21]; 503 UNAVAILABLE "overloaded" [O: gemini-cli#5191].
- Streams carry usage on the final chunk even without stream_options, and stream_options is
  accepted [O: discuss.ai.google.dev thread 92785; public client code sending it].
- Windows: 1,048,576 for the Flash models [O: litellm-rs gemini_shared.rs; Vercel model
  pages], 262,144 with tools and vision for Gemma 4 31B [O: Vercel AI Gateway page;
  google-gemma/cookbook#307]. Whether AI Studio enables tools for Gemma 4 is unverified; it
  refused them for Gemma 3 with a 400 "Function calling is not enabled" [O: BerriAI/litellm
  #10313], which moves such a request on to the next candidate.
  Embeddings: gemini-embedding-001, 3072 dimensions. gemini-2.5-flash-lite goes last (see
  above); Gemma has the largest daily allowance, so it comes before it.
- /models needs a key; a bad one answers 400 API_KEY_INVALID there too, not 401/403 [I].
"""
from providers import (AUTH, CONTEXT, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT,
                       UPSTREAM, Model, Provider, Rule)


class Gemini(Provider):
    name = "gemini"
    title = "Google Gemini"
    base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
    key_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    signup = "https://aistudio.google.com/apikey"
    models_override_var = "GEMINI_FREE_MODELS_OVERRIDE"
    models = (
        Model("gemini-3.8-flash", 1048576, vision=True),
        Model("gemini-3.6-flash", 1048576, vision=True),
        Model("gemini-3.5-flash-lite", 1048576, vision=True),
        Model("gemini-3.1-flash-lite", 1048576, vision=True),
        Model("gemma-4-31b-it", 262144, vision=True),
        Model("gemma-4-26b-a4b-it", 262144, vision=True),
        Model("gemini-2.5-flash-lite", 1048576, vision=True),
    )
    families = {"gemma": "gemma-4-31b-it"}
    embedding_models = {"gemini-embedding-001": 3072}
    # Future plain Flash / Flash-Lite and Gemma 4+ instruct ids: a wrong guess costs one
    # 429 "limit: 0" per key, after which that model is skipped on that key for a day.
    free_ids = r"^gemini-\d+(?:\.\d+)?-flash(?:-lite)?$|^gemma-(?:[4-9]|\d\d)-[\w.-]+-it$"
    paid = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3.5-flash", "gemini-3.7-flash")
    quota_per_model = True  # RPD per project and model; Google publishes no numbers any more
    quota_reset = "pacific-day"
    stream_usage = True
    rules = (
        # Not free for this key at all: skip the model here, the key itself is fine.
        # Must precede the per-day rule: these bodies name a PerDay quota too.
        Rule(MODEL_NOT_FOUND, (429,), r'limit: 0(?!\d)|"quotaValue":\s*"0"', scope=KEY_MODEL,
             cooldown=86400),
        Rule(QUOTA, (429,), r"PerDay", scope=KEY_MODEL, reset="pacific-day"),
        Rule(RATE_LIMIT, (429,), scope=KEY_MODEL, cooldown=30),
        Rule(AUTH, (400,), r"API_KEY_INVALID|API key not valid|API key expired"
             r"|location is not supported", scope=KEY),
        Rule(CONTEXT, (400,), r"input token count.*exceeds the maximum"),
        # A tool request to a model Google serves without function calling: try another.
        Rule(MODEL_NOT_FOUND, (400,), r"Function calling is not enabled", scope=MODEL,
             cooldown=3600),
        Rule(MODEL_NOT_FOUND, (404,), scope=MODEL, cooldown=86400),
        Rule(UPSTREAM, (503,), scope=MODEL, cooldown=20),
    )
