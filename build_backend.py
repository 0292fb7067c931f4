"""FreeRide's build backend (PEP 517), so `pip install .` works offline with nothing to fetch.

pyproject.toml names this file as the backend (`backend-path = ["."]`, `requires = []`), so
pip needs no setuptools and no wheel package: a machine with Python 3.10 and pip, and no
network, can install FreeRide. (setuptools would need both, and Python 3.12 and newer ship
neither.) A pure-Python project of one module and two packages needs no more than this: a
wheel is a zip of those files plus METADATA, WHEEL, entry_points.txt and RECORD.

The metadata comes from the [project] table of pyproject.toml; [tool.freeride] names the
modules and packages that go in, and the folders of data files that go beside them (the
status page's dashboard/, found next to freeride.py by its loader). Python 3.10 has no tomllib, so a small reader below takes
the part of TOML that file uses (tables, strings, arrays, inline tables, booleans, integers).
Builds are reproducible: sorted entries, fixed timestamps and modes. Standard library only.
"""
import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # a build tool, never part of the zipapp
DATE = (1980, 1, 1, 0, 0, 0)
SDIST_EXTRA = ("pyproject.toml", "README.md", "build_backend.py", "install.sh")


# ------------------------------------------------------------------------ pyproject.toml

class TomlError(ValueError):
    pass


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"true|false|[+-]?\d+")
_JSON = json.JSONDecoder()


def read_toml(text):
    """The document as nested dicts (the subset of TOML described in the module docstring)."""
    doc, i = {}, 0
    table = doc
    while True:
        i = _skip(text, i, newlines=True)
        if i >= len(text):
            return doc
        if text[i] == "[":
            end = text.index("]", i)
            table = doc
            for part in _dotted(text[i + 1:end], text, i):
                table = table.setdefault(part, {})
            i = end + 1
        else:
            key, i = _key(text, i)
            i = _expect(text, _skip(text, i), "=")
            table[key], i = _value(text, _skip(text, i))
        i = _skip(text, i)
        if i < len(text) and text[i] != "\n":
            raise _error(text, i, "expected the end of the line")


def _skip(text, i, newlines=False):
    """Past spaces and comments (and newlines, when they do not end a statement)."""
    while i < len(text):
        if text[i] in " \t\r" or (newlines and text[i] == "\n"):
            i += 1
        elif text[i] == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
        else:
            break
    return i


def _dotted(header, text, i):
    parts = [p.strip() for p in header.split(".")]
    if not all(_BARE_KEY.fullmatch(p) for p in parts):
        raise _error(text, i, "unsupported table name")
    return parts


def _key(text, i):
    if text[i] == '"':
        return _JSON.raw_decode(text, i)
    match = _BARE_KEY.match(text, i)
    if not match:
        raise _error(text, i, "expected a key")
    return match.group(), match.end()


def _expect(text, i, char):
    if text[i:i + 1] != char:
        raise _error(text, i, f"expected {char!r}")
    return i + 1


def _value(text, i):
    if text.startswith('"""', i) or text.startswith("'''", i):
        raise _error(text, i, "multi-line strings are not supported")
    if text[i:i + 1] == '"':
        return _JSON.raw_decode(text, i)
    if text[i:i + 1] == "'":
        end = text.find("'", i + 1)
        if end < 0 or "\n" in text[i:end]:
            raise _error(text, i, "unterminated string")
        return text[i + 1:end], end + 1
    if text[i:i + 1] == "[":
        items, i = [], _skip(text, i + 1, newlines=True)
        while text[i:i + 1] != "]":
            item, i = _value(text, i)
            items.append(item)
            i = _skip(text, i, newlines=True)
            if text[i:i + 1] == ",":
                i = _skip(text, i + 1, newlines=True)
            elif text[i:i + 1] != "]":
                raise _error(text, i, "expected ',' or ']'")
        return items, i + 1
    if text[i:i + 1] == "{":
        table, i = {}, _skip(text, i + 1)
        while text[i:i + 1] != "}":
            key, i = _key(text, i)
            i = _skip(text, _expect(text, _skip(text, i), "="))
            table[key], i = _value(text, i)
            i = _skip(text, i)
            if text[i:i + 1] == ",":
                i = _skip(text, i + 1)
            elif text[i:i + 1] != "}":
                raise _error(text, i, "expected ',' or '}'")
        return table, i + 1
    match = _SCALAR.match(text, i)
    if not match:
        raise _error(text, i, "unsupported value")
    word = match.group()
    return (word == "true") if word in ("true", "false") else int(word), match.end()


def _error(text, i, what):
    line = text.count("\n", 0, i) + 1
    return TomlError(f"pyproject.toml line {line}: {what} (build_backend.py reads a TOML subset)")


