"""Endpoints and CURVE keys, resolved as the forq command does, and a tcp forqd with CURVE and
a clients file: the right keys work, wrong ones fail at once with a one-line reason, rights are
enforced (Forbidden)."""
import os
import subprocess

import pytest

import forq
from forq import config
from conftest import FORQ_CLI, FORQD, Forqd, executor, free_port


def test_endpoint_resolution(monkeypatch):
    monkeypatch.delenv("FORQ_ENDPOINT", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    assert forq.resolve_endpoint() == "ipc:///run/user/4242/forq/forqd.sock"
    assert forq.resolve_endpoint("tcp://h:1") == "tcp://h:1"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/dir")       # not absolute: ignored
    assert forq.resolve_endpoint() == "ipc:///tmp/forq-%d/forqd.sock" % os.getuid()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert forq.resolve_endpoint() == "ipc:///tmp/forq-%d/forqd.sock" % os.getuid()
    monkeypatch.setenv("FORQ_ENDPOINT", "ipc:///x/y.sock")
    assert forq.resolve_endpoint() == "ipc:///x/y.sock"
    assert forq.resolve_endpoint("ipc:///given") == "ipc:///given"
    with pytest.raises(ValueError):
        forq.resolve_endpoint("udp://x")


def test_keyfile_from_forq_keygen(tmp_path):
    path = str(tmp_path / "k")
    out = subprocess.run([FORQ_CLI, "keygen", "--out", path], capture_output=True, text=True,
                         check=True)
    public, secret = config.read_keyfile(path)
    assert out.stdout.strip() == public and config.is_key(secret)
    mine = str(tmp_path / "mine")
    pub = forq.write_keyfile(mine)
    assert config.read_keyfile(mine)[0] == pub and oct(os.stat(mine).st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        forq.write_keyfile(mine)                # never overwritten


@pytest.mark.parametrize("text, error", [
    ("", "no public-key or secret-key line"),
    ("public-key = short\n", "not a CURVE key"),
    ("nonsense\n", "not a `name = value` line"),
    ("colour = blue\n", "unknown name"),
    ("public-key = {p}\npublic-key = {p}\n", "given twice"),
    ("public-key = {o}\nsecret-key = {s}\n", "not the secret-key's"),
])
def test_keyfile_errors(tmp_path, text, error):
    import zmq
    p, s = (k.decode() for k in zmq.curve_keypair())
    o = zmq.curve_keypair()[0].decode()
    path = tmp_path / "bad"
    path.write_text(text.format(p=p, s=s, o=o))
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match=error):
        config.read_keyfile(str(path))


def test_keyfile_permissions_and_defaults(tmp_path, monkeypatch):
    path = str(tmp_path / "k")
    forq.write_keyfile(path)
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        config.read_keyfile(path)
    os.chmod(path, 0o600)
    for var in ("FORQ_KEY", "FORQ_SERVER_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert config.resolve_keys() is None
    with pytest.raises(ValueError, match="needs server_key"):
        config.resolve_keys(key=path)
    server = config.read_keyfile(path)[0]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with pytest.raises(ValueError, match="forq keygen"):
        config.resolve_keys(server_key=server)
    os.makedirs(tmp_path / "cfg" / "forq")
    os.rename(path, tmp_path / "cfg" / "forq" / "client.key")
    keys = config.resolve_keys(server_key=server)
    assert keys.server == server and keys.public == server
    with pytest.raises(ValueError, match="neither a CURVE public key"):
        config.resolve_keys(server_key="not-a-key")


@pytest.fixture(scope="module")
def curve_forqd(tmp_path_factory):
    """A tcp forqd with CURVE: a client 'alice' that may run is_prime/echo and write dict
    'shared', a client 'bob' with no rights."""
    tmp = str(tmp_path_factory.mktemp("curve"))
    keys = {}
    for who in ("alice", "bob", "stranger"):
        path = os.path.join(tmp, who + ".key")
        keys[who] = (forq.write_keyfile(path), path)
    clients = os.path.join(tmp, "clients")
    with open(clients, "w") as f:
        f.write("%s alice tasks=is_prime,echo write=shared\n" % keys["alice"][0])
        f.write("%s bob\n" % keys["bob"][0])
    os.chmod(clients, 0o644)
    server_key = os.path.join(tmp, "server.key")
    pub = subprocess.run([FORQD, "--show-key", "--server-key", server_key],
                         capture_output=True, text=True, check=True).stdout.strip()
    d = Forqd("--clients", clients, "--server-key", server_key,
              listen="tcp://127.0.0.1:%d" % free_port(), tmp=tmp)
    yield d, pub, server_key, {k: v[1] for k, v in keys.items()}
    assert d.stop() == 0, d.logtext()
    d.remove()

def test_curve_connects_and_rights(curve_forqd):
    d, pub, _, keys = curve_forqd
    with executor(d.endpoint, key=keys["alice"], server_key=pub) as ex:
        assert ex.submit("is_prime", 10_000_019).result(5) is True
        with pytest.raises(forq.Forbidden) as e:
            ex.submit("sleep", 0).result(5)
        assert e.value.code == "forbidden" and "sleep" in e.value.message
        shared = forq.Dict("shared", executor=ex)
        shared["k"] = 1
        assert shared.incr("k") == 2
        with pytest.raises(forq.Forbidden):
            forq.Dict("private", executor=ex)["k"] = 1
        assert ex.stats()["identity"] == "alice"


def test_curve_from_the_environment(curve_forqd, monkeypatch):
    d, _, server_key_file, keys = curve_forqd
    monkeypatch.setenv("FORQ_ENDPOINT", d.endpoint)
    monkeypatch.setenv("FORQ_SERVER_KEY", server_key_file)        # a file works too
    monkeypatch.setenv("FORQ_KEY", keys["bob"])
    with executor(None) as ex:
        assert ex.stats()["identity"] == "bob"
        with pytest.raises(forq.Forbidden):
            ex.submit("echo", 1).result(5)


def test_curve_refusals_say_why(curve_forqd):
    d, pub, _, keys = curve_forqd
    # each refusal is said as soon as a handshake shows it; the first attempts may not (a
    # server that closes first can reset the greeting away), so there is time for a few
    with pytest.raises(forq.ConnectionError, match="requires CURVE"):
        forq.Executor(d.endpoint, connect_timeout=10)
    with pytest.raises(forq.ConnectionError, match="clients file"):
        forq.Executor(d.endpoint, key=keys["stranger"], server_key=pub, connect_timeout=10)
    wrong = config.read_keyfile(keys["bob"])[0]                   # not forqd's key
    with pytest.raises(forq.ConnectionError, match="server key"):
        forq.Executor(d.endpoint, key=keys["alice"], server_key=wrong, connect_timeout=10)
