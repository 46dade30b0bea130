/* seeds.c - writes fuzz seed corpora from the encoders: one file per header of every command and
 * a set of payloads, into the directories given as argv[1] (headers) and argv[2] (payloads);
 * given argv[3] and argv[4] too, dict logs written by the dict log itself (whole, compacted,
 * torn) and worker-link streams written by wlink_send (FJP headers, payloads, one longer than
 * the read-ahead buffer). */
#define _GNU_SOURCE
#include "clients.h"
#include "store.h"
#include "dictlog.h"
#include "skeys.h"
#include "wire.h"
#include "wlink.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static void put(const char *dir, const char *name, int i, const void *data, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s-%d", dir, name, i);
    if ((f = fopen(path, "wb"))) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* Copy a file's bytes, the first `cut` dropped from its end, into dir/name-i, after the mode
 * byte fuzz_dictlog reads first. */
static void put_file(const char *dir, const char *name, int i, const char *path, size_t cut,
                     uint8_t mode)
{
    FILE *f = fopen(path, "rb");
    static char buf[1 << 20];
    size_t n;

    if (!f)
        return;
    buf[0] = (char)mode;
    n = fread(buf + 1, 1, sizeof(buf) - 1, f);
    fclose(f);
    put(dir, name, i, buf, 1 + (n > cut ? n - cut : 0));
}

#define S(x) x, strlen(x)

/* Dict logs: a few requests' frames, the same compacted, and a torn tail. */
static int dictlog_seeds(const char *out)
{
    static const dstore_limits_t lim = {1000, 1 << 20, 1 << 24};
    char dir[] = "/tmp/forq-seeds.XXXXXX", path[64], err[256];
    dstore_t *s;
    dictlog_t *l;
    size_t cut;
    uint64_t v;
    int64_t n;

    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    s = dstore_new(&lim, NULL, NULL);
    if (dictlog_open(dir, FSYNC_NO, s, &l, &cut, err, sizeof(err)) != 0)
        return -1;
    dstore_set(s, S("users"), S("alice"), "\x92\x01\xa1x", 4, &v); /* [1, "x"] */
    dictlog_put(l, S("users"), S("alice"), "\x92\x01\xa1x", 4, v);
    dstore_set(s, S("users"), S("bob"), "\xc3", 1, &v);
    dictlog_put(l, S("users"), S("bob"), "\xc3", 1, v);
    dictlog_commit(l); /* one frame of two records */
    dstore_incr(s, S("counters"), S("hits"), 41, &n, &v);
    dstore_incr(s, S("counters"), S("hits"), 1, &n, &v);
    dictlog_put(l, S("counters"), S("hits"), "\x2a", 1, v);
    dictlog_commit(l);
    dstore_del(s, S("users"), S("bob"));
    dictlog_put(l, S("users"), S("bob"), NULL, 0, 0);
    dictlog_commit(l);
    put_file(out, "dictlog", 0, path, 0, 1);
    dstore_clear(s, S("counters"));
    dictlog_put_clear(l, S("counters"));
    dictlog_commit(l);
    put_file(out, "dictlog", 1, path, 0, 1);
    put_file(out, "dictlog", 2, path, 3, 0); /* torn in the last frame */
    dictlog_compact(l, s);
    put_file(out, "dictlog", 3, path, 0, 0);
    /* the shared types as forqd keeps them (skeys.h): two queue items, a lock's grant, an event;
     * then the first item taken */
    char key[SKEYS_KEY_MAX + 1];
    size_t klen = skeys_make(key, S("jobs"), 0x8000000000000000ull);
    dstore_set(s, SKEYS_QUEUES, SKEYS_NLEN, key, klen,
               "\xa5"
               "apple",
               6, &v);
    dictlog_put(l, SKEYS_QUEUES, SKEYS_NLEN, key, klen,
                "\xa5"
                "apple",
                6, v);
    klen = skeys_make(key, S("jobs"), 0x8000000000000001ull);
    dstore_set(s, SKEYS_QUEUES, SKEYS_NLEN, key, klen, "\xc0", 1, &v);
    dictlog_put(l, SKEYS_QUEUES, SKEYS_NLEN, key, klen, "\xc0", 1, v);
    dictlog_commit(l);
    msgpack_sbuffer lease;
    msgpack_sbuffer_init(&lease);
    skeys_pack_lease(&lease, 1764547200000ull, 60000);
    klen = skeys_make(key, S("deploy"), dstore_version(s) + 1);
    dstore_set(s, SKEYS_LOCKS, SKEYS_NLEN, key, klen, lease.data, lease.size, &v);
    dictlog_put(l, SKEYS_LOCKS, SKEYS_NLEN, key, klen, lease.data, lease.size, v);
    dstore_set(s, SKEYS_EVENTS, SKEYS_NLEN, S("go"), "\xc3", 1, &v);
    dictlog_put(l, SKEYS_EVENTS, SKEYS_NLEN, S("go"), "\xc3", 1, v);
    dictlog_commit(l);
    msgpack_sbuffer_destroy(&lease);
    klen = skeys_make(key, S("jobs"), 0x8000000000000000ull);
    dstore_del(s, SKEYS_QUEUES, SKEYS_NLEN, key, klen);
    dictlog_put(l, SKEYS_QUEUES, SKEYS_NLEN, key, klen, NULL, 0, 0);
    dictlog_commit(l);
    put_file(out, "dictlog", 4, path, 0, 1);
    dictlog_compact(l, s);
    put_file(out, "dictlog", 5, path, 0, 0);
    dictlog_close(&l);
    dstore_free(s);
    unlink(path);
    rmdir(dir);
    return 0;
}

