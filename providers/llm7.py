"""LLM7.io: an OpenAI-compatible gateway whose `turbo` models answer with no key, or with a
free token from token.llm7.io for higher limits.

Keyless, so used only when FREERIDE_KEYLESS=1 or FREERIDE_PROVIDERS names it: prompts go to a
one-person service the user never signed up with, whose terms say it "may collect anonymous
user data for research" that "could be used to train more efficient models", and ask users
not to share private details [O: chigwell/llm7.io TERMS.md, section 6, 2025-04-16].

Facts, with their sources (shared/providers.md sections 12 and 13 unless named):
- Base `https://api.llm7.io/v1`, optional Bearer token (LLM7_API_KEY).
- Limits per IP (anonymous) or per token: anonymous 1 RPS, 10 RPM, 60 an hour, 500,000 tokens
  a day (last stated 2026-09-06; by 2026-10-05 the docs no longer state anonymous limits,
  anonymous use last confirmed 2026-08-21); free token 1 RPS, 60 RPM, 250 an hour, 100,000
  tokens per 24 hours, "may be reduced without notice" [O: awesome-free-llm-apis data.json
  2026-09-06 and 2026-10-05, footnote 10; docs.llm7.io/limits]. At 1 request a second a 429
  is usually over in seconds: the whole key (or IP) cools briefly unless the answer says
  otherwise. No wording of the daily token cap was found: a 429 that speaks of a day is taken
  for it and cools the key until 00:00 UTC, though the window may roll over 24 hours [I].
- GET /v1/models: `{"object": "list", "data": [{id, object, created, owned_by, tier,
  pricing{input, output, currency, unit, ...}, pricing_mode, modalities{input, output},
  context_window{tokens, chars}, usage_based_only, stream, json_mode, reasoning,
  tools_calling}]}`; `turbo` models serve anonymous and free-token callers, `pro` ones a paid
  plan or balance (`usage_based_only`: paid accounting only). The catalog rotates often: it
  is the truth; selectors `default`, `fast`, `pro` are accepted as model ids
  [D: docs.llm7.io/guides/models-api]. Turbo models on 2026-10-05: gpt-oss:20b,
  mistral-Nemo-Instruct-2407, minimax-m2.7, DeepSeek-V4-Flash-0731 [O: data.json footnote 10].
- Error bodies: none was found in any public source. The rules below key on status only; the
  fixture's bodies assume the OpenAI envelope [I].
- stream_options support is not documented [I]: usage is not requested.
"""
from providers import ALL, KEY, QUOTA, RATE_LIMIT, Model, Provider, Rule


class Llm7(Provider):
    name = "llm7"
    title = "LLM7.io"
    base_url = "https://api.llm7.io/v1"
    key_vars = ("LLM7_API_KEY",)
    signup = "https://token.llm7.io"
    models_override_var = "LLM7_FREE_MODELS_OVERRIDE"
    models = (
        Model("DeepSeek-V4-Flash-0731", 400000),
        Model("minimax-m2.7", 180000),
        Model("gpt-oss:20b", 128000),
        Model("mistral-Nemo-Instruct-2407", 128000),
        Model("default"),  # LLM7's own pick among the turbo models, whatever the rotation
    )
    families = {"gpt-oss-20b": "gpt-oss:20b", "deepseek": "DeepSeek-V4-Flash-0731"}
    keyless = True
    free = ALL  # every turbo model (is_free below)
    limits = (("requests", "minute", 10), ("requests", "hour", 60))  # anonymous, per IP
    rules = (
        # The daily token cap's wording is unknown [I]: any 429 that speaks of a day or 24 h.
        Rule(QUOTA, (429,), r"daily|per day|a day|24 ?h", scope=KEY, reset="day"),
        Rule(RATE_LIMIT, (429,), scope=KEY, cooldown=10),
    )

    def catalog(self, doc):
        """The catalog's turbo models, then the `default` selector, which no row lists."""
        listed = super().catalog(doc)
        if not listed:
            return listed  # no turbo model listed: `default` would have nothing to pick
        ids = {m.id for m in listed}
        return listed + [m for m in self.models if m.id == "default" and m.id not in ids]

    def catalog_model(self, row):
        """Window, tools and images as LLM7's rows state them."""
        model = super().catalog_model(row)
        if model is None:
            return None
        window, modalities = row.get("context_window"), row.get("modalities")
        if isinstance(window, dict) and isinstance(window.get("tokens"), int):
            model = model._replace(context=window["tokens"])
        if isinstance(row.get("tools_calling"), bool):
            model = model._replace(tools=row["tools_calling"])
        if isinstance(modalities, dict) and isinstance(modalities.get("input"), list):
            model = model._replace(vision="image" in modalities["input"])
        return model

    def is_free(self, model_id, row):
        """`pro` models and paid-accounting ones need a plan or a balance."""
        return row.get("tier", "turbo") != "pro" and row.get("usage_based_only") is not True

    def key_check_url(self, account=""):
        return None  # /v1/models answers without a token; no other free call is documented
