"""Cloudflare Workers AI (OpenAI-compatible surface): 10,000 free neurons a day per account,
reset at 00:00 UTC. Every key is an API token paired with its account id. Errors use the
Cloudflare v4 envelope, `{"success": false, "errors": [{"code", "message"}]}`.
"""
from providers import (AUTH, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT, UPSTREAM,
                       Model, Provider, Rule)


class Cloudflare(Provider):
    name = "cloudflare"
    title = "Cloudflare Workers AI"
    base_url = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1"
    key_vars = ("CLOUDFLARE_API_TOKEN",)
    account_var = "CLOUDFLARE_ACCOUNT_ID"
    signup = "https://dash.cloudflare.com/profile/api-tokens"
    models_override_var = "CLOUDFLARE_FREE_MODELS_OVERRIDE"
    # Curated for neurons per answer and context (agents want 64K+): the default comes first.
    models = (
        Model("@cf/openai/gpt-oss-120b", 128000),
        Model("@cf/meta/llama-3.3-70b-instruct-fp8-fast", 24000),
        Model("@cf/openai/gpt-oss-20b", 128000),
        Model("@cf/qwen/qwen2.5-coder-32b-instruct", 32768),
        Model("@cf/meta/llama-4-scout-17b-16e-instruct", 131000, vision=True),
        Model("@cf/google/gemma-3-12b-it", 80000, tools=False, vision=True),
        Model("@cf/deepseek-ai/deepseek-r1-distill-qwen-32b", 80000, tools=False),
        Model("@cf/meta/llama-3.1-8b-instruct-fast", 128000),
    )
    families = {
        "llama-3.3-70b": "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "llama-3.1-8b": "@cf/meta/llama-3.1-8b-instruct-fast",
        "gpt-oss-120b": "@cf/openai/gpt-oss-120b",
        "gpt-oss-20b": "@cf/openai/gpt-oss-20b",
        "qwen-coder": "@cf/qwen/qwen2.5-coder-32b-instruct",
        "gemma": "@cf/google/gemma-3-12b-it",
        "deepseek": "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    }
    embedding_models = {"@cf/baai/bge-m3": 1024, "@cf/baai/bge-large-en-v1.5": 1024,
                        "@cf/baai/bge-base-en-v1.5": 768}
    rules = (
        Rule(QUOTA, (429,), r"\"code\":\s*(?:3036|4006)\b|daily free allocation|neurons",
             reset="day"),
        Rule(UPSTREAM, (429,), r"\"code\":\s*3040\b|out of capacity|No more data centers",
             scope=MODEL, cooldown=30),
        Rule(RATE_LIMIT, (429,), scope=KEY_MODEL, cooldown=5),
        Rule(AUTH, (404,), r"\"code\":\s*7003\b|Could not route", scope=KEY),
        Rule(MODEL_NOT_FOUND, (403,), r"\"code\":\s*(?:5016|5018|3041)\b", scope=KEY_MODEL,
             cooldown=86400),
        Rule(MODEL_NOT_FOUND, (400, 404), r"\"code\":\s*(?:5007|3042)\b|No such model"
             r"|invalid model", scope=MODEL, cooldown=86400),
    )

    def catalog_url(self, account=""):
        base = self.url("", account)
        return base[:-3] + "/models/search" if base.endswith("/ai/v1") else base + "/models"

    def catalog(self, doc):
        """The allowlisted models the account's model search confirms (v4 envelope)."""
        rows = doc.get("result") if isinstance(doc, dict) else None
        live = {}
        for row in rows if isinstance(rows, list) else ():
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                props = {p.get("property_id"): p.get("value") for p in row.get("properties") or ()
                         if isinstance(p, dict)}
                try:
                    live[row["name"]] = int(props.get("context_window") or 0)
                except (TypeError, ValueError):
                    live[row["name"]] = 0
        return [m._replace(context=live[m.id] or m.context) for m in self.models if m.id in live]