/* Worker-link streams: what one worker writes for a few messages, read back raw. */
static int wlink_seeds(const char *out)
{
    static uint8_t buf[1 << 20];
    size_t big = WLINK_RBUF + 1000;
    uint8_t *blob = calloc(1, big);
    msgpack_sbuffer sb;
    wlink_t tx;
    int sv[2];

    if (!blob || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || wlink_init(&tx, sv[1], 1 << 20))
        return -1;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < 4; i++) {
        size_t n = 0;
        ssize_t k;
        wire_hdr_t h = {
            .cmd = i == 0 ? WIRE_READY : WIRE_DONE, .id = wire_str("seed-1"), .state = WIRE_ST_OK};
        msgpack_sbuffer_clear(&sb);
        wire_hdr_encode(&sb, &h);
        if (i == 0)
            wlink_send(&tx, sb.data, sb.size, NULL, 0, false);
        else if (i == 1)
            wlink_send(&tx, sb.data, sb.size, "\x93\x01\x02\x03", 4, true);
        else if (i == 2) { /* three messages in one stream, one with an empty payload */
            wlink_send(&tx, sb.data, sb.size, "\xc0", 1, true);
            wlink_send(&tx, sb.data, sb.size, NULL, 0, true);
            wlink_send(&tx, sb.data, sb.size, NULL, 0, false);
        } else /* longer than the read-ahead buffer */
            wlink_send(&tx, sb.data, sb.size, blob, big, true);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        while (n < sizeof(buf) && (k = read(sv[0], buf + n, sizeof(buf) - n)) > 0)
            n += (size_t)k;
        put(out, "wlink", i, buf, n);
    }
    msgpack_sbuffer_destroy(&sb);
    wlink_done(&tx);
    close(sv[0]);
    free(blob);
    return 0;
}

/* `seeds --clients DIR`: clients files (daemon/auth/clients.h) into DIR, the good ones checked
 * by the parser itself, and a few with an error each. Keys are Z85 of fixed bytes (any 32 bytes
 * are a key to the parser). */
