"""Embeddings fail over only within one vector family; /v1/models merges the free catalogs.

Vectors from different models cannot be compared, so an embeddings request moves between
providers only when they serve the same model family with the same dimension (NVIDIA's
`baai/bge-m3` and Cloudflare's `@cf/baai/bge-m3`, both 1024), and never returns a vector of
another dimension.
"""
import base64
import struct
import unittest

import providers

from tests.fakes import Reply, embeddings_ok, error, models_ok
from tests.support import GatewayTest

BGE_M3 = 1024


def vectors(dim):
    """A fake reply callable: one vector of `dim` floats per input, as the provider would."""
    def answer(request):
        inputs = request.body.get("input") if isinstance(request.body, dict) else None
        one_token_list = isinstance(inputs, list) and inputs and isinstance(inputs[0], int)
        count = len(inputs) if isinstance(inputs, list) and not one_token_list else 1
        return embeddings_ok(count=count, dim=dim, model=request.model or "fake-embed")
    return answer


class EmbeddingsTest(GatewayTest):
    def embed(self, model="auto", inputs="the quick brown fox", **extra):
        return self.call("POST", "/v1/embeddings", {"model": model, "input": inputs, **extra})

    def embedding_requests(self, provider):
        fake = self.fakes.get(provider)
        return [] if fake is None else [r for r in fake.requests if r.path.endswith("/embeddings")]

    def assertVectors(self, response, count, dim):
        self.assertEqual(response.status, 200, response.body)
        doc = response.json()
        self.assertEqual(doc["object"], "list")
        self.assertEqual([row["index"] for row in doc["data"]], list(range(count)))
        self.assertEqual({len(row["embedding"]) for row in doc["data"]}, {dim})
        return doc


