"""Changes to config files, planned before anything is written: the diff, the backup, the
atomic write, and the records of what unbind restores.

plan() runs each target's edit on its file's document, in memory, and gives one FileChange a
file; apply_all() shows each as a unified diff (secrets masked) and, unless it is a dry run,
writes it after a timestamped backup of the old content. The records in
$FREERIDE_HOME/bind/<agent>.json keep what each file held before the first bind, which unbind
puts back (a file bind made and that holds only what bind wrote gets no backup: unbind
deletes it, and then the folders bind made, once they are empty).
"""
import base64
import difflib
import hashlib
import itertools
import json
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

import agents
from agents import DEFAULT_AGENT_KEY
from agents.editors import (CannotEdit, TomlDocument, YamlDocument, _same, dump_json_config,
                            json_secrets, read_json_config)
from freeride import write_atomic

SECRET_KEYS = r"(?i)(api[-_]?key|token|secret|password)$"  # keys whose values a diff masks
LINE_EDITORS = {"yaml": YamlDocument, "toml": TomlDocument}


class FileChange(NamedTuple):
    """One file to write (after=None: to delete). before=None: the file does not exist.
    backup=False: what it holds is not kept before it is replaced (see bind_wrote)."""
    path: Path
    before: object
    after: object
    mode: int
    secrets: frozenset
    backup: bool = True


NONBLOCKING = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO does not wait (none on Windows)


def _read(path):
    """A config file's bytes; None if there is none. Only a regular file is read: a FIFO would
    wait for a writer and a device such as /dev/zero never ends. It is looked at before it
    is opened and again once open (without waiting), in case it was swapped in between."""
    try:
        _regular(path, os.stat(path).st_mode)
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | NONBLOCKING)) as f:
            _regular(path, os.fstat(f.fileno()).st_mode)
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CannotEdit(f"cannot read {path}: {e.strerror or e}") from None


def _regular(path, mode):
    if stat.S_ISDIR(mode):
        raise CannotEdit(f"{path} is a directory, not a config file")
    if not stat.S_ISREG(mode):
        raise CannotEdit(f"{path} is not a regular file (a FIFO, a device or a socket); "
                         "FreeRide edits only regular files")


def plan(targets):
    """The change each target's edit makes to its file, computed without writing anything."""
    changes = []
    for target in targets:
        path = target.path.resolve()  # a symlinked dotfile is edited where it really lives
        before = _read(path)
        try:
            text = before.decode("utf-8") if before is not None else ""
        except UnicodeDecodeError:
            raise CannotEdit(f"{path} is not UTF-8 text") from None
        if target.kind in LINE_EDITORS:
            doc = LINE_EDITORS[target.kind](text, str(path))
            target.edit(doc)
            after = doc.text()
        else:
            old, doc = read_json_config(text, str(path)), read_json_config(text, str(path))
            target.edit(doc)
            after = text if _same(old, doc) else dump_json_config(doc, text)
        mode = os.stat(path).st_mode & 0o7777 if before is not None else 0o600
        after = after.encode("utf-8")
        changes.append(FileChange(path, before, after, mode,
                                  secrets_in(path, before) | secrets_in(path, after)))
    return changes


def secrets_in(path, data):
    """The values in a config file a diff must not show: those of keys named like a key,
    token, secret or password, and every value of a JSON file an agent lists in its
    secret_files (llm's keys.json)."""
    try:
        text = (data or b"").decode("utf-8")
        if path.suffix == ".json":
            doc = read_json_config(text, str(path))
            found = json_secrets(doc, SECRET_KEYS)
            if any(path.name in agent.secret_files for agent in agents.REGISTRY.values()):
                found |= {v for k, v in doc.items()
                          if isinstance(v, str) and not k.startswith("//")}
        else:
            editor = TomlDocument if path.suffix == ".toml" else YamlDocument
            found = editor(text, str(path)).secrets(SECRET_KEYS)
    except (CannotEdit, UnicodeDecodeError):
        return frozenset()
    return frozenset(s for s in found if len(s) >= 8 and s != DEFAULT_AGENT_KEY
                     and not s.startswith("${"))


