"""A PEP 517 build backend in the standard library only, for this package.

Why: ``pip install ./sdk/python`` must work with no package index (pip's
isolated build would fetch setuptools) and with any Python >= 3.9. The
package is pure Python, so a wheel is a zip of ``conq/`` and
``conq_client.py`` plus the dist-info files; nothing else is needed.
Supports build_wheel, build_sdist and build_editable (PEP 660, a .pth).
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_TAG = "py3-none-any"


def _project():
    with open(os.path.join(_HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    proj = text[text.index("[project]"):]

    def field(name):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(name), proj, re.M)
        return m.group(1) if m else None

    return {"name": field("name"), "version": field("version"), "summary": field("description"),
            "requires_python": field("requires-python")}


def _sources():
    """(path in the archive, path on disk) of every file of the package."""
    out = []
    pkg = os.path.join(_HERE, "conq")
    for root, dirs, files in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith((".py", ".typed")):
                full = os.path.join(root, f)
                out.append((os.path.relpath(full, _HERE).replace(os.sep, "/"), full))
    out.append(("conq_client.py", os.path.join(_HERE, "conq_client.py")))
    return out


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"], "Version: %s" % p["version"]]
    if p["summary"]:
        lines.append("Summary: %s" % p["summary"])
    if p["requires_python"]:
        lines.append("Requires-Python: %s" % p["requires_python"])
    lines.append("Classifier: Typing :: Typed")
    readme = os.path.join(_HERE, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return ("\n".join(lines) + "\n\n" + body).encode("utf-8")


def _wheel_meta():
    return ("Wheel-Version: 1.0\nGenerator: conq build_backend\nRoot-Is-Purelib: true\nTag: %s\n" % _TAG).encode()


def _dist_info(p):
    return "%s-%s.dist-info" % (p["name"], p["version"])


def _write_wheel(wheel_directory, files):
    """files: list of (archive name, bytes). Adds RECORD; returns the name."""
    p = _project()
    di = _dist_info(p)
    files = list(files) + [(di + "/METADATA", _metadata(p)), (di + "/WHEEL", _wheel_meta())]
    record = []
    name = "%s-%s-%s.whl" % (p["name"], p["version"], _TAG)
    os.makedirs(wheel_directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (arc, digest, len(data)))
        record.append(di + "/RECORD,,")
        z.writestr(zipfile.ZipInfo(di + "/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return name


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    d = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "wb") as f:
        f.write(_metadata(p))
    with open(os.path.join(d, "WHEEL"), "wb") as f:
        f.write(_wheel_meta())
    return _dist_info(p)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(arc, _read(full)) for arc, full in _sources()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [("conq_editable.pth", (_HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = "%s-%s" % (p["name"], p["version"])
    name = base + ".tar.gz"
    os.makedirs(sdist_directory, exist_ok=True)
    extra = [(f, os.path.join(_HERE, f)) for f in ("pyproject.toml", "build_backend.py", "README.md")
             if os.path.exists(os.path.join(_HERE, f))]
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for arc, full in _sources() + extra:
            data = _read(full)
            ti = tarfile.TarInfo(base + "/" + arc)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1577836800
            t.addfile(ti, io.BytesIO(data))
        pkg = _metadata(p)
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg)
        ti.mode = 0o644
        t.addfile(ti, io.BytesIO(pkg))
    return name