class EmbeddingsFailover(EmbeddingsTest):
    def setUp(self):
        super().setUp()
        self.nvidia, self.cloudflare = self.fake("nvidia"), self.fake("cloudflare")
        self.nvidia.default(vectors(BGE_M3))
        self.cloudflare.default(vectors(BGE_M3))

    def test_auto_is_served_by_nvidia_bge_m3_with_input_type_added(self):
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed()
        doc = self.assertVectors(response, 1, BGE_M3)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
        self.assertTrue(response.headers["X-FreeRide-Request-Id"].startswith("req_"))
        self.assertEqual(doc["model"], "baai/bge-m3")
        sent = self.embedding_requests("nvidia")[0]
        self.assertEqual((sent.model, sent.key), ("baai/bge-m3", "n1"))
        self.assertEqual(sent.body["input_type"], "query")
        self.assertEqual(self.embedding_requests("cloudflare"), [])

    def test_cloudflare_gets_no_input_type(self):
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed("@cf/baai/bge-m3")
        self.assertVectors(response, 1, BGE_M3)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "cloudflare")
        sent = self.embedding_requests("cloudflare")[0]
        self.assertEqual(sent.model, "@cf/baai/bge-m3")
        self.assertNotIn("input_type", sent.body)

    def test_a_failing_provider_fails_over_to_the_same_family_elsewhere(self):
        self.nvidia.on(error("nvidia", "rate"), path="/embeddings")
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed()
        doc = self.assertVectors(response, 1, BGE_M3)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "cloudflare")
        self.assertEqual(doc["model"], "@cf/baai/bge-m3")
        self.assertEqual([r.model for r in self.embedding_requests("nvidia")], ["baai/bge-m3"])
        self.assertEqual([r.model for r in self.embedding_requests("cloudflare")], ["@cf/baai/bge-m3"])

    def test_an_openai_model_name_picks_the_family_most_providers_serve(self):
        # Cloudflare first: it also offers bge-large (1024) and bge-base; bge-m3 wins because
        # both providers serve it. Cloudflare fails, so the walk shows its whole candidate list.
        self.cloudflare.on(error("cloudflare", "capacity"), path="/embeddings")
        self.start_gateway(cloudflare="c1", nvidia="n1")
        response = self.embed("text-embedding-3-small")
        doc = self.assertVectors(response, 1, BGE_M3)
        self.assertEqual(doc["model"], "baai/bge-m3")
        self.assertEqual([r.model for r in self.embedding_requests("cloudflare")], ["@cf/baai/bge-m3"])
        self.assertEqual([r.model for r in self.embedding_requests("nvidia")], ["baai/bge-m3"])

    def test_a_named_model_never_fails_over_to_another_model(self):
        self.nvidia.on(error("nvidia", "unavailable"), path="/embeddings")
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed("nvidia/nv-embedqa-e5-v5")
        self.assertGreaterEqual(response.status, 400)
        self.assertNotIn("data", response.json())
        self.assertEqual([r.model for r in self.embedding_requests("nvidia")], ["nvidia/nv-embedqa-e5-v5"])
        self.assertEqual(self.embedding_requests("cloudflare"), [],
                         "cloudflare's 1024-dim models are other models: never a substitute")

    def test_a_named_model_is_served_under_its_own_name(self):
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed("nvidia/nv-embedqa-e5-v5")
        doc = self.assertVectors(response, 1, BGE_M3)
        self.assertEqual(doc["model"], "nvidia/nv-embedqa-e5-v5")

    def test_vectors_of_the_wrong_dimension_are_failed_over(self):
        self.nvidia.default(vectors(768))
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed(inputs=["one", "two"])
        self.assertVectors(response, 2, BGE_M3)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "cloudflare")
        self.assertEqual(len(self.embedding_requests("nvidia")), 1)

    def test_wrong_dimensions_everywhere_is_an_error_never_vectors(self):
        self.nvidia.default(vectors(768))
        self.cloudflare.default(vectors(8))
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed()
        self.assertEqual(response.status, 503)
        self.assertNotIn("data", response.json())
        self.assertEqual(len(response.error["attempts"]), 2)

    def test_an_attempt_with_the_wrong_dimension_says_so_rather_than_dumping_the_vectors(self):
        self.nvidia.default(vectors(768))
        self.cloudflare.default(vectors(8))
        self.start_gateway(nvidia="n1", cloudflare="c1")
        attempts = self.embed().error["attempts"]
        self.assertEqual([a["provider"] for a in attempts], ["nvidia", "cloudflare"])
        for attempt in attempts:
            self.assertIn("dimension 1024", attempt["message"])
            self.assertNotIn("embedding", attempt["message"])

    def test_a_batch_gets_one_vector_per_input_in_input_order(self):
        expected = embeddings_ok(count=3, dim=BGE_M3, model="baai/bge-m3").json()
        shuffled = dict(expected, data=list(reversed(expected["data"])))
        self.nvidia.on(Reply(body=shuffled), path="/embeddings")
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed(inputs=["alpha", "beta", "gamma"])
        doc = self.assertVectors(response, 3, BGE_M3)
        self.assertEqual([row["embedding"] for row in doc["data"]],
                         [row["embedding"] for row in expected["data"]])
        self.assertEqual(self.embedding_requests("nvidia")[0].body["input"], ["alpha", "beta", "gamma"])

    def test_token_ids_are_refused_since_no_free_model_reads_openais_tokens(self):
        # LangChain's OpenAIEmbeddings sends tiktoken ids by default: BGE or Gemini would turn
        # them into vectors of nothing. A 400 that says what to send instead, no quota spent.
        self.start_gateway(nvidia="n1", cloudflare="c1")
        for inputs in ([101, 2023, 102], [[101, 2023], [101, 2024]]):
            with self.subTest(inputs=inputs):
                response = self.embed(inputs=inputs)
                self.assertEqual(response.status, 400, response.body)
                self.assertEqual(response.error["param"], "input")
                self.assertIn("check_embedding_ctx_length=False", response.error["message"])
        self.assertEqual(self.embedding_requests("nvidia") + self.embedding_requests("cloudflare"),
                         [])

    def test_base64_encoding_is_little_endian_float32(self):
        expected = embeddings_ok(count=2, dim=BGE_M3, model="baai/bge-m3").json()
        self.nvidia.on(Reply(body=expected), path="/embeddings")
        self.start_gateway(nvidia="n1", cloudflare="c1")
        response = self.embed(inputs=["a", "b"], encoding_format="base64")
        self.assertEqual(response.status, 200, response.body)
        rows = response.json()["data"]
        self.assertEqual(len(rows), 2)
        for row, want in zip(rows, expected["data"]):
            self.assertIsInstance(row["embedding"], str)
            raw = base64.b64decode(row["embedding"])
            self.assertEqual(len(raw), 4 * BGE_M3)
            got = struct.unpack(f"<{BGE_M3}f", raw)
            for a, b in zip(got, want["embedding"]):
                self.assertAlmostEqual(a, b, places=6)
        self.assertEqual(self.embedding_requests("nvidia")[0].body["encoding_format"], "float",
                         "the gateway decodes floats itself, so it can check the dimension")


class EmbeddingsWithoutProviders(EmbeddingsTest):
    def test_groq_serves_no_embeddings(self):
        self.start_gateway(groq="g1")
        response = self.embed()
        self.assertEqual(response.status, 404)
        self.assertEqual(response.error["code"], "model_not_found")
        self.assertEqual(self.embedding_requests("groq"), [])

    def test_groq_is_passed_over_for_nvidia(self):
        nvidia = self.fake("nvidia")
        nvidia.default(vectors(BGE_M3))
        self.start_gateway(groq="g1", nvidia="n1")
        response = self.embed()
        self.assertVectors(response, 1, BGE_M3)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "nvidia")
        self.assertEqual(self.fakes["groq"].requests, [])


