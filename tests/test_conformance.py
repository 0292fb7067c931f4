"""The provider conformance suite: every provider in providers.REGISTRY passes it.

Each provider is checked against its own module (the contract in providers/__init__.py) and
against the answers recorded in tests/fixtures/providers/<name>.json (format in
CONTRIBUTING.md). Adding a provider means its module, its registry line and its fixture file;
each failure below names the provider (and the case) and what is missing or wrong. A provider
without a fixture file fails test_every_provider_has_a_fixture_file_naming_it, and the checks
that need the file skip it.

Everything runs in memory (no sockets), with the classifier's clock at NOW.
"""
import copy
import inspect
import io
import json
import re
import unittest
from pathlib import Path

import freeride
import providers
from providers import (ALL, AUTH, CLIENT, CONTEXT, KEY, KEY_MODEL, LISTED, MODEL, MODEL_NOT_FOUND,
                       PRICE, QUOTA, RATE_LIMIT, UPSTREAM, Model, Provider, Rule)
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_790_000_000  # 2026-09-21 14:13:20 UTC
CLASSES = (RATE_LIMIT, QUOTA, AUTH, MODEL_NOT_FOUND, CONTEXT, CLIENT, UPSTREAM)
SCOPES = (KEY, KEY_MODEL, MODEL)
CALENDAR_RESETS = ("day", "pacific-day", "month")  # a fixture's "cooldown" may name one
UNCOOLED = (CONTEXT, CLIENT)  # the classes whose "cooldown" is null
SECTIONS = ("provider", "sources", "errors", "success", "stream", "catalog")
# A source in a module docstring: a URL, an owner/repo#N or "section #N" reference, a date.
SOURCE = re.compile(r"https?://\S+|#\d+|\b20\d\d-\d\d")
KEY_VAR = re.compile(r"[A-Z][A-Z0-9_]*_(?:KEY|TOKEN)")
ENV_VAR = re.compile(r"[A-Z][A-Z0-9_]*")
GARBAGE_CATALOGS = ({}, [], None, {"data": 5}, {"data": [1, "x", {"id": 7}]})
SECRET = "sk-conformance-0123456789"


def body_bytes(body):
    """A recorded body as sent on the wire: a string as it is, any other JSON value as JSON."""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def env_prefix(cls):
    """The prefix of a provider's variables: HF for HF_BASE_URL, else the upper-cased name."""
    return cls.base_url_var.removesuffix("_BASE_URL") if cls.base_url_var else cls.name.upper()


def overrides(cls, hook):
    return getattr(cls, hook) is not getattr(Provider, hook)


class ConformanceCase(unittest.TestCase):
    maxDiff = None

    def fixture(self, name, section=None):
        """The provider's fixture (or one section of it); skips the subTest when the file is
        missing or unreadable, which the fixture-file test reports."""
        try:
            doc = fakes.fixture(name)
        except (FileNotFoundError, ValueError) as e:
            self.skipTest(f"no usable fixture file ({type(e).__name__})")
        if section is None:
            return doc
        self.assertIn(section, doc, f"{name}.json has no {section!r} section")
        return doc[section]


