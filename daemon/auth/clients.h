/* clients.h - the authorised-clients file: who may talk to forqd over tcp (by CURVE public key),
 * under which name, and with which rights. The ZAP handler looks a handshake's key up here; the
 * broker looks the name ZAP gave a message up here and asks what it may do.
 *
 * The file, parsed strictly (the first error stops it, reported as "PATH:LINE: what; what to do"):
 *
 *   # forq clients file: one client per line; '#' starts a comment; blank lines ignored
 *   # PUBLIC-KEY  NAME  [PERMISSION ...]
 *   #   PUBLIC-KEY  the client's CURVE public key, 40 Z85 characters (forq keygen prints it)
 *   #   NAME        1-64 of [A-Za-z0-9._-], unique; "local" is reserved (ipc clients)
 *   # permissions (none: the client may only ping and read stats of its own jobs):
 *   #   tasks=GLOB[,GLOB...]   tasks it may submit (fnmatch globs; "exec" only when named
 *   #                          exactly, never by a glob)
 *   #   read=GLOB[,GLOB...]    dicts it may read
 *   #   write=GLOB[,GLOB...]   dicts it may read and write
 *   #   admin                  other clients' jobs: status, cancel, wait, fetch, listing, purge
 *   #   node                   may join as a worker node on a --node-listen endpoint
 *   y7e0Z6rzqEalf#GC-adz)2ZxtC1^52^)yrXR8tzu  lab-01   tasks=count_*,sha256 read=* write=scratch
 *   Ah3%tHV]zuoupTmQ4mfC.BD9(?h2Yt%25}aNugc>  ops      admin tasks=*,exec
 *
 * Fields are separated by spaces or tabs. A '#' that begins a field starts a comment to the end
 * of the line; inside a field it is a character like any other (Z85 uses it, but a canonical
 * key never begins with it). Globs are separated by single commas, no spaces. Each permission
 * is given at most once per line. Lines are at most 4096 bytes; the file is plain text (no
 * control characters but tabs and a carriage return before the newline). Errors: a key or name
 * given twice, an unknown permission, an empty glob, an overlong line, a key that is not 40
 * canonical Z85 characters (the ones zmq_z85_encode writes, decoding to 32 bytes).
 *
 * Lookups by key and by name are uthash tables (O(1) on average); memory is proportional to the
 * file. Everything here runs in the broker thread; the table is immutable once parsed, so a
 * reload parses a new one and swaps it in whole (a bad file leaves the old one in force). */
#ifndef FORQ_AUTH_CLIENTS_H
#define FORQ_AUTH_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_LINE_MAX 4096       /* bytes in a line of the file, without its newline */
#define AUTH_NAME_MAX 64         /* bytes in a client's name */
#define AUTH_FILE_MAX (64 << 20) /* bytes in the file: 10,000 clients take about 1 MB */

typedef struct auth_client auth_client_t; /* one line of the file */
typedef struct auth_table auth_table_t;

/* What a client asks to do, for auth_missing(). */
typedef enum {
    AUTH_SUBMIT, /* submit a job of a task */
    AUTH_READ,   /* read a dict */
    AUTH_WRITE,  /* write a dict */
    AUTH_ADMIN,  /* act on other clients' jobs */
} auth_action_t;

/* Parse the text of a clients file (len bytes, any bytes; NULs are an error); path only names
 * it in errors. On success *ret is a new table the caller owns (auth_table_free) and 0 is
 * returned; otherwise -1, *ret untouched, and err holds the first error as one line
 * "PATH:LINE: what is wrong; what to do" (truncated to errlen). */
int auth_table_parse(const char *text, size_t len, const char *path, auth_table_t **ret, char *err,
                     size_t errlen);

/* Read and parse the file at path, as auth_table_parse(). Also errors, naming the path: a
 * missing file (saying how to make one), one that is not a regular file, is larger than
 * AUTH_FILE_MAX or is writable by group or others (anyone who can write it can let himself in:
 * chmod go-w). */
int auth_table_load(const char *path, auth_table_t **ret, char *err, size_t errlen);

/* Free the table and set *t to NULL; safe on NULL and twice. Every client pointer taken from it
 * dies with it. */
void auth_table_free(auth_table_t **t);

/* Clients in the table. */
size_t auth_table_count(const auth_table_t *t);

/* The i-th client, in the file's order (i < auth_table_count(t)); NULL past the end. Borrowed
 * from the table. */
const auth_client_t *auth_table_at(const auth_table_t *t, size_t i);

/* The client of a CURVE public key (32 bytes, as ZAP gives it); NULL when unknown or t is NULL.
 * Borrowed from the table. */
const auth_client_t *auth_by_key(const auth_table_t *t, const uint8_t key[32]);

/* The client of a name (NUL-terminated); NULL when unknown, t is NULL or name is "local" (see
 * auth_local()). Borrowed from the table. */
const auth_client_t *auth_by_name(const auth_table_t *t, const char *name);

/* The identity of ipc clients, "local": every right, exec and admin included. Static. */
const auth_client_t *auth_local(void);

/* The client's name (lives as long as c). */
const char *auth_name(const auth_client_t *c);

/* The client's public key, 32 bytes (lives as long as c); NULL for auth_local(). Lets a reload
 * tell a name whose key changed from one that stayed. */
const uint8_t *auth_key(const auth_client_t *c);

/* May c submit jobs of `task` (NUL-terminated)? A tasks= glob matches it (fnmatch, no flags);
 * "exec" only when a tasks= element is exactly "exec". False for c NULL. */
bool auth_may_submit(const auth_client_t *c, const char *task);

/* May c read the dict of that name (len bytes, not NUL-terminated)? A read= or write= glob
 * matches it. A name with a NUL byte matches nothing. False for c NULL. */
bool auth_may_read(const auth_client_t *c, const char *dict, size_t len);

/* May c write the dict (len bytes, not NUL-terminated)? A write= glob matches it. */
bool auth_may_write(const auth_client_t *c, const char *dict, size_t len);

/* May c act on other clients' jobs (status, cancel, wait, fetch, listing, purge)? */
bool auth_is_admin(const auth_client_t *c);
/* May it join as a worker node (the `node` role)? False for NULL and for local. */
bool auth_is_node(const auth_client_t *c);

/* The permission c lacks to do `action` on `name` (len bytes, not NUL-terminated; ignored for
 * AUTH_ADMIN), in words for a `forbidden` error: "tasks=count_primes", "read=results",
 * "write=results" or "admin". Written into buf (NUL-terminated, truncated to size; bytes of the
 * name that are not printable ASCII as '?'), which is returned; NULL when c may do it. */
const char *auth_missing(const auth_client_t *c, auth_action_t action, const char *name, size_t len,
                         char *buf, size_t size);

#endif
