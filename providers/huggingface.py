"""Hugging Face Inference Providers router: every model draws on a small monthly credit
($0.10 on the free plan), so running out answers 402 until the first of next month (UTC).
Errors come as the OpenAI envelope on /v1 or as a plain `{"error": "..."}` string.
"""
from providers import MODEL, MODEL_NOT_FOUND, QUOTA, UPSTREAM, Model, Provider, Rule


class HuggingFace(Provider):
    name = "huggingface"
    title = "HuggingFace"
    base_url = "https://router.huggingface.co/v1"
    base_url_var = "HF_BASE_URL"
    key_vars = ("HF_TOKEN",)
    signup = "https://huggingface.co/settings/tokens"
    models_override_var = "HF_FREE_MODELS_OVERRIDE"
    models = (
        Model("openai/gpt-oss-120b", 131072),
        Model("meta-llama/Llama-3.3-70B-Instruct", 131072),
        Model("openai/gpt-oss-20b", 131072),
        Model("Qwen/Qwen2.5-Coder-32B-Instruct", 32768),
        Model("google/gemma-3-27b-it", 131072, tools=False, vision=True),
        Model("deepseek-ai/DeepSeek-V3-0324", 163840),
        Model("meta-llama/Llama-3.1-8B-Instruct", 131072),
    )
    families = {
        "llama-3.3-70b": "meta-llama/Llama-3.3-70B-Instruct",
        "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "gpt-oss-20b": "openai/gpt-oss-20b",
        "qwen-coder": "Qwen/Qwen2.5-Coder-32B-Instruct",
        "gemma": "google/gemma-3-27b-it",
        "deepseek": "deepseek-ai/DeepSeek-V3-0324",
    }
    rules = (
        Rule(QUOTA, (402,), reset="month"),
        Rule(MODEL_NOT_FOUND, (400,), r"model_not_supported|not supported by any provider",
             scope=MODEL, cooldown=86400),
        Rule(UPSTREAM, (503,), scope=MODEL, cooldown=30),
    )

    def key_check_url(self, account=""):
        if self.base_url == HuggingFace.base_url:
            return "https://huggingface.co/api/whoami-v2"
        return self.catalog_url(account)
