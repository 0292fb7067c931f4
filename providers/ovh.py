"""OVHcloud AI Endpoints: open models hosted in the EU (Gravelines, France), free with no key
at 2 requests a minute per IP address and per model.

Keyless, so used only when FREERIDE_KEYLESS=1 or FREERIDE_PROVIDERS names it: prompts go to a
service the user never signed up with. OVHcloud states that data "is not stored or shared
during or after model use" [D: ovh/docs, AI Endpoints - Features, Capabilities and
Limitations, 2025-08-18]; no logging warning was found, but nothing binds OVH to an anonymous
caller either.

Facts, with their sources (shared/providers.md sections 12 and 13 unless named):
- Base `https://oai.endpoints.kepler.ai.cloud.ovh.net/v1`, OpenAI-compatible.
- Anonymous: 2 requests a minute per IP and per model; with an API key 400 a minute per
  project and model, then 429 [D: same ovh/docs page]. A key bills every token
  pay-as-you-go [O: awesome-free-llm-apis data.json 2026-10-05, footnote 7], so none is ever
  sent (send_key = False, no key variable).
- An anonymous 429 observed 2026-08-16 carried `x-ratelimit-limit-minute: 2`,
  `x-ratelimit-remaining-minute: 0` and `Retry-After: 5` [O: a public audit of free vision
  back-ends ("Marisa", 2026-08-16) probing the endpoint that ysr666/dsh-vision-router uses].
  Those are the headers of Kong's rate-limiting plugin, whose default body is
  `{"message": "API rate limit exceeded"}` [I]. The limit is per model, so a 429 cools only
  that model and the next one is tried at once.
- GET /v1/models answers without a key: rows with `id`, `context_length`,
  `max_completion_tokens` and per-token USD `pricing` (what a key would pay); 24 ids on
  2026-09-28, among them speech (whisper-large-v3*, nvr-tts-*), image
  (stable-diffusion-xl-base-v10), embedding (bge-m3, bge-multilingual-gemma2,
  Qwen3-Embedding-8B) and guard (Qwen3Guard-Gen-*) models, which are not chat models
  [O: juspay/neurolink src/lib/providers/catalog/ovhcloud.json, live GET 2026-09-28].
  Every chat model is free anonymously. Qwen3-Coder-30B-A3B-Instruct and
  Mistral-7B-Instruct-v0.3 were still listed that day although absent from the (partial)
  list of 2026-10-05; Qwen3.8-27B was added by then [O: data.json 2026-10-05].
- A bad key answers 403 "Authentication Failed" [O: neurolink's error rule]; never reached.
- Error bodies other than the 429 were not found; the generic rules apply [I].
"""
from providers import ALL, KEY_MODEL, RATE_LIMIT, Model, Provider, Rule


class Ovh(Provider):
    name = "ovh"
    title = "OVHcloud AI Endpoints"
    base_url = "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1"
    key_vars = ()
    signup = "https://www.ovhcloud.com/en/public-cloud/ai-endpoints/catalog/"  # no key: the models
    models_override_var = "OVH_FREE_MODELS_OVERRIDE"
    # Each model has its own 2-a-minute budget, so a longer list is more capacity.
    models = (
        Model("gpt-oss-120b", 131072),
        Model("Qwen3.8-27B", 262144, vision=True),
        Model("Qwen3.5-397B-A17B", 262144, vision=True),
        Model("Qwen3.6-27B", 262144, vision=True),
        Model("Qwen3-Coder-30B-A3B-Instruct", 262144),
        Model("Meta-Llama-3_3-70B-Instruct", 131072),
        Model("gpt-oss-20b", 131072),
        Model("Qwen3-32B", 131072),
        Model("Mistral-Small-3.2-24B-Instruct-2506", 131072),
    )
    families = {
        "gpt-oss-120b": "gpt-oss-120b",
        "gpt-oss-20b": "gpt-oss-20b",
        "llama-3.3-70b": "Meta-Llama-3_3-70B-Instruct",
        "qwen-coder": "Qwen3-Coder-30B-A3B-Instruct",
    }
    keyless = True
    send_key = False
    free = ALL
    limits = (("requests", "minute", 2),)  # per IP and model, anonymous (section 12)
    quota_per_model = True
    rules = (
        Rule(RATE_LIMIT, (429,), scope=KEY_MODEL, cooldown=30),
    )

    def key_check_url(self, account=""):
        return None  # no key is ever sent
