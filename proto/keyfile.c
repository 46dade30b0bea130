/* keyfile.c - see keyfile.h. A key file is small: it is read whole into a stack buffer, parsed
 * line by line, and every buffer that held a secret key is wiped (explicit_bzero) before it goes
 * out of scope. Keys are checked for canonical Z85 (decode, encode, compare), so one key has one
 * spelling and a damaged character is caught, not silently decoded to another key. */
#define _GNU_SOURCE
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_LEN 40 /* Z85 characters of a 32-byte key */

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Is [s, s + len) a canonical Z85 key? Its 32 bytes into raw when it is. */
static bool decode(const char *s, size_t len, uint8_t raw[32])
{
    char z85[KEY_LEN + 1], back[KEY_LEN + 1];
    bool ok;

    if (len != KEY_LEN || memchr(s, '\0', len))
        return false;
    memcpy(z85, s, len);
    z85[len] = '\0';
    ok = zmq_z85_decode(raw, z85) && zmq_z85_encode(back, raw, 32) &&
         memcmp(back, z85, KEY_LEN) == 0;
    explicit_bzero(z85, sizeof(z85));
    explicit_bzero(back, sizeof(back));
    return ok;
}

bool keyfile_is_key(const char *s)
{
    uint8_t raw[32];
    bool ok = s && strnlen(s, KEY_LEN + 1) == KEY_LEN && decode(s, KEY_LEN, raw);

    explicit_bzero(raw, sizeof(raw));
    return ok;
}

int keyfile_public_of(const char sec[FORQ_KEY_Z85], char pub[FORQ_KEY_Z85])
{
    char out[FORQ_KEY_Z85];

    if (!keyfile_is_key(sec))
        return -EINVAL;
    if (zmq_curve_public(out, sec) != 0)
        return errno == ENOTSUP ? -ENOTSUP : -EINVAL;
    memcpy(pub, out, FORQ_KEY_Z85);
    return 0;
}

/* ---- writing ---- */

/* Write all of buf to fd, then sync it. 0 or -errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t k = write(fd, buf, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        buf += k;
        len -= (size_t)k;
    }
    return fsync(fd) < 0 ? -errno : 0;
}

/* mkstemp's template for a file beside path: "PATH." and the six 'X' that mkstemp replaces
 * (MKSTEMP_XS, written out by memset rather than as a literal). 0, or -ENAMETOOLONG when it does
 * not fit in size bytes. */
#define MKSTEMP_XS 6
static int tmp_template(char *buf, size_t size, const char *path)
{
    size_t n = strlen(path);

    if (n + 1 + MKSTEMP_XS >= size)
        return -ENAMETOOLONG;
    memcpy(buf, path, n);
    buf[n] = '.';
    memset(buf + n + 1, 'X', MKSTEMP_XS);
    buf[n + 1 + MKSTEMP_XS] = '\0';
    return 0;
}

/* Sync the directory of path, so that a new name survives a crash (best effort). */
static void sync_dir(const char *path)
{
    char copy[4096];
    int fd;

    if (strlen(path) >= sizeof(copy))
        return;
    strcpy(copy, path);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int keyfile_generate(const char *path, bool force, char pub_out[FORQ_KEY_Z85], char *err,
                     size_t errlen)
{
    char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85], text[256], tmp[4200];
    const char *target = path;
    int fd, r = 0, n;

    if (zmq_curve_keypair(pub, sec) != 0) {
        r = -errno;
        say(err, errlen,
            "cannot make a CURVE key pair: %s; this libzmq lacks CURVE (zmq_has(\"curve\") "
            "is 0): install one built with libsodium",
            zmq_strerror(errno));
        return r ? r : -ENOTSUP;
    }
    n = snprintf(text, sizeof(text),
                 "# forq CURVE key pair: keep this file secret (made by forq keygen)\n"
                 "public-key = %s\nsecret-key = %s\n",
                 pub, sec);
    explicit_bzero(sec, sizeof(sec));

    if (force) { /* a new file renamed over the old one: never a half-written key */
        if (tmp_template(tmp, sizeof(tmp), path) < 0) {
            explicit_bzero(text, sizeof(text));
            say(err, errlen, "%s: path too long; use a shorter one", path);
            return -ENAMETOOLONG;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        target = tmp;
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0) {
        r = -errno;
        explicit_bzero(text, sizeof(text));
        if (r == -EEXIST)
            say(err, errlen,
                "%s already exists; a key file is never overwritten: remove it first or "
                "choose another file",
                path);
        else
            say(err, errlen, "%s: cannot create the key file: %s; check the directory", path,
                strerror(-r));
        return r;
    }
    /* exactly 0600 whatever the umask (which may have taken the owner's bits too) */
    if (fchmod(fd, 0600) < 0 || (r = write_all(fd, text, (size_t)n)) < 0) {
        if (r == 0)
            r = -errno;
    }
    explicit_bzero(text, sizeof(text));
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && force && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(target); /* ours: made by O_EXCL or mkostemp */
        say(err, errlen, "%s: cannot write the key file: %s; check the disk and the directory",
            path, strerror(-r));
        return r;
    }
    sync_dir(path);
    memcpy(pub_out, pub, FORQ_KEY_Z85);
    return 0;
}