class Models(GatewayTest):
    def models(self):
        response = self.call("GET", "/v1/models")
        self.assertEqual(response.status, 200, response.body)
        doc = response.json()
        self.assertEqual(doc["object"], "list")
        return {entry["id"]: entry for entry in doc["data"]}

    def test_one_list_merges_every_providers_free_models(self):
        self.fake("openrouter").on(models_ok("openrouter", [
            "meta-llama/llama-3.3-70b-instruct:free",
            {"id": "qwen/qwen3-coder:free", "context_length": 262144},
            {"id": "some/zero-priced-model", "pricing": {"prompt": "0", "completion": "0"}},
            "openai/gpt-4o-mini"]), path="/models")
        self.fake("groq").on(models_ok("groq", ["llama-3.3-70b-versatile", "openai/gpt-oss-120b",
                                                "some-unlisted-groq-model"]), path="/models")
        self.start_gateway(openrouter="k1", groq="g1")
        entries = self.models()
        for model_id, provider in [("meta-llama/llama-3.3-70b-instruct:free", "openrouter"),
                                   ("qwen/qwen3-coder:free", "openrouter"),
                                   ("some/zero-priced-model", "openrouter"),
                                   ("llama-3.3-70b-versatile", "groq"),
                                   ("openai/gpt-oss-120b", "groq")]:
            self.assertIn(model_id, entries)
            self.assertEqual(entries[model_id]["object"], "model")
            self.assertEqual(entries[model_id]["providers"], [provider])
        self.assertNotIn("openai/gpt-4o-mini", entries, "a paid OpenRouter model is never listed")
        self.assertEqual(entries["some-unlisted-groq-model"]["providers"], ["groq"],
                         "every model Groq lists is on its free plan")
        self.assertEqual(entries["qwen/qwen3-coder:free"]["context_length"], 262144)
        self.assertEqual(entries["llama-3.3-70b-versatile"]["context_length"], 131072)
        for entry in entries.values():
            self.assertIsInstance(entry["providers"], list)
            self.assertTrue(entry["providers"])
            self.assertIsInstance(entry["context_length"], int)
        asked = [(r.method, r.path, r.key) for r in self.fakes["groq"].catalog_requests]
        self.assertEqual(asked, [("GET", "/v1/models", "g1")], "fetched once, at start")
        self.assertEqual(self.fakes["groq"].requests, [], "listing models calls no provider")

    def test_a_model_two_providers_serve_lists_both(self):
        self.fake("groq").on(models_ok("groq", [{"id": "openai/gpt-oss-120b", "context_window": 65536}]),
                             path="/models")
        self.fake("nvidia").on(models_ok("nvidia", ["openai/gpt-oss-120b"]), path="/models")
        self.start_gateway(groq="g1", nvidia="n1")
        entry = self.models()["openai/gpt-oss-120b"]
        self.assertEqual(entry["providers"], ["groq", "nvidia"])
        self.assertEqual(entry["context_length"], 131072)

    def test_aliases_and_family_names_are_listed(self):
        self.start_gateway(openrouter="k1", groq="g1")
        entries = self.models()
        for alias in ("auto", "free", "openrouter/free"):
            self.assertIn(alias, entries)
            self.assertEqual(entries[alias]["providers"], ["openrouter", "groq"])
        self.assertEqual(entries["llama-3.3-70b"]["providers"], ["openrouter", "groq"])
        self.assertEqual(entries["llama-3.3-70b"]["context_length"], 131072)
        self.assertEqual(entries["llama-3.1-8b"]["providers"], ["groq"], "OpenRouter has no free 8B")

    def test_a_provider_whose_catalog_fails_is_listed_from_its_module(self):
        self.fake("groq").on(error("groq", "server"), path="/models")
        self.fake("openrouter").on(models_ok("openrouter", ["meta-llama/llama-3.3-70b-instruct:free"]),
                                   path="/models")
        self.start_gateway(openrouter="k1", groq="g1")
        entries = self.models()
        self.assertIn("meta-llama/llama-3.3-70b-instruct:free", entries)
        groq_only = [e["id"] for e in entries.values()
                     if e["providers"] == ["groq"] and e["owned_by"] != "freeride"]
        self.assertEqual(groq_only, [m.id for m in providers.REGISTRY["groq"].models],
                         "the module's list is the offline fallback")
        self.assertEqual(len(self.fakes["groq"].catalog_requests), 1)
        self.assertEqual(self.fakes["groq"].requests, [], "not fetched again on the request")

    def test_cloudflare_catalog_is_read_from_its_v4_envelope(self):
        cloudflare = self.fake("cloudflare")
        cloudflare.on(models_ok("cloudflare", [
            {"id": "@cf/openai/gpt-oss-120b",
             "properties": [{"property_id": "context_window", "value": "64000"}]},
            "@cf/meta/llama-3.1-8b-instruct-fast",
            "@cf/zai-org/glm-5.3"]), path="/models")
        self.start_gateway(cloudflare="c1")
        entries = self.models()
        self.assertEqual(entries["@cf/openai/gpt-oss-120b"]["providers"], ["cloudflare"])
        self.assertEqual(entries["@cf/openai/gpt-oss-120b"]["context_length"], 64000)
        self.assertEqual(entries["@cf/meta/llama-3.1-8b-instruct-fast"]["context_length"], 128000)
        self.assertNotIn("@cf/zai-org/glm-5.3", entries, "paid only, even when listed")
        self.assertEqual([(r.method, r.path) for r in cloudflare.catalog_requests],
                         [("GET", "/v1/models")])


if __name__ == "__main__":
    unittest.main()
