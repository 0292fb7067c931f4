"""LM Studio (this machine): the models LM Studio's local server shows, through its
OpenAI-compatible routes.

Facts, with their sources (lmstudio-ai/docs, 1_developer, read 2026-04-29, unless named):
- Base `http://127.0.0.1:1234/v1` (LMSTUDIO_BASE_URL moves it). GET /v1/models lists the
  loaded models, or every downloaded one when just-in-time loading is on (then the first
  request loads it) [D: 3_openai-compat/models.md]; rows are bare, embedding models included:
  `{"data": [{"id": "qwen/qwen3-coder-30b", "object": "model", "owned_by":
  "organization_owner"}, {"id": "text-embedding-nomic-embed-text-v1.5", ...}], "object":
  "list"}` [O: public probes, 2025-09 to 2026-08]. No window is given.
- Errors: 404 `{"error": {"message": "Model \"x\" not found. Please specify a valid model.
  ...", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}`
  [O: letta-ai/letta#1876]; 400 `{"error": {"message": "No models loaded. Please load a model
  in the developer page or use the 'lms load' command."}}` [O: public client logs and
  fixtures]; 400 `{"error": "The number of tokens to keep from the initial prompt is greater
  than the context length (n_keep: 13055>= n_ctx: 4096). Try to load the model with a larger
  context length, or provide a shorter input."}` [O: Gitlawb/openclaude#353, 2026-04-04], also
  worded "Trying to keep the first N tokens when context the overflows" [O:
  lmstudio-bug-tracker#237, #546]; 400 "The model has crashed without additional
  information. (Exit code: 11)" [O: public client logs]. Since 0.4.21 an overflow may come
  back as HTTP 200 with an error body, or as an empty 200 stream [O: lmstudio-bug-tracker
  #2322, #2339, 2026-08]: no status rule can see those.
- API tokens (0.4.0+) are off by default; when "Require Authentication" is on, every route,
  /v1/models included, refuses a request without one: `{"error": {"type": "invalid_request",
  "code": "invalid_api_key", "message": "An LM Studio API token is required ..."}}`
  [D: 0_core/authentication.mdx; O: agustif/opencode-lmstudio#41, 2026-06-29]. FreeRide has
  no token to send, so such a server never answers its probe and is not used.
- Streams: usage comes only with stream_options.include_usage, in a trailing chunk with
  `"choices": []` [O: zed-industries/zed PR #57861, 2026-05-27].
"""
from providers import ALL, CONTEXT, KEY, MODEL, MODEL_NOT_FOUND, UPSTREAM, Provider, Rule


class LmStudio(Provider):
    name = "lmstudio"
    title = "LM Studio (this machine)"
    base_url = "http://127.0.0.1:1234/v1"
    key_vars = ()
    signup = "https://lmstudio.ai/download"
    local_server = True
    free = ALL
    embedding_ids = r"embed"
    stream_usage = True
    rules = (
        Rule(UPSTREAM, (429, 503), scope=KEY, cooldown=5),
        Rule(CONTEXT, (400,), r"context length|context the overflows|n_keep"),
        # Nothing loaded (just-in-time loading off): the server has nothing to run now.
        Rule(UPSTREAM, (400,), r"No models loaded", scope=KEY, cooldown=30),
        Rule(UPSTREAM, (400,), r"model has crashed", scope=MODEL, cooldown=5),
        Rule(MODEL_NOT_FOUND, (404,), r"not found", scope=MODEL),
    )
