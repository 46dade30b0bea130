/* dictlog_int.h - the dict log's insides, shared by its two files: dictlog.c (the open, the
 * frames written, compaction) and dictlog_replay.c (the replay at open and the recovery of a
 * damaged log). The frame layout and the record types are in dictlog.h; other modules use only
 * that header. */
#ifndef FORQ_DICTLOG_INT_H
#define FORQ_DICTLOG_INT_H

#include "dictlog.h"

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 8          /* length and crc */
#define FRAME_MAX (1u << 30) /* a frame longer than this is corruption */

/* Record types; REC_CLEAR with a third element carries the store's version counter. */
enum { REC_SET = 0, REC_DEL = 1, REC_CLEAR = 2 };

/* Write all of buf to fd, through the fault-injection hook (dictlog_write_fn). 0 or -errno
 * (-ENOSPC when the hook writes nothing). */
int dictlog_write_all(int fd, const void *buf, size_t n);

/* Replay the log open at fd (size bytes) into store, frame by frame, skipping damaged stretches,
 * with the store quiet. Fills rep (counters are added to); returns the offset where a torn tail
 * starts (size when there is none). */
uint64_t dictlog_replay(int fd, uint64_t size, dstore_t *store, dictlog_report_t *rep);

/* Keep the damaged log at path (open at fd, in the directory open at dirfd) as
 * PATH.damaged-<UTC time>: a hard link, or a synced copy where there are none. Sets
 * rep->damaged_path (owned by rep, also on failure). 0 or -errno. */
int dictlog_keep_damaged(const char *path, int fd, int dirfd, dictlog_report_t *rep);

#endif