/* ---- reading ---- */

/* Read the whole file (at most KEYFILE_SIZE_MAX bytes) into buf; its size into *len and its
 * mode into *mode. 0 or -1 with err and errno. */
static int slurp(const char *path, char *buf, size_t *len, mode_t *mode, char *err, size_t errlen)
{
    struct stat st;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    int e;

    if (fd < 0) {
        e = errno;
        if (e == ENOENT)
            say(err, errlen, "%s: no such key file; make one with forq keygen --out %s", path,
                path);
        else
            say(err, errlen, "%s: cannot read the key file: %s; check its permissions", path,
                strerror(e));
        errno = e;
        return -1;
    }
    if (fstat(fd, &st) < 0)
        st.st_mode = 0;
    if (!S_ISREG(st.st_mode)) {
        e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        say(err, errlen, "%s: not a key file (not a regular file); give the path of a file", path);
        close(fd);
        errno = e;
        return -1;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, KEYFILE_SIZE_MAX + 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            e = errno;
            say(err, errlen, "%s: cannot read the key file: %s; check the file", path, strerror(e));
            close(fd);
            errno = e;
            return -1;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n > KEYFILE_SIZE_MAX) {
            say(err, errlen,
                "%s: larger than %d KiB, too large for a key file; is it the right "
                "file?",
                path, KEYFILE_SIZE_MAX >> 10);
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    *len = n;
    *mode = st.st_mode;
    return 0;
}

/* A parsed key file. */
typedef struct {
    char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85];
    unsigned pub_line, sec_line; /* 0: absent */
} keys_t;

