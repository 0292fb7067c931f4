"""Ollama (this machine): whatever models `ollama pull` put here, through its /v1 layer.

Facts, with their sources (shared/providers.md section 11 unless named; ollama/ollama source
read at fb30760, 2026-08-21: openai/openai.go, middleware/openai.go, server/routes.go,
server/sched.go, server/images.go):
- Base `http://127.0.0.1:11434/v1` (OLLAMA_BASE_URL moves it); no auth. GET /v1/models lists
  every local model, embedding ones included: `{"object": "list", "data": [{"id":
  "qwen3-coder:30b", "object": "model", "created", "owned_by": "library"}]}`.
- Errors: `{"error": {"message", "type": invalid_request_error (400) | not_found_error (404)
  | api_error, "param": null, "code": null}}`. 404 `model "x" not found, try pulling it
  first`; 503 `server busy, please try again.  maximum pending requests exceeded` (queue
  full); 400 `"x" does not support chat` (an embedding model) or `... does not support
  tools`; 400 `the input length exceeds the context length` (embeddings; chat prompts are
  truncated to num_ctx instead); 500 for a model that fails to load or run.
- Streams: with stream_options.include_usage, an extra chunk with `"choices": []` and usage.
- `:cloud` / `-cloud` tags are proxied to ollama.com [O: server/model_recommendations.go];
  Ollama Cloud's free plan ended 2026-11-09 and every account is billed per token since
  (shared/providers.md section 13, OL-END), so they are never called.
- Embedding ids seen in Ollama's library: nomic-embed-text, mxbai-embed-large,
  snowflake-arctic-embed, bge-m3, bge-large, all-minilm, paraphrase-multilingual,
  granite-embedding, embeddinggemma, qwen3-embedding; the shared NOT_CHAT misses all-minilm
  and paraphrase-multilingual.
"""
import re

from providers import (ALL, CONTEXT, KEY, MODEL, MODEL_NOT_FOUND, NOT_CHAT, UPSTREAM, Provider,
                       Rule)

EMBEDDING = r"embed|bge-|all-minilm|paraphrase-multilingual"


class Ollama(Provider):
    name = "ollama"
    title = "Ollama (this machine)"
    base_url = "http://127.0.0.1:11434/v1"
    key_vars = ()
    signup = "https://ollama.com/download"
    local_server = True
    free = ALL
    not_chat = NOT_CHAT + "|" + EMBEDDING
    embedding_ids = EMBEDDING
    stream_usage = True
    rules = (
        # Busy, not spent: a local server is never cooled for quota.
        Rule(UPSTREAM, (429, 503), scope=KEY, cooldown=5),
        Rule(MODEL_NOT_FOUND, (404,), r"not found", scope=MODEL),
        # This model cannot take this request (an embedding model, or no tool support).
        Rule(MODEL_NOT_FOUND, (400,), r"does not support", scope=MODEL),
        Rule(CONTEXT, (400,), r"exceeds the context length"),
    )

    def is_free(self, model_id, row):
        return not re.search(r"[:-]cloud$", model_id)  # billed on ollama.com, not run here
