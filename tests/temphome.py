"""A temporary home directory for the agent commands, and `freeride` run inside it.

The command runs in-process through freeride.main() with os.environ replaced by the test's
own variables (HOME and every agent variable point into the temp dir, so the real home is
never read or written) and the working directory set to the temp home.
"""
import contextlib
import io
import os
import shutil
import socket
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import freeride


def closed_port():
    """A loopback port nothing listens on (so no real gateway answers the tests)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


class HomeTest(unittest.TestCase):
    """Base class: self.home (a temp dir, also the working directory), self.env, self.run()."""

    def setUp(self):
        self.home = Path(tempfile.mkdtemp(prefix="freeride-home-")).resolve()
        self.addCleanup(shutil.rmtree, self.home, True)
        self.port = closed_port()
        self.env = {"HOME": str(self.home), "FREERIDE_HOME": str(self.home / ".freeride"),
                    "FREERIDE_PORT": str(self.port), "XDG_CONFIG_HOME": str(self.home / ".config"),
                    "PATH": os.environ.get("PATH", ""), "FREERIDE_LOCAL": "0"}
        self.cwd = self.home

    def run_cli(self, *argv, **env):
        out, err = io.StringIO(), io.StringIO()
        before = os.getcwd()
        os.chdir(self.cwd)
        try:
            with mock.patch.dict(os.environ, {**self.env, **env}, clear=True), \
                    contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = freeride.main(list(argv))
        finally:
            os.chdir(before)
        return Result(code, out.getvalue(), err.getvalue())

    def write(self, relative, text, mode=0o644):
        path = self.home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        path.chmod(mode)
        return path

    def snapshot(self):
        """Every file under the temp home: its bytes and mode."""
        return {str(p.relative_to(self.home)): (p.read_bytes(), p.stat().st_mode & 0o7777)
                for p in sorted(self.home.rglob("*")) if p.is_file()}

    def backups(self, path):
        return sorted(path.parent.glob(path.name + ".freeride-backup-*"))
