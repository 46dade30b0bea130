/* fuzz_dictlog.c - libFuzzer harness for the dict log's replay (dictlog.h): the input is a mode
 * byte, then the whole file DIR/dict.log that forqd finds at start. With bit 0 of the mode set,
 * the harness first puts the right checksum into every frame it can walk, so that mutated
 * records get past the CRC check to the record parser (a fuzzer alone almost never forges a
 * CRC-32); otherwise the bytes go in as they are. Whatever the file holds, opening must succeed
 * (damage is reported, never fatal). Either the file had a torn tail at most: exactly the bytes
 * said were cut; or it was damaged in the middle: the damaged file is kept aside unchanged and
 * the log rewritten. Either way what is left replays with nothing more to cut or recover, to
 * exactly the state (and version counter) the first replay restored: a frame is applied all or
 * nothing, even when its checksum is good but a record in it is malformed. The state, compacted,
 * replays to itself again. ASan and LeakSanitizer watch every step.
 *
 * What forqd then reads back of the shared types (skeys.h: queue items, lock grants, events kept
 * under internal dict names) is parsed too, as at every start: whatever the bytes, each entry is
 * a well-formed one (a valid name) or skipped and counted, and the counts add up.
 *
 * The state directory is on /dev/shm when it can be: replay fsyncs what it cuts and compaction
 * fsyncs twice, which on a disk would make each input cost milliseconds. */
#define _GNU_SOURCE
#include "store.h"
#include "dictlog.h"
#include "skeys.h"
#include "wire.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t isize);

static char dir[256], path[300];
static bool ready;

/* One key of the store, flattened for comparison. */
typedef struct {
    char *text; /* name NUL key NUL value, then the version: compared as bytes */
    size_t len;
} item_t;

typedef struct {
    item_t *v;
    size_t n, cap;
} items_t;

static int collect(void *ud, const char *name, size_t nlen, const char *key, size_t klen,
                   const dval_t *val)
{
    items_t *it = ud;
    item_t x;

    if (it->n == it->cap) {
        it->cap = it->cap ? 2 * it->cap : 16;
        it->v = realloc(it->v, it->cap * sizeof(*it->v));
        if (!it->v)
            abort();
    }
    x.len = nlen + 1 + klen + 1 + val->len + sizeof(val->ver);
    x.text = malloc(x.len);
    if (!x.text)
        abort();
    memcpy(x.text, name, nlen);
    x.text[nlen] = '\0';
    memcpy(x.text + nlen + 1, key, klen);
    x.text[nlen + 1 + klen] = '\0';
    if (val->len)
        memcpy(x.text + nlen + 2 + klen, val->data, val->len);
    memcpy(x.text + nlen + 2 + klen + val->len, &val->ver, sizeof(val->ver));
    it->v[it->n++] = x;
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static items_t state_of(dstore_t *s)
{
    items_t it = {0};
    dstore_each(s, collect, &it);
    if (it.n)
        qsort(it.v, it.n, sizeof(*it.v), item_cmp);
    return it;
}

static void items_free(items_t *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i].text);
    free(it->v);
}

static void same_state(dstore_t *a, dstore_t *b)
{
    items_t x = state_of(a), y = state_of(b);

    if (x.n != y.n || dstore_version(a) != dstore_version(b))
        abort();
    for (size_t i = 0; i < x.n; i++)
        if (item_cmp(&x.v[i], &y.v[i]) != 0)
            abort();
    items_free(&x);
    items_free(&y);
}

static int shared_entry(void *ud, const skeys_entry_t *e)
{
    if (!wire_id_is_valid(e->name, e->nlen) || !e->val)
        abort();
    (*(size_t *)ud)++;
    return 0;
}

/* forqd's reading of the shared types at start: every entry is either taken or skipped. */
static void read_shared(dstore_t *s)
{
    static const char *const kinds[] = {SKEYS_QUEUES, SKEYS_LOCKS, SKEYS_EVENTS};
    for (size_t i = 0; i < 3; i++) {
        size_t good = 0, bad = skeys_each(s, kinds[i], shared_entry, &good);
        if (good + bad != dstore_len(s, kinds[i], SKEYS_NLEN))
            abort();
    }
}

