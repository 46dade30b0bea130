"""forq_build - the PEP 517 build backend of the forq package: builds the wheel (and an sdist,
and an editable install) with nothing but the standard library, so that `pip install ./python`
needs no network. The metadata comes from pyproject.toml's [project] table."""
import base64
import hashlib
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib
        return tomllib.loads(data.decode())["project"]
    except ImportError:                         # Python < 3.11: the few fields we use
        text = data.decode()
        get = lambda k: re.search(r'^%s = "([^"]*)"' % k, text, re.M).group(1)  # noqa: E731
        deps = re.search(r"^dependencies = \[(.*)\]", text, re.M).group(1)
        return {"name": get("name"), "version": get("version"),
                "description": get("description"), "requires-python": get("requires-python"),
                "dependencies": re.findall(r'"([^"]*)"', deps)}


def _metadata():
    p = _project()
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"], "Version: %s" % p["version"],
             "Summary: %s" % p.get("description", ""), "License: MIT",
             "Requires-Python: %s" % p.get("requires-python", ">=3.9")]
    lines += ["Requires-Dist: %s" % d for d in p.get("dependencies", [])]
    lines += ["Description-Content-Type: text/markdown", ""]
    with open(os.path.join(HERE, "README.md")) as f:
        lines.append(f.read())
    return p["name"], p["version"], "\n".join(lines)


def _sources():
    top = os.path.join(HERE, "forq")
    for name in sorted(os.listdir(top)):
        if name.endswith(".py") or name == "py.typed":
            yield "forq/" + name, os.path.join(top, name)


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def _wheel(wheel_directory, files):
    name, version, metadata = _metadata()
    dist = "%s-%s.dist-info" % (name, version)
    filename = "%s-%s-%s.whl" % (name, version, TAG)
    wheel = "Wheel-Version: 1.0\nGenerator: forq_build\nRoot-Is-Purelib: true\nTag: %s\n" % TAG
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w",
                         zipfile.ZIP_DEFLATED) as z:
        for arcname, data in list(files) + [(dist + "/METADATA", metadata.encode()),
                                            (dist + "/WHEEL", wheel.encode())]:
            z.writestr(arcname, data)
            record.append(_record_line(arcname, data))
        record.append(dist + "/RECORD,,")
        z.writestr(dist + "/RECORD", "\n".join(record) + "\n")
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for arcname, path in _sources():
        with open(path, "rb") as f:
            files.append((arcname, f.read()))
    return _wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable install: a .pth file that puts this python/ directory on sys.path."""
    return _wheel(wheel_directory, [("forq_editable.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    name, version, metadata = _metadata()
    base = "%s-%s" % (name, version)
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "_build/forq_build.py"] + \
                [a for a, _ in _sources()]:
            t.add(os.path.join(HERE, rel), arcname=base + "/" + rel)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        data = metadata.encode()
        info.size = len(data)
        import io
        t.addfile(info, io.BytesIO(data))
    return filename
