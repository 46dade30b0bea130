"""config.py - where forqd is and which keys to use, resolved exactly as the forq command does.

* The endpoint: the one given, else ``$FORQ_ENDPOINT``, else
  ``ipc://$XDG_RUNTIME_DIR/forq/forqd.sock`` (when ``XDG_RUNTIME_DIR`` is an absolute path), else
  ``ipc:///tmp/forq-<uid>/forqd.sock`` - proto/endpoint.c.
* CURVE (tcp endpoints): forqd's public key from ``server_key`` (40 Z85 characters, or a file
  holding it) or ``$FORQ_SERVER_KEY``; with one, this client's key pair from ``key`` (a key file
  ``forq keygen`` wrote) or ``$FORQ_KEY``, else the default key file
  ``$XDG_CONFIG_HOME/forq/client.key`` (or ``~/.config/forq/client.key``) - client/cli/keys.c.
  Without a server key the connection is plaintext (ipc, or forqd ``--insecure-tcp``).

A key file is text: ``public-key = KEY`` and ``secret-key = KEY`` lines (``#`` comments, blank
lines, spaces around ``=``); a file that holds a secret key must not be readable by group or
others (proto/keyfile.c). Every error here is a :class:`ValueError` whose one line says what to
fix.
"""
from __future__ import annotations

import os
import stat
from typing import NamedTuple, Optional

import zmq
from zmq.utils import z85

KEY_LEN = 40                # Z85 characters of a 32-byte CURVE key
KEYFILE_SIZE_MAX = 4096     # a key file is small


class Keys(NamedTuple):
    """The CURVE keys of a connection: forqd's public key and this client's pair (Z85 text)."""
    server: str
    public: str
    secret: str


