/* wire.h - the forq wire protocol: limits, the structural check of untrusted msgpack, and the
 * header frame codec shared by forqd, its workers and libforq.
 *
 * A forq message is a multipart ZeroMQ message: one msgpack header frame (a flat map of short
 * string keys to scalars, see proto/PROTOCOL.md), then zero or more payload frames holding
 * msgpack values that the broker passes through untouched.
 *
 * Untrusted bytes never reach msgpack_unpack() directly: msgpack-c 4.0 reserves memory from the
 * element counts a container declares, before the elements arrive, so a 60-byte frame can make it
 * ask for gigabytes. wire_check() walks the bytes without allocating and proves that every
 * declared element is backed by remaining bytes and that nesting stays within a depth; only
 * then may the frame be unpacked, and the memory msgpack-c then takes is bounded by a small
 * multiple of the frame's size.
 *
 * Decoded headers borrow their strings from the frame: copy what must outlive it. */
#ifndef FORQ_WIRE_H
#define FORQ_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION     1
#define WIRE_HEADER_MAX  4096  /* bytes in a header frame */
#define WIRE_ID_MAX      64    /* bytes in a job id */
#define WIRE_TASK_MAX    64    /* bytes in a task name */
#define WIRE_TEXT_MAX    1024  /* bytes in an error type, message or reason */
#define WIRE_KEY_MAX     1024  /* bytes in a dict key */
#define WIRE_OP_MAX      16    /* bytes in a dict op name */
#define WIRE_PERMITS_MAX 10000 /* holders of one lock (a semaphore's permits) */
#define WIRE_KEYS_MAX    32    /* entries in a header map */
/* Nesting of a payload frame, every container counted (empty ones too): msgpack-c's unpacker
 * keeps at most 32 containers open (MSGPACK_EMBED_STACK_SIZE, compiled into libmsgpackc;
 * check_wire tests it), and every layer (broker, worker, dict, client) unpacks with it. */
#define WIRE_DEPTH_MAX 32
/* A value that forqd wraps before it goes out again (a dict value in an items page:
 * [[key, ver, value], ...]; a map item's result in its chunk: [[0, value], ...]). */
#define WIRE_VALUE_DEPTH_MAX (WIRE_DEPTH_MAX - 2)
#define WIRE_PRIORITY_MAX    9 /* priorities are 0..9, larger runs first */
#define WIRE_PRIORITY_DEF    5
#define WIRE_RETRIES_MAX     100
#define WIRE_PAYLOAD_DEF     (64u << 20) /* default limit of a payload frame */

/* Commands. Requests flow client -> broker, replies broker -> client, and the worker commands
 * between the broker and its workers. Values are internal; the wire carries the names. */
typedef enum {
    WIRE_CMD_NONE = 0,
    /* client -> broker */
    WIRE_SUBMIT,
    WIRE_CANCEL,
    WIRE_STATUS,
    WIRE_STATS,
    WIRE_PING,
    WIRE_FETCH,
    WIRE_DICT,
    WIRE_JOBS,  /* list live jobs (an admin sees every identity's) */
    WIRE_PURGE, /* admin: cancel queued jobs */
    /* broker -> client */
    WIRE_RESULT,
    WIRE_CANCEL_REPLY,
    WIRE_STATUS_REPLY,
    WIRE_STATS_REPLY,
    WIRE_PONG,
    WIRE_ERROR,
    WIRE_DICT_REPLY,
    WIRE_JOBS_REPLY,
    WIRE_PURGE_REPLY,
    WIRE_INVALIDATE, /* dict keys a client tracks changed (client-side caching, 6.8.1) */
    /* worker <-> broker */
    WIRE_READY,
    WIRE_JOB,
    WIRE_DONE,
    /* worker -> broker -> client */
    WIRE_PROGRESS,
    WIRE_CMD_COUNT_ /* not a command: one past the last (a name table is this long) */
} wire_cmd_t;

/* Terminal and live states of a job, as named on the wire. */
typedef enum {
    WIRE_ST_NONE = 0,
    WIRE_ST_QUEUED,
    WIRE_ST_RUNNING,
    WIRE_ST_OK,
    WIRE_ST_ERROR,
    WIRE_ST_CANCELLED,
    WIRE_ST_TIMEOUT,
    WIRE_ST_CRASHED,
    WIRE_ST_REJECTED,
    WIRE_ST_LOST,
    WIRE_ST_UNKNOWN,
    WIRE_ST_COUNT_
} wire_state_t;

/* A borrowed string: points into the frame it was decoded from, not NUL-terminated. */
typedef struct {
    const char *ptr; /* NULL when absent */
    size_t len;      /* bytes */
} wire_str_t;

/* A decoded or to-be-encoded header. Absent numeric fields are 0 unless their has_ flag says
 * otherwise; absent strings have ptr == NULL. One struct serves every command: each command
 * uses the fields PROTOCOL.md lists for it. A new field is a member here and one line of the
 * field table in wire.c, which drives both encode and decode. */