static off_t file_size(void)
{
    struct stat st;
    if (stat(path, &st) < 0)
        abort();
    return st.st_size;
}

/* Open (replay) the log into a new store; aborts if opening fails. */
static dictlog_t *open_log(dstore_t **ret_store, size_t *cut, char *err, size_t errlen)
{
    /* no limits that replay could meet: it restores without them anyway */
    static const dstore_limits_t lim = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
    dictlog_t *l = NULL;

    *ret_store = dstore_new(&lim, NULL, NULL);
    if (dictlog_open(dir, FSYNC_NO, *ret_store, &l, cut, err, errlen) != 0 || !l)
        abort(); /* the directory and file are ours: only the contents are fuzzed */
    return l;
}

static void cleanup(void)
{
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    unlink(tmp);
    unlink(path);
    rmdir(dir);
}

static void setup_once(void)
{
    const char *bases[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    ready = true;
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        if (!bases[i])
            continue;
        snprintf(dir, sizeof(dir), "%s/forq-fuzz-dictlog.XXXXXX", bases[i]);
        if (mkdtemp(dir)) {
            snprintf(path, sizeof(path), "%s/dict.log", dir);
            atexit(cleanup);
            return;
        }
    }
    abort();
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Give every whole frame (length:u32le crc32:u32le payload) its right checksum. */
static void fix_checksums(uint8_t *p, size_t n)
{
    for (size_t off = 0; n - off >= 8;) {
        uint32_t len = get_le32(p + off), crc;
        if (len > n - off - 8)
            break;
        crc = (uint32_t)crc32(0L, p + off + 8, len);
        for (int i = 0; i < 4; i++)
            p[off + 4 + i] = (uint8_t)(crc >> (8 * i));
        off += 8 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t isize)
{
    uint8_t *data;
    size_t size;
    char err[256], err2[256];
    size_t cut, cut2;
    dstore_t *s1, *s2, *s3;
    dictlog_t *l;
    int fd;

    if (!ready)
        setup_once();
    if (isize == 0)
        return 0;
    size = isize - 1;
    data = malloc(size ? size : 1);
    if (!data)
        abort();
    memcpy(data, input + 1, size);
    if (input[0] & 1)
        fix_checksums(data, size);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
        abort();

    /* the first replay: it cuts what it says, or keeps a damaged file aside and says so */
    l = open_log(&s1, &cut, err, sizeof(err));
    const dictlog_report_t *rep = dictlog_report(l);
    if (rep->damaged) {
        struct stat st;
        if (cut != 0 || !err[0] || !rep->damaged_path || stat(rep->damaged_path, &st) < 0 ||
            st.st_size != (off_t)size || rep->bytes_lost == 0 || rep->frames_lost == 0)
            abort();
        unlink(rep->damaged_path);
    } else if (cut > size || file_size() != (off_t)(size - cut) || err[0] || rep->damaged_path) {
        abort();
    }
    if (dictlog_size(l) != (uint64_t)file_size())
        abort();
    read_shared(s1);
    off_t left = file_size();
    dictlog_close(&l);

    /* what is left is all good frames: it replays with nothing to cut, to the same state */
    l = open_log(&s2, &cut2, err2, sizeof(err2));
    if (cut2 != 0 || err2[0] || dictlog_report(l)->damaged || file_size() != left)
        abort();
    same_state(s1, s2);

    /* the state, written back compactly, replays to itself */
    if (dictlog_compact(l, s2) != 0)
        abort();
    dictlog_close(&l);
    l = open_log(&s3, &cut2, err2, sizeof(err2));
    if (cut2 != 0 || err2[0])
        abort();
    same_state(s2, s3);
    dictlog_close(&l);

    dstore_free(s1);
    dstore_free(s2);
    dstore_free(s3);
    free(data);
    return 0;
}
