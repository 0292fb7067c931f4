"""Z.ai (Zhipu's international API): a few GLM "-flash" models priced zero, one request at a
time per key.

Facts, with their sources (shared/providers.md sections 12 and 13 unless named):
- Base `https://api.z.ai/api/paas/v4`, Bearer key (the general pay-as-you-go API; the Coding
  Plan has its own endpoint). Free: glm-4.7-flash, glm-4.6v-flash (vision) and glm-4.5-flash,
  whose announced retirement is overdue; one concurrent request [O: awesome-free-llm-apis
  data.json 2026-09-06 and 2026-10-05]. glm-5.3-flash (2026-08) is paid [O: VladoIvankovic/
  Codeep v2.25.0; openrouter.ai/~z-ai/glm-flash-latest]; so are the "-flashx" speed tiers.
- GET /models: 11 rows of `id, object, created, owned_by` only; no rate-limit headers on any
  answer; streams carry usage on the finish chunk [O: a public capture log, 2026-10-04].
- Errors are `{"error": {"code": "<business code>", "message"}, "request_id"}`; the HTTP status
  and the business codes are documented together [D: docs.z.ai/api-reference/api-code]: 401 bad
  or expired key ("token expired or incorrect" [O: 2026-08-07]); 429 for concurrency (1302),
  frequency (1303), daily call limit (1304), overload (1305), balance in arrears (1113) and
  locked or inactive accounts (1110-1112, 1121); 400 for an unknown model (1211, "Unknown
  Model, please check the model code." [O: 2026-10-04 capture]), a prompt too long (1261 [O:
  public tests]) and unsafe content (1301; the 400 is assumed [I]). Three concurrent requests
  on one key gave one 200 and two 429 1302 in 0.38 s, no Retry-After [O: Jerome-Group/syrax
  research notes]. 1305 has also fired for a content-filter refusal [O:
  NousResearch/hermes-agent#60118]. Coding-plan keys add 1308/1310 "Usage limit reached ...
  will reset at <Beijing time>".
- A free key has no balance, so 1113 on it means the model asked for is a paid one: that
  model is skipped on that key, the key itself is fine [O: public gateway tests reading 1113
  as "model outside the subscription"].
- Windows: 200K for glm-4.7-flash, 128K for the others [O: public pricing notes]; the list
  gives none.
"""
from providers import (AUTH, CONTEXT, KEY, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT,
                       UPSTREAM, Model, Provider, Rule)


class Zai(Provider):
    name = "zai"
    title = "Z.ai"
    base_url = "https://api.z.ai/api/paas/v4"
    key_vars = ("ZAI_API_KEY",)
    signup = "https://z.ai/manage-apikey/apikey-list"
    models_override_var = "ZAI_FREE_MODELS_OVERRIDE"
    models = (
        Model("glm-4.7-flash", 200000),
        Model("glm-4.6v-flash", 131072, vision=True),
        Model("glm-4.5-flash", 131072),
    )
    free_ids = r"-flash$"
    paid = ("glm-5.3-flash",)
    concurrency = 1
    rules = (
        Rule(MODEL_NOT_FOUND, (429,), r'"1113"|Insufficient balance|arrears', scope=KEY_MODEL,
             cooldown=86400),
        Rule(QUOTA, (429,), r'"1304"', scope=KEY_MODEL, reset="day"),
        Rule(UPSTREAM, (429,), r'"1305"|temporarily overloaded', scope=MODEL, cooldown=20),
        Rule(QUOTA, (429,), r'"13(?:08|10)"|Usage limit reached|Limit Exhausted', scope=KEY,
             cooldown=3600),
        Rule(AUTH, (429,), r'"11(?:1[012]|21)"', scope=KEY),
        # 1302 concurrency, 1303 frequency: a moment, then this key is free again.
        Rule(RATE_LIMIT, (429,), scope=KEY, cooldown=5),
        Rule(CONTEXT, (400,), r'"1261"|Prompt exceeds max length'),
        Rule(MODEL_NOT_FOUND, (400, 404), r'"1211"|Unknown Model|Model does not exist',
             scope=MODEL, cooldown=86400),
    )