typedef struct {
    uint32_t version;     /* "v": protocol version */
    wire_cmd_t cmd;       /* "cmd" */
    wire_str_t id;        /* "id": job id */
    uint64_t req;         /* "req": request number echoed in the reply */
    bool has_req;         /* "req" was present */
    wire_str_t task;      /* "task": task name */
    uint64_t timeout_ms;  /* "timeout_ms": run timeout, 0 = none */
    uint64_t deadline_ms; /* "deadline_ms": queue deadline relative to receipt, 0 = none */
    uint32_t priority;    /* "priority": 0..9 */
    bool has_priority;    /* "priority" was present */
    uint32_t retries;     /* "retries": extra attempts after a crash */
    uint64_t max_result;  /* "max_result": result size limit in bytes, 0 = the broker's */
    uint64_t as_bytes;    /* "as_bytes": address-space limit of the job, 0 = none */
    uint64_t cpu_s;       /* "cpu_s": CPU-seconds limit of the job, 0 = none */
    wire_state_t state;   /* "status" of a result or status reply */
    wire_str_t code;      /* "code": machine-readable error or rejection code */
    wire_str_t etype;     /* "etype": error type raised by a task, e.g. "ValueError" */
    wire_str_t msg;       /* "msg": human-readable text */
    int64_t signal;       /* "signal": signal that ended a crashed job, 0 = none */
    int64_t exit_code;    /* "exit": exit code of a crashed job's worker */
    bool has_exit;        /* "exit" was present */
    uint32_t attempts;    /* "attempts": times the job was started */
    int64_t pid;          /* "pid": worker process id */
    uint64_t run_us;      /* "run_us": run time of the job in microseconds */
    wire_str_t outcome;   /* "outcome": what a cancel did */
    bool retire;          /* "retire": the worker exits after this reply */
    bool chunk;           /* "chunk": args is an array of calls, the result one entry each */
    wire_str_t next;      /* "next": done: the job the worker starts now (worker link) */
    uint64_t done;        /* "done": progress, units done */
    uint64_t total;       /* "total": progress, units in all (0 = unknown) */
    wire_str_t op;        /* "op": dict operation */
    wire_str_t name;      /* "name": dict name */
    wire_str_t key;       /* "key": dict key */
    uint64_t ver;         /* "ver": a value's version */
    bool has_ver;         /* "ver" was present */
    int64_t delta;        /* "delta": incr amount */
    bool has_delta;       /* "delta" was present */
    uint64_t limit;       /* "limit": page size */
    bool found;           /* "found": the key exists */
    uint64_t count;       /* "count": number of keys */
    bool more;            /* "more": keys remain after this page */
    uint64_t max_payload; /* "max_payload": pong: the largest payload frame forqd accepts */
    uint64_t instance;    /* "instance": pong: forqd's random id, new at every start */
    uint64_t age_ms;      /* "age_ms": status: since the job was accepted */
    uint64_t run_ms;      /* "run_ms": status: since the running job started */
    wire_str_t owner;     /* "owner": status: the identity that submitted the job */
    bool block;           /* "block": a shared-type op waits (for an item, room, the lock) */
    bool front;           /* "front": queue.put: at the front, the next get takes it */
    uint64_t maxsize;     /* "maxsize": queue.put: room for this many items, 0 = unbounded */
    uint64_t lease_ms;    /* "lease_ms": lock.acquire, lock.renew: the lease, 0 = default */
    uint64_t token;       /* "token": a lock's fencing token (granted, released, fencing) */
    bool has_token;       /* "token" was present */
    wire_str_t lock;      /* "lock": the lock whose token fences a change */
    uint32_t permits;     /* "permits": lock.acquire: holders at once (semaphore), 0 = 1 */
    uint64_t start;       /* "start": queue.range: the index of the first item */
    uint64_t of;          /* "of": queue/lock/event.withdraw: the req of the request withdrawn */
    bool has_of;          /* "of" was present */
    bool track;           /* "track": dict get: remember that this connection read the key and
                             tell it (invalidate) when the key changes */
    wire_str_t tags;      /* "tags": submit: comma-separated tags the executor must have */
} wire_hdr_t;

/* The field table (wire.c) that drives encode and decode, readable for tests and tools. */
typedef enum {
    WIRE_FK_VERSION, /* uint32_t "v": must be WIRE_VERSION; always written */
    WIRE_FK_CMD,     /* wire_cmd_t, written as its name */
    WIRE_FK_STATE,   /* wire_state_t, written as its name */
    WIRE_FK_STR,     /* wire_str_t of at most `max` bytes */
    WIRE_FK_UINT,    /* uint32_t or uint64_t (by `size`), at most `max` (0: the type's own) */
    WIRE_FK_INT,     /* int64_t */
    WIRE_FK_BOOL,    /* bool */
} wire_kind_t;

#define WIRE_NO_FLAG SIZE_MAX /* wire_field_t.has_off of a field without a has_ flag */

