"""Groq: fast hosted open models; every model is usable on the free plan within its limits.

Limits are per organisation and per model (requests and tokens per minute and per day), so a
429 cools only that model on that key. Every answer carries x-ratelimit-* headers whose reset
values are Go durations; a request bigger than the per-minute token budget answers 413.
"""
from providers import (CLIENT, CONTEXT, KEY_MODEL, MODEL, MODEL_NOT_FOUND, QUOTA, RATE_LIMIT,
                       UPSTREAM, Model, Provider, Rule)


class Groq(Provider):
    name = "groq"
    title = "Groq"
    base_url = "https://api.groq.com/openai/v1"
    key_vars = ("GROQ_API_KEY",)
    signup = "https://console.groq.com/keys"
    models_override_var = "GROQ_FREE_MODELS_OVERRIDE"
    models = (
        Model("llama-3.3-70b-versatile", 131072),
        Model("openai/gpt-oss-120b", 131072),
        Model("openai/gpt-oss-20b", 131072),
        Model("qwen/qwen3-32b", 131072),
        Model("meta-llama/llama-4-scout-17b-16e-instruct", 131072, vision=True),
        Model("llama-3.1-8b-instant", 131072),
    )
    families = {
        "llama-3.3-70b": "llama-3.3-70b-versatile",
        "llama-3.1-8b": "llama-3.1-8b-instant",
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "gpt-oss-20b": "openai/gpt-oss-20b",
    }
    stream_usage = True
    rules = (
        # Daily caps are rolling windows, not midnight resets: trust the hint, at least a minute.
        Rule(QUOTA, (429,), r"\((?:TPD|RPD)\)|per day", scope=KEY_MODEL, floor=60),
        Rule(QUOTA, (429,), header=("x-ratelimit-remaining-requests", "0"), scope=KEY_MODEL,
             floor=60),
        Rule(RATE_LIMIT, (429,), scope=KEY_MODEL),
        Rule(CONTEXT, (413,), r"Request too large"),
        Rule(CLIENT, (413,)),
        Rule(CONTEXT, (400,), r"context_length_exceeded"),
        Rule(MODEL_NOT_FOUND, (404,), scope=MODEL, cooldown=86400),
        Rule(UPSTREAM, (498,), scope=MODEL, cooldown=20),
    )
