"""Routing from live catalogs (issue 14): what a provider lists today decides what is called,
models answered as gone are dropped for every key, keyless gateways stay off until turned on,
local servers are the last resort while they answer, and embeddings are never another model's.

Real gateway on loopback, fake providers answering as the real ones do.
"""
import http.server
import json
import socket
import threading
import time
import unittest

import freeride
import providers
from tests import fakes
from tests.fakes import Reply, embeddings_ok, error, models_ok
from tests.support import GatewayTest


def groq_models():
    return [m.id for m in providers.REGISTRY["groq"].models]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class LiveCatalogRouting(GatewayTest):
    def test_a_module_model_the_catalog_no_longer_lists_is_never_called(self):
        first, *rest = groq_models()
        self.fake("groq").on(models_ok("groq", rest), path="/models")
        self.start_gateway(groq="gsk-1")
        for model in ("auto", "free"):
            self.assertEqual(self.chat(model).status, 200)
        asked = [r.model for r in self.fakes["groq"].requests]
        self.assertEqual(asked, [rest[0], rest[0]], "auto takes the next preferred model")
        gone = self.chat(first)
        self.assertEqual(gone.status, 404, "an explicit id never becomes another model")
        self.assertEqual(len(self.fakes["groq"].requests), 2, "and costs no round trip")
        listed = {e["id"]: e for e in self.call("GET", "/v1/models").json()["data"]}
        self.assertIs(listed[first]["available"], False)
        self.assertEqual(listed[rest[0]]["providers"], ["groq"])

    def test_a_new_free_model_in_the_catalog_is_used_by_auto(self):
        self.fake("groq").on(models_ok("groq", [{"id": "newlab/brand-new-model",
                                                  "context_window": 262144}]), path="/models")
        self.start_gateway(groq="gsk-1")
        response = self.chat("auto")
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual([r.model for r in self.fakes["groq"].requests],
                         ["newlab/brand-new-model"])
        self.assertEqual(self.chat("newlab/brand-new-model").status, 200, "served by its own id")

    def test_preferred_models_come_first_and_new_ones_after_largest_context_first(self):
        first, *_ = groq_models()
        self.fake("groq").on(models_ok("groq", [
            {"id": "newlab/small", "context_window": 8192},
            {"id": "newlab/large", "context_window": 262144}, first]), path="/models")
        self.start_gateway(groq="gsk-1")
        route = self.gateway.config.routes[0]
        self.assertEqual([m.id for m in route.offer.models], [first, "newlab/large", "newlab/small"])

    def test_a_410_drops_the_model_for_every_key_until_the_catalog_lists_it_again(self):
        first, second, *_ = groq_models()
        groq = self.fake("groq")
        groq.on(Reply(410, None, {"error": {"message": "gone", "type": "invalid_request_error"}}),
                model=first)
        self.start_gateway({"FREERIDE_CATALOG_TTL": "2"}, groq=["gsk-1", "gsk-2"], nvidia="nv-1")
        first_answer = self.chat("auto")
        self.assertEqual(first_answer.headers["X-FreeRide-Provider"], "nvidia", "next provider")
        for _ in range(2):
            self.assertEqual(self.chat("auto").headers["X-FreeRide-Provider"], "groq")
        asked = [r.model for r in groq.requests]
        self.assertEqual(asked, [first, second, second], "one 410 drops it for both keys")
        saved = json.loads((self.home / "catalogs.json").read_text())
        self.assertIn({"provider": "groq", "model": first}, [
            {k: row[k] for k in ("provider", "model")} for row in saved["dropped"]])
        self.assertEqual(self.gateway.cooldowns.active(), {}, "no key was cooled for it")
        # The catalog still lists it: the next fetch (TTL 2 s here) brings it back.
        self.assertTrue(wait_for(lambda: first in self.gateway.config.routes[0].offer.ids))
        groq.requests.clear()
        self.assertEqual(self.chat("auto").status, 200)
        self.assertEqual(groq.requests[0].model, first)

    def test_a_decommissioned_model_answered_400_is_dropped_like_a_404(self):
        first, second, *_ = groq_models()
        groq = self.fake("groq")
        groq.on(Reply(400, None, {"error": {
            "message": f"The model `{first}` has been decommissioned and is no longer supported.",
            "type": "invalid_request_error", "code": "model_decommissioned"}}), model=first)
        self.start_gateway(groq=["gsk-1", "gsk-2"], nvidia="nv-1")
        for _ in range(3):
            self.assertEqual(self.chat("auto").status, 200)
        self.assertEqual([r.model for r in groq.requests], [first, second, second])

    def test_a_name_no_catalog_lists_grows_no_table(self):
        self.start_gateway(groq="gsk-1", openrouter="or-1")
        for i in range(50):
            self.assertEqual(self.chat(f"junk{i}:free").status, 200)
        self.assertEqual(self.gateway.cooldowns.active(), {})
        self.assertEqual(self.gateway.catalogs.dropped, {})
        self.assertFalse(any(r.model.startswith("junk") for r in self.fakes["openrouter"].requests
                             if r.model), "a name the catalog does not list is never sent")

    def test_the_catalog_survives_a_restart_and_an_offline_start(self):
        first, *rest = groq_models()
        groq = self.fake("groq")
        groq.on(models_ok("groq", rest), path="/models")
        first_gateway = self.start_gateway(groq="gsk-1")
        first_gateway.close()
        self.assertTrue((self.home / "catalogs.json").exists())
        groq.on(error("groq", "server"), path="/models", times=None)  # the catalog is down now
        self.start_gateway(groq="gsk-1")
        self.assertEqual(self.chat("auto").status, 200)
        self.assertEqual(groq.requests[-1].model, rest[0], "the cached catalog still rules")
        self.assertEqual(groq.catalog_requests, [], "a fresh cache is not fetched again at start")

    def test_a_damaged_or_future_dated_cache_is_fetched_again(self):
        self.fake("groq")
        (self.home / "catalogs.json").write_text("{damaged")
        self.start_gateway(groq="gsk-1")
        self.assertEqual(len(self.fakes["groq"].catalog_requests), 1)
        self.assertEqual(len(list(self.home.glob("catalogs.json.corrupt-*"))), 1)
        self.gateway.close()
        self.gateway.catalogs.save()
        doc = json.loads((self.home / "catalogs.json").read_text())
        doc["providers"]["groq"]["fetched"] = time.time() + 10 * 86400
        (self.home / "catalogs.json").write_text(json.dumps(doc))
        self.start_gateway(groq="gsk-1")
        self.assertEqual(len(self.fakes["groq"].catalog_requests), 1, "a future time never holds")