/* Parse one line (without its newline). 0 or -1 with err. */
static int parse_line(const char *path, unsigned line, const char *s, size_t len, keys_t *k,
                      char *err, size_t errlen)
{
    const char *end = s + len, *eq, *name, *val;
    size_t nlen, vlen;
    uint8_t raw[32];
    char *dst;
    unsigned *at;

    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    if (s == end || *s == '#')
        return 0;
    for (const char *p = s; p < end; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            say(err, errlen,
                "%s:%u: a control character (0x%02x); a key file is text: make a "
                "new one with forq keygen",
                path, line, (unsigned char)*p);
            return -1;
        }
    eq = memchr(s, '=', (size_t)(end - s));
    if (!eq) {
        say(err, errlen,
            "%s:%u: not a `name = value` line; a key file has public-key = KEY "
            "and secret-key = KEY",
            path, line);
        return -1;
    }
    name = s;
    for (nlen = (size_t)(eq - s); nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t');)
        nlen--;
    for (val = eq + 1; val < end && (*val == ' ' || *val == '\t');)
        val++;
    vlen = (size_t)(end - val);
    if (nlen == 10 && memcmp(name, "public-key", 10) == 0) {
        dst = k->pub;
        at = &k->pub_line;
    } else if (nlen == 10 && memcmp(name, "secret-key", 10) == 0) {
        dst = k->sec;
        at = &k->sec_line;
    } else {
        say(err, errlen,
            "%s:%u: unknown name '%.*s'; a key file has public-key = KEY and "
            "secret-key = KEY",
            path, line, (int)(nlen > 32 ? 32 : nlen), name);
        return -1;
    }
    if (*at) {
        say(err, errlen, "%s:%u: %.10s is given twice (line %u); keep one", path, line, name, *at);
        return -1;
    }
    if (vlen != KEY_LEN || !decode(val, vlen, raw)) {
        explicit_bzero(raw, sizeof(raw));
        if (vlen != KEY_LEN)
            say(err, errlen,
                "%s:%u: the %.10s has %zu character%s, a CURVE key 40 (Z85); copy "
                "it whole, or make a new pair with forq keygen",
                path, line, name, vlen, vlen == 1 ? "" : "s");
        else
            say(err, errlen,
                "%s:%u: the %.10s is not valid Z85 (a character outside the "
                "alphabet or a value too large); copy it again, or make a new pair with forq "
                "keygen",
                path, line, name);
        return -1;
    }
    explicit_bzero(raw, sizeof(raw));
    memcpy(dst, val, KEY_LEN);
    dst[KEY_LEN] = '\0';
    *at = line;
    return 0;
}

/* Parse the text of a key file into k, checking that the keys agree. 0 or -1 with err. */
static int parse(const char *path, const char *text, size_t len, keys_t *k, char *err,
                 size_t errlen)
{
    char derived[FORQ_KEY_Z85];
    unsigned line = 0;
    int r;

    for (size_t off = 0; off < len;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
        if (parse_line(path, ++line, text + off, n, k, err, errlen) < 0)
            return -1;
        off += n + (nl != NULL);
    }
    if (!k->pub_line && !k->sec_line) {
        say(err, errlen,
            "%s: no public-key or secret-key line; is it a forq key file? (forq "
            "keygen makes one)",
            path);
        return -1;
    }
    if (!k->sec_line)
        return 0;
    if ((r = keyfile_public_of(k->sec, derived)) < 0) {
        say(err, errlen,
            "%s:%u: cannot derive the public key from the secret key: %s; is "
            "libzmq built with CURVE?",
            path, k->sec_line, strerror(-r));
        return -1;
    }
    if (!k->pub_line) {
        memcpy(k->pub, derived, FORQ_KEY_Z85);
    } else if (strcmp(k->pub, derived) != 0) {
        say(err, errlen,
            "%s:%u: this public-key is not the secret-key's (line %u); the file "
            "is damaged: make a new pair with forq keygen",
            path, k->pub_line, k->sec_line);
        return -1;
    }
    return 0;
}

int keyfile_read(const char *path, char pub[FORQ_KEY_Z85], char sec[FORQ_KEY_Z85], char *err,
                 size_t errlen)
{
    char text[KEYFILE_SIZE_MAX + 1];
    keys_t k = {{0}};
    size_t len;
    mode_t mode;
    int r;

    if (slurp(path, text, &len, &mode, err, errlen) < 0)
        return -1;
    r = parse(path, text, len, &k, err, errlen);
    explicit_bzero(text, len);
    if (r == 0 && k.sec_line && (mode & 077)) {
        say(err, errlen,
            "%s: holds a secret key but group or others may access it (mode "
            "%04o); chmod 600 %s",
            path, (unsigned)(mode & 07777), path);
        errno = EPERM;
        r = -1;
    } else if (r < 0) {
        errno = EINVAL;
    }
    if (r == 0) {
        memcpy(pub, k.pub, FORQ_KEY_Z85);
        if (sec)
            memcpy(sec, k.sec, FORQ_KEY_Z85); /* "" when the file has no secret key */
    }
    explicit_bzero(&k, sizeof(k));
    return r;
}

int keyfile_public(const char *key_or_path, char pub[FORQ_KEY_Z85], char *err, size_t errlen)
{
    char sec[FORQ_KEY_Z85];
    struct stat st;
    int r;

    if (!key_or_path || !*key_or_path) {
        say(err, errlen,
            "no server key given; give its public key (forqd --show-key prints "
            "it) or its key file");
        return -1;
    }
    if (keyfile_is_key(key_or_path)) {
        memcpy(pub, key_or_path, FORQ_KEY_Z85);
        return 0;
    }
    if (stat(key_or_path, &st) < 0 && errno == ENOENT) {
        say(err, errlen,
            "'%.64s' is neither a CURVE public key (40 Z85 characters) nor a "
            "key file; give the server's public key (forqd --show-key prints it) or its file",
            key_or_path);
        return -1;
    }
    r = keyfile_read(key_or_path, pub, sec, err, errlen);
    explicit_bzero(sec, sizeof(sec));
    return r;
}
