"""Hugging Face Inference Providers router: every model draws on a small monthly credit.

Facts (as of 2026-12-06):
* Free users get $0.10 of Inference Providers credits a month ("subject to change"); running
  out answers 402 until the credits renew [huggingface/hub-docs, docs/inference-providers/
  pricing.md at 2026-08-21; shared/providers.md sections 5 and 13]. With $0.10 a month, cheap
  fast models come first.
* Router ids with a provider serving chat on 2026-08-21: openai/gpt-oss-120b (Cerebras),
  openai/gpt-oss-20b (Groq, OVHcloud), zai-org/GLM-5.2 (Featherless, Scaleway, Z.ai),
  deepseek-ai/DeepSeek-V4-Flash-0731 (Baseten, DeepInfra, Fireworks, Novita, Together),
  meta-llama/Llama-3.1-8B-Instruct (Nscale); with images: google/gemma-4-31B-it (Cerebras,
  Novita), Qwen/Qwen3.8-27B (Featherless), meta-llama/Llama-4-Scout-17B-16E-Instruct
  (Nscale) [huggingface/hub-docs, docs/inference-providers/tasks/chat-completion.md, commit
  78344c89 of 2026-08-21, generated from the providers' warm models].
  meta-llama/Llama-3.1-8B-Instruct was still listed on 2026-10-05 [mnfst/awesome-free-llm-apis
  data.json]. `free` is LISTED: nothing in /v1/models marks a model free.
* GET /v1/models rows carry `providers` [{provider, status "live"|"error", context_length,
  supports_tools, ...}] and `architecture` {input_modalities, output_modalities}
  [huggingface/hub-docs, docs/inference-providers/hub-api.md].
* Errors come as the OpenAI envelope on /v1 or as a plain `{"error": "..."}` string
  [shared/providers.md section 5].
"""
from providers import LISTED, MODEL, MODEL_NOT_FOUND, QUOTA, UPSTREAM, Model, Provider, Rule


class HuggingFace(Provider):
    name = "huggingface"
    title = "HuggingFace"
    base_url = "https://router.huggingface.co/v1"
    base_url_var = "HF_BASE_URL"
    key_vars = ("HF_TOKEN",)
    signup = "https://huggingface.co/settings/tokens"
    models_override_var = "HF_FREE_MODELS_OVERRIDE"
    # Router ids served on 2026-08-21 (hub-docs); 0 = context not stated by a source.
    models = (
        Model("openai/gpt-oss-120b", 131072),
        Model("zai-org/GLM-5.2", 0),
        Model("deepseek-ai/DeepSeek-V4-Flash-0731", 0),
        Model("Qwen/Qwen3.8-27B", 0, vision=True),
        Model("google/gemma-4-31B-it", 262144, vision=True),
        Model("openai/gpt-oss-20b", 131072),
        Model("meta-llama/Llama-4-Scout-17B-16E-Instruct", 0, vision=True),
        Model("meta-llama/Llama-3.1-8B-Instruct", 131072),
    )
    families = {
        "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "gpt-oss-20b": "openai/gpt-oss-20b",
        "gemma": "google/gemma-4-31B-it",
        "deepseek": "deepseek-ai/DeepSeek-V4-Flash-0731",
    }
    free = LISTED
    rules = (
        Rule(QUOTA, (402,), reset="month"),
        Rule(MODEL_NOT_FOUND, (400,), r"model_not_supported|not supported by any provider",
             scope=MODEL, cooldown=86400),
        Rule(UPSTREAM, (503,), scope=MODEL, cooldown=30),
    )

    def catalog_model(self, row):
        """A model some provider serves now (status "live"); None when every one is down."""
        listed = row.get("providers") if isinstance(row.get("providers"), list) else []
        providers = [p for p in listed if isinstance(p, dict)]
        if providers and not any(p.get("status") == "live" for p in providers):
            return None
        return super().catalog_model(row)

    def key_check_url(self, account=""):
        if self.base_url == HuggingFace.base_url:
            return "https://huggingface.co/api/whoami-v2"
        return self.catalog_url(account)
