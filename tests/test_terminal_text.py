"""`freeride watch` and `freeride status` print text that comes from clients and providers
(model names, error messages, cooldown reasons): its control characters are shown escaped, so
that it cannot clear the screen, retitle the terminal or overwrite a line, while the colours
FreeRide adds itself stay."""
import argparse
import contextlib
import io
import json
import re
import shutil
import tempfile
import time
import unittest
from pathlib import Path

import freeride
from tests.support import clean_env, run_cli
from tests.temphome import closed_port

# Clear the screen, set the window title (ended by BEL), return to the line start, DEL, and a
# CSI as its one-byte C1 form.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\rover\x7f\x9b2K"
SHOWN = r"\x1b[2J\x1b]0;pwned\x07\x0dover\x7f\x9b2K"
CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every C0 but the line end, DEL, C1
COLOUR = re.compile(r"\x1b\[\d+m")


class TtyText(io.StringIO):
    def isatty(self):
        return True


class TerminalTextTest(unittest.TestCase):
    def setUp(self):
        self.home = Path(tempfile.mkdtemp(prefix="freeride-test-"))
        self.addCleanup(shutil.rmtree, self.home, True)
        self.env = clean_env(FREERIDE_HOME=str(self.home), FREERIDE_PORT=str(closed_port()),
                             OPENROUTER_API_KEY="or-k1")

    def events(self):
        now = time.time()
        rows = [{"event": "request", "model": HOSTILE, "stream": True},
                {"event": "attempt", "provider": "openrouter", "key": 0, "model": HOSTILE},
                {"event": "skip", "provider": HOSTILE, "key": HOSTILE, "model": HOSTILE,
                 "class": HOSTILE, "cooldown_s": 5},
                {"event": "result", "provider": "openrouter", "key": 0, "ok": False, "ms": 9,
                 "class": HOSTILE},
                {"event": "interrupted", "provider": "openrouter", "outcome": HOSTILE},
                {"event": "failed", "status": 502, "message": HOSTILE},
                {"event": HOSTILE, "detail": [HOSTILE]}]
        return [{"ts": now, "req": "req_" + HOSTILE, **row} for row in rows]

    def cool(self):
        row = {"provider": "openrouter", "key": freeride.key_id("openrouter", "or-k1"),
               "model": HOSTILE, "until": time.time() + 600, "class": "RATE_LIMIT",
               "reason": "upstream said: " + HOSTILE}
        (self.home / "cooldown.json").write_text(json.dumps({"version": 1, "cooldowns": [row]}))

    def assert_shown_escaped(self, text):
        self.assertEqual(CONTROLS.findall(COLOUR.sub("", text)), [], text)
        self.assertIn(SHOWN, text)

    def test_watch_shows_control_characters_in_events_escaped(self):
        events = self.events()
        (self.home / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        result = run_cli("watch", "--since-start", "--count", str(len(events)), env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(len(lines), len(events), lines)
        for line in lines:
            self.assert_shown_escaped(line)

    def test_watch_keeps_its_own_colours(self):
        paint = freeride.Paint(TtyText(), {})
        for event in self.events():
            line = freeride.render_event(event, paint)
            self.assert_shown_escaped(line)
        failed = freeride.render_event(self.events()[5], paint)
        self.assertTrue(failed.split("  ", 1)[1].startswith("\x1b[31m■ failed 502: "), failed)

    def test_status_shows_control_characters_in_a_cooldown_escaped(self):
        self.cool()
        result = run_cli("status", env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("RATE_LIMIT", result.stdout)
        self.assert_shown_escaped(result.stdout)
        self.assertIn("upstream said: " + SHOWN, result.stdout)

    def test_status_keeps_its_own_colours(self):
        self.cool()
        out = TtyText()
        env = {k: v for k, v in self.env.items() if k != "NO_COLOR"}
        with contextlib.redirect_stdout(out):
            code = freeride.cmd_status(argparse.Namespace(json=False, url=None),
                                       freeride.Config(env=env))
        self.assertEqual(code, 0)
        self.assertIn("\x1b[33mRATE_LIMIT\x1b[0m", out.getvalue())
        self.assert_shown_escaped(out.getvalue())


if __name__ == "__main__":
    unittest.main()
