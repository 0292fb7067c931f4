"""Cloudflare Workers AI (OpenAI-compatible surface): 10,000 free neurons a day per account.

Facts (as of 2026-12-06):
* 10,000 neurons a day shared by every model, reset at 00:00 UTC; going over fails the request,
  it does not bill [developers.cloudflare.com/workers-ai/platform/pricing/, copy read
  2026-09-20 in api-evangelist/cloudflare; awesome-free-llm-apis data.json 2026-10-05,
  footnote 11]. Every key is an API token paired with its account id.
* Seven models need the Workers Paid plan: @cf/moonshotai/kimi-k2.6, kimi-k2.7-code,
  @cf/zai-org/glm-5.2, glm-5.3, glm-5.3-flash, @cf/deepseek-ai/deepseek-v4-flash-0731 and
  deepseek-v4-pro-0813 [cloudflare/cloudflare-docs PR #32338 (2026-07-27) and PR #33041
  (2026-08-26); awesome-free-llm-apis footnote 11]. The model search marks them with the
  property `require_workers_paid: "true"` [cloudflare/cloudflare-docs PR #32448, 2026-07-31;
  public clients reading it, 2026-09-01]. On the Free plan they answer 403 with code 5035
  ("AiError: Model @cf/moonshotai/kimi-k2.6 is not available on the Workers Free plan ...
  Upgrade to access this model"), a refusal for this account and model, not a bad token
  [cloudflare-docs PR #32338; a public test fixture quoting the body measured 2026-08-26].
* The catalog is GET /accounts/{id}/ai/models/search (v4 envelope; rows `name`, `task.name`,
  `properties` [{property_id, value}] such as context_window, function_calling, vision,
  require_workers_paid); it returns every model (about 65 on 2026-09-28) whatever `per_page`
  says; only "Text Generation" rows are chat models. Free models answering on 2026-09-28:
  @cf/zai-org/glm-4.7-flash, @cf/google/gemma-4-26b-a4b-it, @cf/nvidia/nemotron-3-120b-a12b,
  @cf/qwen/qwen3.8-27b (slow: about 23 tokens a second, long non-streamed answers hit timeout
  code 3046), @cf/meta/llama-3.3-70b-instruct-fp8-fast; @cf/meta/llama-3.1-8b-instruct
  answered 410 / 5028 (deprecated) [a public live-test note dated 2026-09-28]. Other free
  text models: @cf/openai/gpt-oss-120b, @cf/meta/llama-4-scout-17b-16e-instruct,
  @cf/mistralai/mistral-small-3.1-24b-instruct, @cf/deepseek-ai/deepseek-r1-distill-qwen-32b
  [awesome-free-llm-apis 2026-10-05]. Public agent code of 2026 reports gpt-oss-20b/120b
  answering empty content after a tool result and recommends gemma-4-26b-a4b-it for tool use
  (its repositories not identified by the search index): hence gemma first.
* Errors use the Cloudflare v4 envelope, `{"success": false, "errors": [{"code", "message"}]}`
  [developers.cloudflare.com/workers-ai/platform/errors/; shared/providers.md section 4].
"""
from providers import (ALL, AUTH, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT,
                       UPSTREAM, Model, Provider, Rule)


