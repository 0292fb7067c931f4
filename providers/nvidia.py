"""NVIDIA NIM API catalog: trial access to the models tagged "Free Endpoint" on build.nvidia.com.

Facts (as of 2026-12-06):
* Free with an NVIDIA Developer Program account: about 40 requests a minute (a rolling
  window) and about 10,000 a day, 100+ models, no credits, no rate-limit headers
  [mnfst/awesome-free-llm-apis data.json, lastUpdated 2026-10-05; shared/providers.md
  sections 12-13]. Some models queue or hang for minutes instead of answering
  [openmake/openmake_llm PR #820, 2026-09-10: four free endpoints gave no answer in 280 s].
* GET /v1/models lists models the account cannot call: of its 80 ids on 2026-09-10, 55
  answered 404 "Function '<uuid>': Not found for account '<id>'", the same list with or
  without a key; the "Free Endpoint" badge (38 models, 22 of them on /v1/chat/completions) is
  the only free flag [openmake/openmake_llm PR #820; Alishahryar1/free-claude-code#956,
  2026-07-02]. So `free` is LISTED: only this module's models are called.
* Free endpoints named in 2026-09/10: nvidia/nemotron-3-super-120b-a12b and
  nvidia/nemotron-3-ultra-550b-a55b (1M context), meta/llama-3.3-70b-instruct,
  openai/gpt-oss-120b, openai/gpt-oss-20b, google/gemma-4-31b-it (262K, images answered on
  2026-09-10), minimaxai/minimax-m3 [shared/providers.md section 12; awesome-free-llm-apis
  2026-10-05; openmake/openmake_llm PR #820]; minimaxai/minimax-m3 has a 1M context and takes
  images [xRyul/pi-nvidia-nim PR #15, 2026-06-12].
* A retired model answers 410 ("The model 'minimaxai/minimax-m2.7' has reached its end of
  life on 2026-07-27T00:00:00Z and is no longer available") [tashfeenahmed/freellmapi#634].
* Errors are problem+json (`status`, `title`, `detail`) with no `error` key; retrieval
  embedding models need `input_type` [shared/providers.md section 3].
"""
from providers import LISTED, MODEL, MODEL_NOT_FOUND, Model, Provider, Rule


class Nvidia(Provider):
    name = "nvidia"
    title = "NVIDIA NIM"
    base_url = "https://integrate.api.nvidia.com/v1"
    key_vars = ("NVIDIA_API_KEY",)
    signup = "https://build.nvidia.com"
    models_override_var = "NVIDIA_NIM_FREE_MODELS_OVERRIDE"  # the name users were given
    # Free endpoints named in 2026-09/10 (providers.md section 12, awesome-free-llm-apis).
    models = (
        Model("nvidia/nemotron-3-super-120b-a12b", 1048576),
        Model("nvidia/nemotron-3-ultra-550b-a55b", 1048576),
        Model("meta/llama-3.3-70b-instruct", 131072),
        Model("openai/gpt-oss-120b", 131072),
        Model("google/gemma-4-31b-it", 262144, vision=True),
        Model("minimaxai/minimax-m3", 1048576, vision=True),
        Model("openai/gpt-oss-20b", 131072),
    )
    families = {
        "llama-3.3-70b": "meta/llama-3.3-70b-instruct",
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "gpt-oss-20b": "openai/gpt-oss-20b",
        "gemma": "google/gemma-4-31b-it",
    }
    embedding_models = {"baai/bge-m3": 1024, "nvidia/nv-embedqa-e5-v5": 1024}
    free = LISTED
    limits = (("requests", "minute", 40),)  # no headers; 40 a minute per account (section 12)
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
