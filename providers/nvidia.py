"""NVIDIA NIM API catalog: trial access to the models tagged "Free Endpoint", about 40 requests
a minute per account, no rate-limit headers. Errors are problem+json (`status`, `title`,
`detail`) with no `error` key; retrieval embedding models need `input_type`.
"""
from providers import MODEL, MODEL_NOT_FOUND, Model, Provider, Rule


class Nvidia(Provider):
    name = "nvidia"
    title = "NVIDIA NIM"
    base_url = "https://integrate.api.nvidia.com/v1"
    key_vars = ("NVIDIA_API_KEY",)
    signup = "https://build.nvidia.com"
    models_override_var = "NVIDIA_NIM_FREE_MODELS_OVERRIDE"
    models = (
        Model("meta/llama-3.3-70b-instruct", 131072),
        Model("openai/gpt-oss-120b", 131072),
        Model("openai/gpt-oss-20b", 131072),
        Model("qwen/qwen2.5-coder-32b-instruct", 32768),
        Model("meta/llama-4-maverick-17b-128e-instruct", 131072, vision=True),
        Model("google/gemma-3-27b-it", 131072, tools=False, vision=True),
        Model("deepseek-ai/deepseek-v3.1", 131072),
        Model("meta/llama-3.1-8b-instruct", 131072),
    )
    families = {
        "llama-3.3-70b": "meta/llama-3.3-70b-instruct",
        "llama-3.1-8b": "meta/llama-3.1-8b-instruct",
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "gpt-oss-20b": "openai/gpt-oss-20b",
        "qwen-coder": "qwen/qwen2.5-coder-32b-instruct",
        "gemma": "google/gemma-3-27b-it",
        "deepseek": "deepseek-ai/deepseek-v3.1",
    }
    embedding_models = {"baai/bge-m3": 1024, "nvidia/nv-embedqa-e5-v5": 1024}
    stream_usage = True
    rules = (
        Rule(MODEL_NOT_FOUND, (410,), scope=MODEL, cooldown=86400),
    )

    def key_check_url(self, account=""):
        return None  # the catalog answers without checking the key; no other call is free

    def prepare(self, payload, path):
        if path == "/embeddings" and "input_type" not in payload:
            payload["input_type"] = "query"
        return payload