def show_diff(change, out):
    """The change as a unified diff, with secrets (the user's other keys) masked."""
    def lines(data):
        return data.decode("utf-8", "replace").splitlines(keepends=True) if data is not None else []
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in difflib.unified_diff(
                       lines(change.before), lines(change.after),
                       f"{change.path} (before)" if change.before is not None else "/dev/null",
                       str(change.path) if change.after is not None else "/dev/null"))
    for secret in sorted(change.secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    out.write(text)


def write_file(path, data, mode):
    """Replace path with data atomically; the file gets exactly `mode` (whatever the umask)."""
    write_atomic(path, data, mode)


def write_backup(path, data, mode):
    """A timestamped copy of a file's old content next to it, with its mode; its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        backup = path.with_name(f"{path.name}.freeride-backup-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(backup, mode)
        return backup


def apply(change):
    """Write one planned change, after a backup of what the file held; the backup's path."""
    if _read(change.path) != change.before:
        raise CannotEdit(f"{change.path} changed while FreeRide was editing it; run the "
                         "command again")
    backup = None
    if change.before is not None and change.backup:
        backup = write_backup(change.path, change.before, os.stat(change.path).st_mode & 0o7777)
    if change.after is None:
        change.path.unlink()
    else:
        write_file(change.path, change.after, change.mode)
    return backup


def apply_all(changes, dry_run, out):
    """Show each change as a diff and, unless dry_run, write it; False if nothing changed."""
    changes = [c for c in changes if c.after != c.before]
    for change in changes:
        show_diff(change, out)
    if dry_run and changes:
        out.write("(dry run: nothing was written)\n")
    if dry_run or not changes:
        return bool(changes)
    for change in changes:
        backup = apply(change)
        what = "deleted" if change.after is None else "wrote"
        out.write(f"{what} {change.path}" + (f" (backup of the old file: {backup})\n" if backup
                                              else " (new file)\n" if change.before is None
                                              else " (no backup: it held only what bind wrote)\n"))
    return True


# -- what unbind restores ---------------------------------------------------------------------

def records_path(config, agent):
    return config.home / "bind" / f"{agent}.json"


def load_records(config, agent):
    """{file path: what it held before the first bind} for an agent."""
    path = records_path(config, agent)
    try:
        doc = json.loads(path.read_bytes())
        return {row["path"]: row for row in doc["files"]}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CannotEdit(f"{path} (what unbind restores) cannot be read ({e}); fix or remove "
                         "it first") from None


def save_records(config, agent, records):
    path = records_path(config, agent)
    if records:
        write_atomic(path, json.dumps({"version": 1, "agent": agent,
                                       "files": list(records.values())}, indent=1).encode())
    elif path.exists():
        path.unlink()


def original(change):
    """The record of a file as it was before FreeRide first changed it; for a new file, also
    the folders that writing it makes, which unbind removes once they are empty again."""
    return {"path": str(change.path), "existed": change.before is not None,
            "mode": change.mode if change.before is not None else None,
            "content": base64.b64encode(change.before or b"").decode(),
            "dirs": missing_folders(change.path) if change.before is None else [],
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def missing_folders(path):
    """The folders above path that do not exist yet, the deepest first."""
    missing = []
    for folder in path.parents:
        if folder.exists():
            break
        missing.append(str(folder))
    return missing


def bind_wrote(row, data):
    """True if data is what bind last wrote into a file that bind made: nothing in it is the
    user's, so it is replaced or deleted without a backup (which would also keep its folder
    from being empty again)."""
    return bool(row) and not row["existed"] and data is not None \
        and hashlib.sha256(data).hexdigest() == row.get("written")


def remove_folders(folders, out):
    """Remove each folder bind made that is empty again, the deepest first; any other stays."""
    for folder in sorted(set(folders), key=len, reverse=True):
        try:
            os.rmdir(folder)
        except OSError:
            continue  # not empty (the user's files, a backup), or gone already
        out.write(f"deleted {folder} (an empty folder bind made)\n")
