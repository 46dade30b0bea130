/* dictlog.h - the dict service's append-only log in the state directory (DIR/dict.log).
 *
 * The log is a sequence of frames, each the changes of one request:
 *
 *     frame  = length:u32le crc32:u32le payload      ; crc32 (zlib) of the payload
 *     payload = msgpack array of record
 *     record = [0, name, key, ver, value-bin]        ; key now holds value (msgpack) at ver
 *            / [1, name, key]                        ; key deleted
 *            / [2, name]                             ; dict cleared
 *            / [2, name, ver]                        ; the same, and the store's version
 *                                                    ; counter is at least ver (name "": only
 *                                                    ; that; older forqds read a no-op clear)
 *
 * Records hold the resulting state, not the operation, so replay restores values and versions
 * exactly, and a frame is all-or-nothing: every record of a frame is checked before any is
 * applied, and a multi-key update survives a crash whole or not at all. Versions never repeat,
 * across compactions, restarts and crashes under any fsync policy: the version counter is
 * written at every compaction and in every frame whose records do not show it, and versions
 * are reserved ahead (65,536 at a time) by a counter record that is synced before any version
 * past the last reservation is handed out; after a restart versions go on above it.
 *
 * At open the log is replayed. A torn tail (damage with nothing intact after it: a crash in the
 * middle of a write) is cut off and reported. Damage in the middle (a frame that fails its
 * checksum with intact frames after it, or whose checksum is good but whose records are not) is
 * never cut silently: the file is kept aside as dict.log.damaged-<UTC time>, every frame that
 * can be proven intact (CRC-32 and well-formed records; frames after the damage are found again
 * where the damaged frame's length says it ends, else by a bounded scan) is replayed, the result
 * is written as a fresh compacted log, and the losses are reported. When the log grows past
 * twice the live data (and 1 MiB) it is rewritten compactly: a new file of the current state,
 * fsynced, renamed over the old; a compaction that fails is retried after 1 s, doubling to 60 s.
 *
 * Durability follows the fsync policy: `always` syncs every frame before dictlog_commit()
 * returns (the broker replies only after that), `everysec` at most a second later, `no` when the
 * kernel pleases. A write that fails (disk full, I/O error) leaves the file as it was and
 * returns the error: the caller undoes the change and refuses the write. */
#ifndef FORQ_DICTLOG_H
#define FORQ_DICTLOG_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { FSYNC_ALWAYS, FSYNC_EVERYSEC, FSYNC_NO } fsync_policy_t;

typedef struct dictlog dictlog_t;

/* What the replay at open found. */
typedef struct {
    uint64_t torn_bytes;   /* a torn tail cut off (0: none) */
    uint64_t frames_kept;  /* intact frames replayed */
    bool damaged;          /* damage in the middle: the file was kept aside and rewritten */
    uint64_t frames_lost;  /* damaged stretches skipped, each at least one frame */
    bool frames_lost_more; /* a stretch was found by scanning: it may have held more frames */
    uint64_t bytes_lost;   /* bytes in them */
    uint64_t records_lost; /* key changes in them that could still be read */
    bool records_unknown;  /* ... and some could not be read: records_lost is a lower bound */
    char keys_lost[256];   /* up to three of those keys, "dict/key, ..." */
    char *damaged_path;    /* where the damaged file is kept (NULL: nothing damaged) */
} dictlog_report_t;

/* Fault injection for tests (beanstalkd's falloc): every write to the log goes through this
 * function; tests replace it to simulate a full or failing disk. */
extern ssize_t (*dictlog_write_fn)(int fd, const void *buf, size_t n);

/* The policies' names: config_fsync_from() and config_fsync_name() (config.h). */

/* Open (creating DIR and the log if needed) and replay the log into `store` (quietly). Returns
 * 0 with *ret, or -errno with one line in err. `*ret_truncated` gets the bytes of a torn tail
 * that were cut off (0 if none). When the log was damaged in the middle and recovered, err holds
 * one line saying what was lost and where the damaged file is kept (else it is empty); the
 * details are in dictlog_report(). */
int dictlog_open(const char *dir, fsync_policy_t policy, dstore_t *store, dictlog_t **ret,
                 size_t *ret_truncated, char *err, size_t errlen);

/* Add the state of one key (or a dict's clearing) to the pending frame. val NULL: deleted. */
void dictlog_put(dictlog_t *l, const char *name, size_t nlen, const char *key, size_t klen,
                 const void *val, size_t vlen, uint64_t ver);
void dictlog_put_clear(dictlog_t *l, const char *name, size_t nlen);

/* The store's version counter is now ver (dstore_version): the next frame carries it if its
 * records do not show it. */
void dictlog_put_version(dictlog_t *l, uint64_t ver);

/* Write the pending frame (if any), and sync it under `always`. Returns 0, or -errno after
 * putting the file back as it was (the pending frame is dropped either way). */
int dictlog_commit(dictlog_t *l);

/* Commit the pending frame with, after its records, those of an update that has been checked
 * (p: dstore_update_plan) but not applied: one record per distinct key, holding the value and
 * version the plan gives it. The records are packed from the request (b) while the frame is
 * written, never held whole in memory. Returns as dictlog_commit; apply the update only after
 * it returned 0. */
int dictlog_commit_update(dictlog_t *l, const char *name, size_t nlen, const dstore_batch_t *b,
                          const dstore_plan_t *p);

/* Once in a while (each loop turn is fine): sync under `everysec`, compact when due. Returns 0
 * or -errno of a failed compaction (the old log is kept); a failed compaction is not tried
 * again before a back-off of 1 s, doubling to 60 s (dictlog_retry_ms), so a caller that logs
 * each error logs once per back-off step. */
int dictlog_tick(dictlog_t *l, dstore_t *store, uint64_t now_ms);

/* Rewrite the log as the current state of `store`. 0 or -errno (the old log is kept). */
int dictlog_compact(dictlog_t *l, dstore_t *store);

/* Bytes in the log file. */
uint64_t dictlog_size(const dictlog_t *l);

/* The current back-off after failed compactions, in ms (0: the last one succeeded). */
uint32_t dictlog_retry_ms(const dictlog_t *l);

/* What the replay at open found; borrowed until dictlog_close. */
const dictlog_report_t *dictlog_report(const dictlog_t *l);

/* Sync and close. */
void dictlog_close(dictlog_t **l);

#endif
