"""llama.cpp server (this machine): `llama-server`, one loaded model (or several in router
mode), through its OpenAI-compatible routes.

Facts, with their sources (shared/providers.md section 11 unless named; ggml-org/llama.cpp
tools/server: server-common.cpp format_error_response, server-http.cpp middlewares,
server-context.cpp models and streams, read 2026):
- Base `http://127.0.0.1:8080/v1` (LLAMACPP_BASE_URL moves it). GET /v1/models answers
  `{"models": [...], "object": "list", "data": [{"id": <alias or file>, "object": "model",
  "created", "owned_by": "llamacpp", "meta": {"n_ctx", "n_ctx_train", "n_params", ...}}]}`;
  `meta.n_ctx` (newer builds) is the window the server was started with, often far below
  `n_ctx_train`. In router mode rows carry `status.value` (loaded, unloaded, ...) and
  `status.failed` when the model could not start.
- Errors: `{"error": {"code": <status>, "message", "type"}}`, type invalid_request_error 400,
  authentication_error 401, not_found_error 404, permission_error 403, server_error 500,
  not_supported_error 501, unavailable_error 503, exceed_context_size_error 400 (with
  n_prompt_tokens and n_ctx). While the model loads every route, /v1/models included,
  answers 503 "Loading model". With --api-key, /v1/models stays open but the other routes
  answer 401 "Invalid API Key": FreeRide has no key to send for a server on this machine, so
  that server is unusable and AUTH cools it for an hour.
- Streams: stream_options.include_usage adds a final chunk with `"choices": []` and usage;
  the last chunk also carries `timings`.
"""
from providers import ALL, CONTEXT, KEY, MODEL, MODEL_NOT_FOUND, UPSTREAM, Provider, Rule


class LlamaCpp(Provider):
    name = "llamacpp"
    title = "llama.cpp server (this machine)"
    base_url = "http://127.0.0.1:8080/v1"
    key_vars = ()
    signup = "https://github.com/ggml-org/llama.cpp/tree/master/tools/server"
    local_server = True
    free = ALL
    embedding_ids = r"embed|bge-"
    stream_usage = True
    rules = (
        Rule(UPSTREAM, (429, 503), scope=KEY, cooldown=5),  # busy or still loading
        Rule(CONTEXT, (400,), r"exceed_context_size|exceeds the available context size"),
        Rule(MODEL_NOT_FOUND, (404,), r"not found", scope=MODEL),
    )

    def catalog_model(self, row):
        """The window the server runs with; a model that failed to start is not offered."""
        status = row.get("status")
        if isinstance(status, dict) and status.get("failed"):
            return None
        model = super().catalog_model(row)
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        window = meta.get("n_ctx") or meta.get("n_ctx_train")
        return model._replace(context=window) if model and isinstance(window, int) else model