class Cloudflare(Provider):
    name = "cloudflare"
    title = "Cloudflare Workers AI"
    base_url = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1"
    key_vars = ("CLOUDFLARE_API_TOKEN",)
    account_var = "CLOUDFLARE_ACCOUNT_ID"
    signup = "https://dash.cloudflare.com/profile/api-tokens"
    models_override_var = "CLOUDFLARE_FREE_MODELS_OVERRIDE"
    # Curated for tool use, neurons per answer and context (agents want 64K+), best first;
    # 0 = context not stated by a source (the live catalog fills it in).
    models = (
        Model("@cf/google/gemma-4-26b-a4b-it", 256000, vision=True),
        Model("@cf/zai-org/glm-4.7-flash", 131072),
        Model("@cf/nvidia/nemotron-3-120b-a12b", 0),
        Model("@cf/openai/gpt-oss-120b", 128000),
        Model("@cf/qwen/qwen3.8-27b", 0),
        Model("@cf/meta/llama-3.3-70b-instruct-fp8-fast", 24000),
        Model("@cf/meta/llama-4-scout-17b-16e-instruct", 131000, vision=True),
        Model("@cf/openai/gpt-oss-20b", 128000),
        Model("@cf/mistralai/mistral-small-3.1-24b-instruct", 128000, vision=True),
        Model("@cf/deepseek-ai/deepseek-r1-distill-qwen-32b", 80000, tools=False),
    )
    families = {
        "llama-3.3-70b": "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "gpt-oss-120b": "@cf/openai/gpt-oss-120b",
        "gpt-oss-20b": "@cf/openai/gpt-oss-20b",
        "gemma": "@cf/google/gemma-4-26b-a4b-it",
        "deepseek": "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    }
    embedding_models = {"@cf/baai/bge-m3": 1024, "@cf/baai/bge-large-en-v1.5": 1024,
                        "@cf/baai/bge-base-en-v1.5": 768}
    free = ALL
    # Workers Paid only (pricing page, 2026-09): a Free-plan account gets 403 / 5035.
    paid = ("@cf/moonshotai/kimi-k2.6", "@cf/moonshotai/kimi-k2.7-code", "@cf/zai-org/glm-5.2",
            "@cf/zai-org/glm-5.3", "@cf/zai-org/glm-5.3-flash",
            "@cf/deepseek-ai/deepseek-v4-flash-0731", "@cf/deepseek-ai/deepseek-v4-pro-0813")
    rules = (
        Rule(QUOTA, (429,), r"\"code\":\s*(?:3036|4006)\b|daily free allocation|neurons",
             reset="day"),
        Rule(UPSTREAM, (429,), r"\"code\":\s*3040\b|out of capacity|No more data centers",
             scope=MODEL, cooldown=30),
        Rule(RATE_LIMIT, (429,), scope=KEY_MODEL, cooldown=5),
        Rule(AUTH, (404,), r"\"code\":\s*7003\b|Could not route", scope=KEY),
        # Refused to this account, not a bad token: 5035 paid plan only, 5016 licence not
        # accepted, 5018/3041 private model. Before the generic 403 (AUTH).
        Rule(MODEL_NOT_FOUND, (403,), r"\"code\":\s*(?:5035|5016|5018|3041)\b"
             r"|not available on the Workers Free plan", scope=KEY_MODEL, cooldown=86400),
        Rule(MODEL_NOT_FOUND, (400, 404), r"\"code\":\s*(?:5007|3042)\b|No such model"
             r"|invalid model", scope=MODEL, cooldown=86400),
    )

    def catalog_url(self, account=""):
        base = self.url("", account)
        return base[:-3] + "/models/search" if base.endswith("/ai/v1") else base + "/models"

    def catalog_rows(self, doc):
        rows = doc.get("result") if isinstance(doc, dict) else None
        return rows if isinstance(rows, list) else []

    def catalog_model(self, row):
        """A text-generation row of the model search; None for other tasks and for models the
        search marks `require_workers_paid`."""
        task = row.get("task") if isinstance(row.get("task"), dict) else {}
        name = row.get("name")
        if task.get("name") != "Text Generation" or not isinstance(name, str) or not name:
            return None
        listed = row.get("properties") if isinstance(row.get("properties"), list) else []
        props = {p.get("property_id"): str(p.get("value")).lower()
                 for p in listed if isinstance(p, dict)}
        if props.get("require_workers_paid") == "true":
            return None
        known = self.model_info(name) or Model(name, tools=False)
        try:
            context = int(props.get("context_window") or 0)
        except ValueError:
            context = 0
        return Model(name, context or known.context,
                     tools=props["function_calling"] == "true" if "function_calling" in props
                     else known.tools,
                     vision=props["vision"] == "true" if "vision" in props else known.vision)