class FixtureFilesTest(ConformanceCase):
    def test_every_provider_has_a_fixture_file_naming_it(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                path = fakes.FIXTURE_DIR / f"{name}.json"
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                self.assertTrue(path.is_file(), f"missing {shown}: record its errors, success, "
                                "stream and catalog (CONTRIBUTING.md)")
                try:
                    doc = fakes.fixture(name)
                except ValueError as e:
                    self.fail(f"{path.name} is not valid JSON: {e}")
                self.assertIsInstance(doc, dict)
                missing = [s for s in SECTIONS if s not in doc]
                self.assertEqual(missing, [], f"{path.name} lacks the sections {missing}")
                self.assertEqual(doc["provider"], name, f"{path.name} names another provider")

    def test_every_fixture_file_belongs_to_a_registered_provider(self):
        stray = sorted(p.stem for p in fakes.FIXTURE_DIR.glob("*.json")
                       if p.stem not in providers.REGISTRY)
        self.assertEqual(stray, [], "fixture files without a REGISTRY entry (a typo in the name?)")

    def test_the_recorded_facts_say_where_they_come_from(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                sources = self.fixture(name, "sources")
                self.assertIsInstance(sources, dict)
                self.assertTrue(sources, f"{name}.json: 'sources' is empty")
                for key, where in sources.items():
                    self.assertTrue(isinstance(where, str) and where.strip(),
                                    f"{name}.json: source {key!r} says nothing")


class ModuleDataTest(ConformanceCase):
    def test_name_title_and_base_url(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                self.assertEqual(cls.name, name, "the module's name is not its registry key")
                self.assertEqual(cls.api, providers.API)
                self.assertTrue(cls.title.strip(), "no title")
                self.assertRegex(cls.base_url, r"^https?://[^/\s]+", "base_url is not an http(s) URL")
                self.assertFalse(cls.base_url.endswith("/"), "base_url ends with '/'")
                self.assertRegex(cls().catalog_url("account"), r"^https?://")
                if cls.base_url_var:
                    self.assertRegex(cls.base_url_var, r"^[A-Z][A-Z0-9_]*_BASE_URL$")

    def test_key_variables(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                self.assertIsInstance(cls.key_vars, tuple)
                for var in cls.key_vars:
                    self.assertRegex(var, f"^{KEY_VAR.pattern}$",
                                     "a key variable is an UPPER_CASE name ending in _KEY or _TOKEN")
                if not cls.key_vars:
                    self.assertTrue(cls.keyless or cls.local_server,
                                    "no key_vars: only a keyless or local_server provider has none")
                if cls.account_var:
                    self.assertRegex(cls.account_var, f"^{ENV_VAR.pattern}$")
                if cls.keyless or cls.local_server:
                    self.assertEqual(cls.account_var, "", "a provider used without a key needs no account")

    def test_models_override_variable(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                if cls.local_server and not cls.models_override_var:
                    continue  # a local server lists what is installed; nothing to add
                self.assertRegex(cls.models_override_var or "",
                                 rf"^{env_prefix(cls)}_(\w+_)?FREE_MODELS_OVERRIDE$",
                                 "every hosted provider declares models_override_var, named so")

    def test_models_are_unique_model_rows(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                self.assertIsInstance(cls.models, tuple)
                if not cls.local_server:
                    self.assertTrue(cls.models, "a hosted provider lists its free models, the default first")
                ids = [m.id for m in cls.models]
                self.assertEqual(len(ids), len(set(ids)), "a model id is listed twice")
                for model in cls.models:
                    self.assertIsInstance(model, Model, f"{model!r} is not a providers.Model")
                    self.assertTrue(isinstance(model.id, str) and model.id == model.id.strip() != "")
                    self.assertTrue(isinstance(model.context, int) and model.context >= 0, model)
                    self.assertIsInstance(model.tools, bool)
                    self.assertIsInstance(model.vision, bool)

    def test_families_map_known_families_to_own_models(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                ids = {m.id for m in cls.models}
                for family, model_id in cls.families.items():
                    self.assertIn(family, freeride.FAMILIES, "not a freeride.FAMILIES key")
                    self.assertIn(model_id, ids, f"families[{family!r}] is not one of the module's models")

    def test_embedding_models_have_dimensions(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                self.assertIsInstance(cls.embedding_models, dict)
                least = 0 if cls.local_server else 1  # a local server may not know it: 0
                for model_id, dimension in cls.embedding_models.items():
                    self.assertTrue(isinstance(model_id, str) and model_id.strip(), model_id)
                    self.assertTrue(type(dimension) is int and dimension >= least,
                                    f"embedding_models[{model_id!r}] = {dimension!r}: a positive int")

    def test_free_rule_and_paid_ids(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                self.assertIn(cls.free, (ALL, PRICE, LISTED))
                self.assertIsInstance(cls.free_ids, str)
                re.compile(cls.free_ids)
                re.compile(cls.not_chat)
                self.assertTrue(all(isinstance(p, str) for p in cls.paid), "paid holds model ids")
                both = sorted({m.id for m in cls.models} & set(cls.paid))
                self.assertEqual(both, [], "ids both in models and in paid")

    def test_flags_and_rules_are_well_formed(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                for flag in ("stream_usage", "keyless", "send_key", "local_server"):
                    self.assertIsInstance(getattr(cls, flag), bool, flag)
                self.assertFalse(cls.local, "`local` is the offline demo's alone")
                self.assertTrue(type(cls.concurrency) is int and cls.concurrency >= 0)
                for rule in cls.rules:
                    self.assertIsInstance(rule, Rule)
                    self.assertIn(rule.cls, CLASSES, rule)
                    self.assertIn(rule.scope, SCOPES, rule)
                    self.assertIn(rule.reset, ("",) + CALENDAR_RESETS, rule)
                    self.assertTrue(all(type(s) is int for s in rule.status), rule)
                    re.compile(rule.body)

    def test_the_docstring_names_a_source(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                text = (inspect.getmodule(cls).__doc__ or "") + (cls.__doc__ or "")
                self.assertRegex(text, SOURCE, "the module docstring names no source "
                                 "(a URL, an owner/repo#N reference or a 2026-MM date)")


class ClassifierTest(ConformanceCase):
    def test_every_recorded_error_classifies_as_its_expectation(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                for case, answer in self.fixture(name, "errors").items():
                    with self.subTest(case=case):
                        self.assert_classified(cls(), answer)

    def assert_classified(self, provider, answer):
        self.assertIsInstance(answer, dict)
        self.assertTrue(isinstance(answer.get("status"), int), "no integer 'status'")
        headers = answer.get("headers") or {}
        self.assertTrue(isinstance(headers, dict)
                        and all(isinstance(v, str) for v in headers.values()),
                        "'headers' maps names to string values")
        self.assertIn("body", answer)
        expect = answer.get("expect")
        self.assertIsInstance(expect, dict, "no 'expect'")
        self.assertIn(expect.get("class"), CLASSES)
        verdict = freeride.classify(provider, answer["status"],
                                    freeride.Headers(list(headers.items())),
                                    body_bytes(answer["body"]), now=NOW)
        self.assertEqual(verdict.cls, expect["class"])
        cooldown = expect.get("cooldown")
        if cooldown is None:
            self.assertIn(expect["class"], UNCOOLED, "a null cooldown is for CONTEXT or CLIENT")
            return  # nothing cools, so the scope says nothing
        self.assertEqual(verdict.scope, expect.get("scope"))
        if cooldown in CALENDAR_RESETS:
            cooldown = freeride.calendar_reset(cooldown, NOW)
        self.assertIsInstance(cooldown, (int, float), "cooldown: seconds, a reset name or null")
        self.assertAlmostEqual(verdict.seconds, cooldown, delta=1)

    def test_each_provider_records_the_failures_every_provider_has(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                errors = self.fixture(name, "errors")
                answers = [a for a in errors.values() if isinstance(a, dict)]
                classes = {(a.get("expect") or {}).get("class") for a in answers}
                if not (cls.keyless or cls.local_server):
                    self.assertIn(AUTH, classes, "no recorded AUTH case (a bad key)")
                if not cls.local_server:  # a server on this machine has no quota to spend
                    self.assertTrue(classes & {RATE_LIMIT, QUOTA},
                                    "no recorded rate-limit or quota case")
                self.assertIn(MODEL_NOT_FOUND, classes, "no recorded MODEL_NOT_FOUND case")
                self.assertTrue(any(isinstance(a.get("status"), int) and a["status"] >= 500
                                    for a in answers) or UPSTREAM in classes,
                                "no recorded 5xx (or other provider-side failure) case")

    def test_the_fake_replays_every_recorded_error(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                errors = self.fixture(name, "errors")
                for case in errors:
                    if case in fakes.ERROR_CASES[name]:
                        continue  # a hand-written builder of the same name answers instead
                    answer = errors[case]
                    reply = fakes.error(name, case)
                    self.assertEqual((reply.status, reply.body),
                                     (answer["status"], body_bytes(answer["body"])), case)


class CatalogTest(ConformanceCase):
    def test_the_recorded_catalog_gives_exactly_its_free_models_in_order(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                catalog = self.fixture(name, "catalog")
                self.assertIn("answer", catalog)
                self.assertIsInstance(catalog.get("free"), list)
                models = cls().catalog(copy.deepcopy(catalog["answer"]))
                self.assertTrue(all(isinstance(m, Model) for m in models), "catalog() returns Model rows")
                self.assertEqual([m.id for m in models], catalog["free"])

    def test_paid_ids_are_never_returned(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                if not cls.paid:
                    continue
                rows = [{"id": p, "name": p, "model": p, "pricing": {"prompt": "0", "completion": "0"}}
                        for p in cls.paid]
                offered = {"object": "list", "data": rows, "result": rows, "models": rows}
                returned = {m.id for m in cls().catalog(offered)}
                try:
                    returned |= {m.id for m in cls().catalog(fakes.fixture(name)["catalog"]["answer"])}
                except (FileNotFoundError, ValueError, KeyError, TypeError):
                    pass  # the fixture tests say what is wrong with it
                self.assertEqual(sorted(returned & set(cls.paid)), [])

    def test_a_garbage_catalog_gives_nothing_and_never_raises(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                for doc in GARBAGE_CATALOGS:
                    try:
                        models = cls().catalog(copy.deepcopy(doc))
                    except Exception as e:  # noqa: BLE001 - the point is that nothing escapes
                        self.fail(f"catalog({doc!r}) raised {type(e).__name__}: {e}")
                    self.assertEqual(models, [], f"catalog({doc!r})")


class PrepareTest(ConformanceCase):
    def test_the_recorded_bodies_are_prepared_as_recorded(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                entries = self.fixture(name).get("prepare") or []
                for index, entry in enumerate(entries):
                    got = cls().prepare(copy.deepcopy(entry["in"]), entry["path"])
                    self.assertEqual(got, entry["out"], f"prepare entry {index} ({entry['path']})")

    def test_a_plain_chat_body_keeps_its_messages_and_embeddings_get_none(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                model = cls.models[0].id if cls.models else "local-model"
                messages = [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hello"}]
                body = cls().prepare({"model": model, "messages": copy.deepcopy(messages)},
                                     "/chat/completions")
                self.assertIsInstance(body, dict, "prepare() returns the body")
                self.assertEqual([m.get("role") for m in body.get("messages") or ()],
                                 ["system", "user"], "prepare() added or removed messages")
                embedding = next(iter(cls.embedding_models), "embed-model")
                body = cls().prepare({"model": embedding, "input": ["Hello"]}, "/embeddings")
                self.assertNotIn("messages", body)


class AnswersTest(ConformanceCase):
    def test_the_recorded_success_is_a_chat_completion(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                success = self.fixture(name, "success")
                self.assertEqual(success.get("object"), "chat.completion")
                choices = success.get("choices")
                self.assertTrue(isinstance(choices, list) and choices, "no choices")
                self.assertIsInstance(choices[0].get("message"), dict, "choices[0] has no message")

    def test_the_recorded_stream_has_content_and_ends_with_done(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                stream = self.fixture(name, "stream")
                self.assertTrue(isinstance(stream, list) and all(isinstance(e, str) for e in stream),
                                "'stream' is a list of raw SSE events")
                wire = "".join(event.rstrip("\n") + "\n\n" for event in stream).encode()
                events = [freeride.read_event(raw) for raw in freeride.sse_events(io.BytesIO(wire))]
                self.assertEqual(len(events), len(stream), "an event holds a blank line")
                kinds = [event.kind for event in events]
                self.assertIn("content", kinds)
                self.assertNotIn("error", kinds)
                self.assertEqual(kinds[-1], "done", "the stream does not end with data: [DONE]")

    def test_recorded_embeddings_are_an_embeddings_list(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                answer = self.fixture(name).get("embeddings")
                if answer is None:
                    continue
                if not cls.local_server:  # a local server embeds with whatever is loaded
                    self.assertTrue(cls.embedding_models, "embeddings recorded but no embedding_models")
                data = answer.get("data")
                self.assertTrue(isinstance(data, list) and data, "no 'data' rows")
                for row in data:
                    vector = row.get("embedding")
                    self.assertTrue(isinstance(vector, list) and vector
                                    and all(isinstance(x, (int, float)) for x in vector))


class HeadersTest(ConformanceCase):
    def test_the_key_is_sent_as_the_provider_says(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                provider = cls()
                if cls.keyless or cls.local_server:
                    self.assertNotIn("authorization", {h.lower() for h in provider.headers("")},
                                     "no key, no Authorization")
                sent = provider.headers(SECRET)
                if not cls.send_key:
                    self.assertFalse(any(SECRET in str(v) for v in sent.values()),
                                     "send_key is False but the key is sent")
                elif not overrides(cls, "headers"):
                    self.assertEqual(sent, {"Authorization": f"Bearer {SECRET}"})
                else:  # the hook documents its own scheme; the key must still go out
                    self.assertTrue(any(SECRET in str(v) for v in sent.values()),
                                    "headers() does not send the key")


class FakeUpstreamTest(ConformanceCase):
    """tests/fakes.py serves every provider (the gateway tests' upstreams)."""

    def test_every_provider_has_a_fake_and_its_edge_pages(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                fakes.FakeUpstream(name)  # not started: construction checks the name
                for case in ("html_502", "html_524"):
                    self.assertGreaterEqual(fakes.error(name, case).status, 500)

    def test_the_fake_lists_what_the_gateway_keeps(self):
        for name, cls in providers.REGISTRY.items():
            with self.subTest(provider=name):
                listed = fakes.models_reply(name).json()
                if name in fakes.HAND_WRITTEN:  # every module model, so the live filter keeps them
                    kept = {m.id for m in cls().catalog(listed)}
                    missing = [m.id for m in cls.models if m.id not in kept]
                    self.assertEqual(missing, [], "the fake's /models lacks module models")
                else:
                    self.assertEqual(listed, self.fixture(name, "catalog")["answer"])


if __name__ == "__main__":
    unittest.main()