static int clients_seeds(const char *out)
{
    static const char *const good[] = {
        "# forq clients file: one client per line; '#' starts a comment; blank lines ignored\n"
        "# PUBLIC-KEY  NAME  [PERMISSION ...]\n"
        "\n"
        "%s  lab-01   tasks=count_*,sha256 read=* write=scratch  # the lab\n"
        "%s  ops      admin tasks=*,exec\n"
        "%s  reader   read=results,res.[0-9]\n"
        "%s  nobody\n",
        "%s\tw\twrite=a,b*,c?d tasks=e[!x]*\r\n\t%s x.y_z-1 admin\r\n%s q read=*\r\n%s r",
    };
    static const char *const bad[] = {
        "%s alice\n%s bob\n%s alice tasks=*\n%s d\n",      /* a name twice */
        "%s alice tasks=a,,b\n%s b\n%s c\n%s d\n",         /* an empty glob */
        "%s local admin\n%s b exec\n%s c admin=1\n%s d\n", /* reserved, unknown permission */
    };
    const size_t ngood = sizeof(good) / sizeof(good[0]), nbad = sizeof(bad) / sizeof(bad[0]);
    char keys[4][41], text[1024];
    uint8_t raw[32];

    for (int k = 0; k < 4; k++) {
        for (int b = 0; b < 32; b++)
            raw[b] = (uint8_t)(k * 77 + b * 13 + 1);
        if (!zmq_z85_encode(keys[k], raw, 32))
            return -1;
    }
    for (size_t i = 0; i < ngood + nbad; i++) {
        const char *fmt = i < ngood ? good[i] : bad[i - ngood];
        auth_table_t *t = NULL;
        char err[512];
        int n;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        n = snprintf(text, sizeof(text), fmt, keys[0], keys[1], keys[2], keys[3]);
#pragma GCC diagnostic pop
        if (n < 0 || (size_t)n >= sizeof(text))
            return -1;
        if ((auth_table_parse(text, (size_t)n, "seed", &t, err, sizeof(err)) == 0) != (i < ngood)) {
            fprintf(stderr, "seeds: clients seed %zu: %s\n", i, t ? "accepted" : err);
            auth_table_free(&t);
            return -1;
        }
        auth_table_free(&t);
        put(out, "clients", (int)i, text, (size_t)n);
    }
    return 0;
}

int main(int argc, char **argv)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (argc == 3 && strcmp(argv[1], "--clients") == 0) {
        if (clients_seeds(argv[2]) < 0) {
            fprintf(stderr, "seeds: cannot write the clients file seeds\n");
            return 1;
        }
        return 0;
    }

    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: seeds HEADER_DIR PAYLOAD_DIR [DICTLOG_DIR WLINK_DIR]\n");
        return 2;
    }
    if (argc == 5 && (dictlog_seeds(argv[3]) < 0 || wlink_seeds(argv[4]) < 0)) {
        fprintf(stderr, "seeds: cannot write the dict log or worker link seeds\n");
        return 1;
    }
    msgpack_sbuffer_init(&sb);
    for (int c = WIRE_SUBMIT; c <= WIRE_PROGRESS; c++) {
        wire_hdr_t h = {.cmd = (wire_cmd_t)c,
                        .id = wire_str("seed-1"),
                        .task = wire_str("echo"),
                        .state = WIRE_ST_OK,
                        .req = 3,
                        .has_req = true,
                        .timeout_ms = 100,
                        .priority = 9,
                        .has_priority = true,
                        .msg = wire_str("m"),
                        .etype = wire_str("ValueError"),
                        .signal = 11,
                        .exit_code = 1,
                        .has_exit = true};
        msgpack_sbuffer_clear(&sb);
        wire_hdr_encode(&sb, &h);
        put(argv[1], wire_cmd_name(h.cmd), c, sb.data, sb.size);
    }
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 4; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, i * 1000);
        msgpack_pack_str_with_body(&pk, "text", 4);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_bin_with_body(&pk, "k", 1);
        msgpack_pack_double(&pk, 1.5 * i);
        put(argv[2], "payload", i, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