class KeylessAndLocal(GatewayTest):
    def test_keyless_gateways_are_off_until_turned_on(self):
        config = freeride.Config(env={"FREERIDE_LOCAL": "0"})
        self.assertEqual(config.routes, [])
        hints = dict(config.unconfigured)
        for name in ("kilo", "llm7", "ovh"):
            self.assertIn("FREERIDE_KEYLESS=1", hints[name])
        on = freeride.Config(env={"FREERIDE_LOCAL": "0", "FREERIDE_KEYLESS": "1"})
        self.assertEqual([r.name for r in on.routes], ["kilo", "llm7", "ovh"])

    def test_a_turned_on_keyless_gateway_answers_without_any_key_sent(self):
        kilo = self.fake("kilo")
        self.start_gateway({"FREERIDE_KEYLESS": "1", "FREERIDE_PROVIDERS": "kilo",
                            "KILO_BASE_URL": kilo.url})
        response = self.chat("auto")
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "kilo")
        self.assertNotIn("authorization", kilo.requests[0].headers)

    def test_ovh_never_gets_a_key_even_when_one_is_set(self):
        ovh = self.fake("ovh")
        self.start_gateway({"FREERIDE_PROVIDERS": "ovh", "OVH_BASE_URL": ovh.url,
                            "OVH_API_KEY": "would-bill"})
        self.assertEqual(self.chat("auto").status, 200)
        self.assertNotIn("authorization", ovh.requests[0].headers)

    def test_without_any_key_the_503_says_keyless_gives_answers_with_no_sign_up(self):
        self.start_gateway({"FREERIDE_PROVIDERS": ""})
        response = self.chat()
        self.assertEqual(response.status, 503)
        self.assertIn("FREERIDE_KEYLESS=1", response.error["message"])