/* One header field. Encode writes a field when it is set (a string with ptr, a non-zero number,
 * true, a known name) or its has_ flag is, or the command is `always`; a field with `only` is
 * written for that command alone. Decode checks the kind and bound and sets the has_ flag. */
typedef struct {
    const char *key;   /* on the wire */
    wire_kind_t kind;  /* the member's type and what the value must be */
    uint64_t max;      /* upper bound (strings: bytes), 0 = the type's own */
    size_t off;        /* offset of the member in wire_hdr_t */
    size_t size;       /* bytes of the member */
    size_t has_off;    /* offset of its has_ flag, or WIRE_NO_FLAG */
    wire_cmd_t always; /* written for this command even when not set (WIRE_CMD_NONE: none) */
    wire_cmd_t only;   /* written for this command alone (WIRE_CMD_NONE: any command) */
    uint8_t klen;      /* strlen(key) */
} wire_field_t;

/* The field table, in the order encode writes the fields. Returns a static array of
 * *ret_count entries. */
const wire_field_t *wire_fields(size_t *ret_count);

/* Why a frame or header was refused. The message is static text naming the problem. */
typedef struct {
    const char *code;  /* machine-readable code, one of PROTOCOL.md's error codes */
    char msg[160];     /* one line for the user */
    const char *field; /* the header field that was refused, NULL when not one field */
} wire_err_t;

/* Walk `len` bytes of msgpack and prove that they hold exactly one value whose every declared
 * element is backed by remaining bytes, nested at most `max_depth` containers deep.
 * Allocates nothing. Returns 0, or -EBADMSG with `err` filled in. */
int wire_check(const void *data, size_t len, unsigned max_depth, wire_err_t *err);

/* Reading a frame in place (one wire_check has passed): the map at data's start, its entry
 * count and where its first key begins; the string at data's start, its body and where the
 * next value begins. 0, or -1 if it is not a map / a string (or runs past len). */
int wire_map_header(const void *data, size_t len, uint32_t *ret_n, size_t *ret_off);
int wire_str_header(const void *data, size_t len, const char **ret, size_t *ret_len,
                    size_t *ret_next);

/* The length of the one msgpack value that starts at `data` (which may be followed by more
 * bytes), after the same checks as wire_check(). Returns 0 with *ret_len, or -EBADMSG. */
int wire_value_len(const void *data, size_t len, unsigned max_depth, size_t *ret_len,
                   wire_err_t *err);

/* The n-byte big-endian unsigned integer at p (n <= 8). */
uint64_t wire_be(const uint8_t *p, unsigned n);
/* Read the scalar at p[*pos] of bytes wire_check() proved (at depth 1: no container holds
 * anything) into o, as msgpack_unpack would have it, and step *pos past it. Allocates nothing;
 * strings and binaries in o borrow from p. */
void wire_read_scalar(const uint8_t *p, size_t *pos, msgpack_object *o);

/* Check and unpack a payload frame into `zone`. `*ret` borrows from `data` and `zone`.
 * Returns 0 or -EBADMSG with `err` filled. */
int wire_unpack(const void *data, size_t len, msgpack_zone *zone, msgpack_object *ret,
                wire_err_t *err);

/* Decode a header frame into `ret` (zeroed first). `zone` is not used (the header is read in
 * place, allocating nothing); strings in `ret` borrow from `data`. Checks structure, version, that
 * the command is known and that every known field has its type and bounds. Returns 0, or -EBADMSG /
 * -EPROTO with `err` filled; on error `ret` may be partly filled (cmd, id and req, for the error
 * reply). */
int wire_hdr_decode(const void *data, size_t len, msgpack_zone *zone, wire_hdr_t *ret,
                    wire_err_t *err);

/* Encode `hdr` into `buf` (appended). Only fields that are set are written: strings with ptr,
 * numbers that are non-zero (or have their has_ flag), true booleans; besides, `progress`
 * always carries "done" and `dict_reply` always "found", which no other command carries. "v"
 * is always written (0 stands for WIRE_VERSION). Returns 0 or -ENOMEM. */
int wire_hdr_encode(msgpack_sbuffer *buf, const wire_hdr_t *hdr);

/* Names on the wire. Return NULL / WIRE_CMD_NONE / WIRE_ST_NONE for unknown values. */
const char *wire_cmd_name(wire_cmd_t cmd);
wire_cmd_t wire_cmd_from(const char *name, size_t len);
const char *wire_state_name(wire_state_t st);
wire_state_t wire_state_from(const char *name, size_t len);

/* Is this a valid job id (1..64 bytes of [A-Za-z0-9._:-]) / task name (same alphabet)? */
bool wire_id_is_valid(const char *s, size_t len);
bool wire_task_is_valid(const char *s, size_t len);

/* Make a wire_str_t from a C string (NULL stays absent). */
wire_str_t wire_str(const char *s);

/* Does `s` equal the C string `lit`? */
bool wire_str_eq(wire_str_t s, const char *lit);

#endif