# ------------------------------------------------------------------------ what goes in

class Project:
    """pyproject.toml, read once: metadata, the files to ship and the commands to create."""

    def __init__(self, root=ROOT):
        self.root = Path(root)
        doc = read_toml((self.root / "pyproject.toml").read_text(encoding="utf-8"))
        self.meta = doc["project"]
        self.name = self.meta["name"]
        self.version = self.meta["version"]
        self.dist = re.sub(r"[-_.]+", "_", self.name).lower()  # as in file names
        self.dist_info = f"{self.dist}-{self.version}.dist-info"
        self.wheel_name = f"{self.dist}-{self.version}-py3-none-any.whl"
        self.scripts = self.meta.get("scripts", {})
        tool = doc.get("tool", {}).get("freeride", {})
        self.modules = tool.get("py-modules", [])
        self.packages = tool.get("packages", [])
        self.data = tool.get("data", [])

    def sources(self):
        """The relative paths of the modules, of each package's .py files and of the files
        in each data folder."""
        paths = [f"{m}.py" for m in self.modules]
        for package in self.packages:
            paths += sorted(p.relative_to(self.root).as_posix()
                            for p in (self.root / package).glob("*.py"))
        for folder in self.data:
            paths += sorted(p.relative_to(self.root).as_posix()
                            for p in (self.root / folder).iterdir() if p.is_file())
        return paths

    def metadata(self):
        """METADATA (core metadata 2.1), the README as the long description."""
        fields = [("Metadata-Version", "2.1"), ("Name", self.name), ("Version", self.version)]
        if self.meta.get("description"):
            fields.append(("Summary", self.meta["description"]))
        if self.meta.get("requires-python"):
            fields.append(("Requires-Python", self.meta["requires-python"]))
        license_ = self.meta.get("license")
        if isinstance(license_, dict) and license_.get("text"):
            fields.append(("License", license_["text"]))
        fields += [("Classifier", c) for c in self.meta.get("classifiers", [])]
        fields += [("Requires-Dist", d) for d in self.meta.get("dependencies", [])]
        text = "".join(f"{k}: {v}\n" for k, v in fields)
        readme = self.meta.get("readme")
        if readme:
            text += "Description-Content-Type: text/markdown\n\n"
            text += (self.root / readme).read_text(encoding="utf-8")
        return text.encode()

    def dist_info_files(self):
        entry_points = "[console_scripts]\n" + "".join(
            f"{name} = {target}\n" for name, target in self.scripts.items())
        wheel = ("Wheel-Version: 1.0\nGenerator: FreeRide build_backend.py\n"
                 "Root-Is-Purelib: true\nTag: py3-none-any\n")
        return {f"{self.dist_info}/METADATA": self.metadata(),
                f"{self.dist_info}/WHEEL": wheel.encode(),
                f"{self.dist_info}/entry_points.txt": entry_points.encode()}


def _zip(files):
    """A zip of {name: bytes} that is the same for the same files."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=DATE)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=9)
    return out.getvalue()


def _wheel(project, files, directory):
    """Write a wheel of files plus the .dist-info (RECORD last); returns its file name."""
    files = {**files, **project.dist_info_files()}
    record = f"{project.dist_info}/RECORD"
    lines = []
    for name in sorted(files):
        digest = base64.urlsafe_b64encode(hashlib.sha256(files[name]).digest()).rstrip(b"=")
        lines.append(f"{name},sha256={digest.decode()},{len(files[name])}\n")
    files[record] = ("".join(lines) + f"{record},,\n").encode()
    (Path(directory) / project.wheel_name).write_bytes(_zip(files))
    return project.wheel_name


# ------------------------------------------------------------------------ PEP 517 hooks

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = Project()
    return _wheel(project, {p: (project.root / p).read_bytes() for p in project.sources()},
                  wheel_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a wheel whose .pth file puts this checkout on sys.path."""
    project = Project()
    return _wheel(project, {f"{project.dist}.pth": f"{project.root}\n".encode()}, wheel_directory)


def build_sdist(sdist_directory, config_settings=None):
    project = Project()
    base = f"{project.dist}-{project.version}"
    files = {p: (project.root / p).read_bytes() for p in [*SDIST_EXTRA, *project.sources()]}
    files["PKG-INFO"] = project.metadata()
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(f"{base}/{name}")
            info.size, info.mtime = len(files[name]), 315532800  # 1980-01-01, like the zips
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    name = f"{base}.tar.gz"
    (Path(sdist_directory) / name).write_bytes(gzip.compress(tar.getvalue(), mtime=0))
    return name