def default_endpoint() -> str:
    """forqd's default endpoint for this user (proto/endpoint.c)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/"):
        return "ipc://%s/forq/forqd.sock" % xdg
    return "ipc:///tmp/forq-%d/forqd.sock" % os.getuid()


def resolve_endpoint(endpoint: Optional[str] = None) -> str:
    """The endpoint to use: ``endpoint``, else ``$FORQ_ENDPOINT``, else the default."""
    ep = endpoint or os.environ.get("FORQ_ENDPOINT") or default_endpoint()
    if not (ep.startswith("ipc://") or ep.startswith("tcp://")):
        raise ValueError("endpoint %r must start with ipc:// or tcp://" % ep)
    return ep


def is_key(text: object) -> bool:
    """Is ``text`` a canonical Z85 CURVE key (40 characters that decode to 32 bytes and encode
    back the same)?"""
    if not isinstance(text, str) or len(text) != KEY_LEN:
        return False
    try:
        return z85.encode(z85.decode(text.encode("ascii"))).decode("ascii") == text
    except (ValueError, UnicodeError, KeyError, IndexError, TypeError):
        return False


def read_keyfile(path: str) -> tuple[str, str]:
    """The keys of a key file: ``(public, secret)``; ``secret`` is ``""`` when the file holds a
    public key only. Raises ValueError naming the file, the line and the fix. A leading ``~``
    is the home directory."""
    path = os.path.expanduser(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise ValueError("%s: no such key file; make one with forq keygen --out %s"
                         % (path, path)) from None
    except OSError as e:
        raise ValueError("%s: cannot read the key file: %s; check its permissions"
                         % (path, e.strerror)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("%s: not a key file (not a regular file); give the path of a file"
                             % path)
        data = os.read(fd, KEYFILE_SIZE_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > KEYFILE_SIZE_MAX:
        raise ValueError("%s: larger than %d KiB, too large for a key file; is it the right "
                         "file?" % (path, KEYFILE_SIZE_MAX >> 10))
    keys: dict[str, tuple[str, int]] = {}
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip(b" \t\r")
        if not line or line.startswith(b"#"):
            continue
        if any(c < 0x20 and c != 0x09 for c in line):
            raise ValueError("%s:%d: a control character; a key file is text: make a new one "
                             "with forq keygen" % (path, lineno))
        name, eq, value = line.partition(b"=")
        if not eq:
            raise ValueError("%s:%d: not a `name = value` line; a key file has public-key = KEY "
                             "and secret-key = KEY" % (path, lineno))
        name_s = name.strip(b" \t").decode("ascii", "replace")
        value_s = value.strip(b" \t").decode("ascii", "replace")
        if name_s not in ("public-key", "secret-key"):
            raise ValueError("%s:%d: unknown name '%.32s'; a key file has public-key = KEY and "
                             "secret-key = KEY" % (path, lineno, name_s))
        if name_s in keys:
            raise ValueError("%s:%d: %s is given twice (line %d); keep one"
                             % (path, lineno, name_s, keys[name_s][1]))
        if not is_key(value_s):
            raise ValueError("%s:%d: the %s is not a CURVE key (40 Z85 characters); copy it "
                             "whole, or make a new pair with forq keygen" % (path, lineno, name_s))
        keys[name_s] = (value_s, lineno)
    if not keys:
        raise ValueError("%s: no public-key or secret-key line; is it a forq key file? (forq "
                         "keygen makes one)" % path)
    public = keys.get("public-key", ("", 0))[0]
    secret = keys.get("secret-key", ("", 0))[0]
    if secret:
        derived = zmq.curve_public(secret.encode("ascii")).decode("ascii")
        if public and public != derived:
            raise ValueError("%s:%d: this public-key is not the secret-key's; the file is "
                             "damaged: make a new pair with forq keygen"
                             % (path, keys["public-key"][1]))
        public = derived
        if st.st_mode & 0o077:
            raise ValueError("%s: holds a secret key but group or others may access it (mode "
                             "%04o); chmod 600 %s" % (path, st.st_mode & 0o7777, path))
    return public, secret


def server_public_key(key_or_path: str) -> str:
    """forqd's public key from a Z85 key or from a file that holds it (forqd's key file, or a
    file with its ``public-key`` line)."""
    if is_key(key_or_path):
        return key_or_path
    if not os.path.exists(os.path.expanduser(key_or_path)):
        raise ValueError("%r is neither a CURVE public key (40 Z85 characters) nor a key file; "
                         "give the server's public key (forqd --show-key prints it) or its file"
                         % key_or_path[:64])
    return read_keyfile(key_or_path)[0]


def default_key_path() -> Optional[str]:
    """``$XDG_CONFIG_HOME/forq/client.key``, else ``~/.config/forq/client.key``; None without
    either directory."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    home = os.environ.get("HOME")
    if xdg:
        return os.path.join(xdg, "forq", "client.key")
    if home:
        return os.path.join(home, ".config", "forq", "client.key")
    return None


def resolve_keys(key: Optional[str] = None, server_key: Optional[str] = None) -> Optional[Keys]:
    """The CURVE keys to connect with, or None for plaintext (no server key given, none in
    ``$FORQ_SERVER_KEY``)."""
    server = server_key or os.environ.get("FORQ_SERVER_KEY")
    keyfile = key or os.environ.get("FORQ_KEY")
    if not server:
        if key:
            raise ValueError("key needs server_key (forqd's public key, which forqd --show-key "
                             "prints)")
        return None
    srv = server_public_key(server)
    if not keyfile:
        path = default_key_path()
        if not path or not os.path.exists(path):
            raise ValueError("with a server key, forq needs your key pair: give key=FILE "
                             "($FORQ_KEY), or make the default one with forq keygen")
        keyfile = path
    public, secret = read_keyfile(keyfile)
    if not secret:
        raise ValueError("%s holds no secret key: give the key file forq keygen wrote (its "
                         "public key alone is for forqd's clients file)" % keyfile)
    return Keys(srv, public, secret)


def write_keyfile(path: str) -> str:
    """Make a new CURVE key pair in a new file ``path`` (mode 0600, never overwritten), in the
    format of ``forq keygen``; returns the public key, for forqd's clients file."""
    public, secret = (k.decode("ascii") for k in zmq.curve_keypair())
    text = ("# forq CURVE key pair: keep this file secret (made by forq keygen)\n"
            "public-key = %s\nsecret-key = %s\n" % (public, secret))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return public
