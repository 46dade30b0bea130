/* keyfile.h - CURVE key files, shared by forqd (its server key pair) and its clients (forq keygen,
 * --key, --server-key). A key file is text:
 *
 *   # forq CURVE key pair: keep this file secret (made by forq keygen)
 *   public-key = <40 Z85 characters>
 *   secret-key = <40 Z85 characters>
 *
 * A public-only file (a server key that clients pin) has just the public-key line. Lines are
 * `name = value` (spaces around '=' optional), blank, or comments whose first non-blank character
 * is '#'; each name at most once; nothing else. Keys are canonical Z85 (as zmq_z85_encode writes
 * them) of 32 bytes. A file with a secret key must not be open to group or others (mode 0600, as
 * keyfile_generate makes it), and its public key, when given, must be the secret key's.
 *
 * Library code: never logs, never exits; errors are one line in the caller's buffer, "PATH:LINE:
 * what is wrong; what to do" (or "PATH: ..." when no line is to blame). Thread-safe (no state). */
#ifndef FORQ_KEYFILE_H
#define FORQ_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#define FORQ_KEY_Z85     41         /* 40 characters and a NUL */
#define KEYFILE_SIZE_MAX (16 << 10) /* bytes in a key file (read on the stack) */

/* Write a new key pair (zmq_curve_keypair) to path, mode 0600, refusing to overwrite an existing
 * file (O_EXCL) unless force (then it replaces the file atomically: a new file renamed over
 * it). pub_out gets the public key (NUL-terminated). Returns 0, or -errno with err set: -EEXIST
 * (the file exists, not force), -ENOTSUP (libzmq has no CURVE), or the failing call's error. On
 * failure no file is left behind and an existing one is untouched. */
int keyfile_generate(const char *path, bool force, char pub_out[FORQ_KEY_Z85], char *err,
                     size_t errlen);

/* Read a key file: pub always (from the file, or computed from the secret key when the file has
 * only that), sec when present (sec[0] == 0 otherwise; sec may be NULL when the caller wants only
 * the public key, the permission check below still applies). A file with a secret key that group or
 * others may access is refused with a message saying chmod 600. Returns 0, or -1 with err
 * ("PATH:LINE: ...") and errno: ENOENT (no such file: forqd makes its key then), EACCES/EPERM
 * (cannot open; loose permissions: EPERM), EINVAL (not a valid key file), EFBIG (larger than
 * KEYFILE_SIZE_MAX). Outputs are untouched on failure. */
int keyfile_read(const char *path, char pub[FORQ_KEY_Z85], char sec[FORQ_KEY_Z85], char *err,
                 size_t errlen);

/* A server key given as 40 Z85 characters or as the path of a key file (read as keyfile_read:
 * a key file with a secret key must be mode 0600 too): its public key into pub. A string that
 * is a valid key is taken as one, even if a file of that name exists. 0, or -1 with err. */
int keyfile_public(const char *key_or_path, char pub[FORQ_KEY_Z85], char *err, size_t errlen);

/* The public key of a secret key (zmq_curve_public), both 40 Z85 characters and a NUL. 0, or
 * -EINVAL (not a canonical Z85 key), -ENOTSUP (libzmq has no CURVE); pub untouched then. */
int keyfile_public_of(const char sec[FORQ_KEY_Z85], char pub[FORQ_KEY_Z85]);

/* Is s (NUL-terminated) a key: exactly 40 characters of canonical Z85 (decoding to 32 bytes
 * that encode back to s)? */
bool keyfile_is_key(const char *s);

#endif