class LocalServer:
    """A stand-in Ollama on a port chosen in advance, started and stopped by the test."""

    def __init__(self, port):
        self.port, self.requests, self.server = port, [], None

    def start(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # no kept connection outlives a stop, as with Ollama

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append(("GET", self.path))
                self._json({"object": "list", "data": [
                    {"id": "qwen3:8b", "object": "model", "owned_by": "library"},
                    {"id": "nomic-embed-text:latest", "object": "model", "owned_by": "library"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(("POST", self.path))
                if self.path.endswith("/embeddings"):
                    self._json({"object": "list", "model": body["model"], "data": [
                        {"object": "embedding", "index": 0, "embedding": [0.5] * 768}],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                else:
                    self._json(fakes.chat_ok("local answer", model=body["model"]).json())

            def _json(self, doc):
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalLastResort(GatewayTest):
    def setUp(self):
        super().setUp()
        self.local = LocalServer(free_port())
        self.addCleanup(self.local.stop)

    def start(self, probe="0.1", **keys):
        return self.start_gateway({"FREERIDE_LOCAL": "1", "FREERIDE_LOCAL_PROBE": probe,
                                   "FREERIDE_PROVIDERS": ",".join([*keys, "ollama"]),
                                   "OLLAMA_BASE_URL": f"http://127.0.0.1:{self.local.port}/v1"},
                                  **keys)

    def ollama(self):
        return next(r for r in self.gateway.config.routes if r.name == "ollama")

    def test_used_only_after_every_hosted_tier_is_spent(self):
        self.local.start()
        groq = self.fake("groq")
        self.start(groq="gsk-1")
        self.assertTrue(wait_for(lambda: self.ollama().available))
        self.assertEqual(self.chat().headers["X-FreeRide-Provider"], "groq")
        groq.default(error("groq", "daily_rpd"))
        response = self.chat()
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.headers["X-FreeRide-Provider"], "ollama")
        self.assertEqual(response.headers["X-FreeRide-Model"], "qwen3:8b", "auto: the first it lists")

    def test_picked_up_when_it_starts_and_dropped_when_it_stops(self):
        self.start()
        self.assertEqual(self.chat().status, 503, "nothing answers yet")
        self.local.start()
        self.assertTrue(wait_for(lambda: self.ollama().available), "a probe found it")
        self.assertEqual(self.chat().headers["X-FreeRide-Provider"], "ollama")
        self.local.stop()
        self.assertTrue(wait_for(lambda: not self.ollama().available), "a probe lost it")
        self.assertEqual(self.chat().status, 503)

    def test_no_probe_runs_on_a_request_path(self):
        self.local.start()
        self.start(probe="3600")
        self.assertTrue(wait_for(lambda: self.ollama().available))
        before = [r for r in self.local.requests if r[0] == "GET"]
        for _ in range(5):
            self.assertEqual(self.chat().status, 200)
        self.assertEqual([r for r in self.local.requests if r[0] == "GET"], before)

    def test_a_local_embedding_model_serves_auto_embeddings(self):
        self.local.start()
        self.start()
        self.assertTrue(wait_for(lambda: self.ollama().available))
        response = self.call("POST", "/v1/embeddings", {"model": "auto", "input": "hi"})
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.json()["model"], "nomic-embed-text:latest")
        self.assertEqual(len(response.json()["data"][0]["embedding"]), 768)


class Embeddings(GatewayTest):
    def test_an_openrouter_key_alone_answers_embeddings(self):
        openrouter = self.fake("openrouter")
        [(model, dimension)] = providers.REGISTRY["openrouter"].embedding_models.items()
        openrouter.on(embeddings_ok(dim=dimension, model=model), path="/embeddings", times=None)
        self.start_gateway(openrouter="or-1")
        for name in ("auto", "text-embedding-3-small", model):
            with self.subTest(model=name):
                response = self.call("POST", "/v1/embeddings", {"model": name, "input": "hi"})
                self.assertEqual(response.status, 200, response.body)
                self.assertEqual(response.json()["model"], model)
                self.assertEqual(len(response.json()["data"][0]["embedding"]), dimension)

    def test_a_named_embedding_model_is_never_answered_with_another_models_vectors(self):
        self.fake("openrouter")
        self.fake("nvidia")
        self.start_gateway(openrouter="or-1", nvidia="nv-1")
        response = self.call("POST", "/v1/embeddings", {"model": "some-lab/other-embed-v9",
                                                         "input": "hi"})
        self.assertEqual(response.status, 404, response.body)
        self.assertEqual(response.error["code"], "model_not_found")
        self.assertIn(next(iter(providers.REGISTRY["nvidia"].embedding_models)),
                      response.error["models"])
        self.assertEqual([r for f in self.fakes.values() for r in f.requests], [],
                         "no provider was asked")


class OneRequestAtATime(GatewayTest):
    def test_a_second_concurrent_request_goes_elsewhere_instead_of_waiting(self):
        zai, groq = self.fake("zai"), self.fake("groq")
        zai.default(Reply(body=fakes.chat_ok().json(), delay=1.0))
        self.start_gateway(zai="zai-1", groq="gsk-1")
        results = []
        slow = threading.Thread(target=lambda: results.append(self.chat()))
        slow.start()
        self.assertTrue(zai.wait_requests(1))
        started = time.monotonic()
        quick = self.chat()
        self.assertLess(time.monotonic() - started, 0.9, "it did not wait for the busy key")
        self.assertEqual(quick.headers["X-FreeRide-Provider"], "groq")
        slow.join(5)
        self.assertEqual(results[0].headers["X-FreeRide-Provider"], "zai")
        self.assertEqual(self.chat().headers["X-FreeRide-Provider"], "zai", "free again")


if __name__ == "__main__":
    unittest.main()
