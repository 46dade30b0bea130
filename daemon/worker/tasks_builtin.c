/* tasks_builtin.c - the tasks every forqd has, written against the same <forq/task.h> ABI as
 * any plugin. Arguments follow Python's *args convention; bad arguments give TypeError or
 * ValueError results, never a crash. */
#include "primes.h"
#include "task_ctx.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* echo(*args) -> the args value exactly as sent */
static int t_echo(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx;
    return msgpack_pack_object(out, *args);
}

/* sleep(seconds) -> null, after sleeping */
static int t_sleep(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    double s;
    struct timespec ts;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0 || forq_task_arg_double(ctx, args, 0, &s) < 0)
        return -1;
    if (!(s >= 0) || s > 31536000)
        return forq_task_error(ctx, "ValueError", "sleep() seconds must be from 0 to 31536000");
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return msgpack_pack_nil(out);
}

/* Trial division by 6k +- 1: deliberately the classic CPU-bound example, not a sieve. */
/* is_prime(n) -> bool */
static int t_is_prime(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0 || forq_task_arg_int(ctx, args, 0, &n) < 0)
        return -1;
    return forq_prime(n) ? msgpack_pack_true(out) : msgpack_pack_false(out);
}

/* Numbers count_primes tests between two progress reports. A power of two above the ranges
 * that tests, examples and the benchmark use (up to 300,000), so that their jobs stay silent, and
 * small enough that a range worth watching (a second or more) reports several times. */
#define PRIMES_PROGRESS_STEP (INT64_C(1) << 20)

/* count_primes(lo, hi) -> number of primes p with lo <= p < hi (Python's range). A range of
 * PRIMES_PROGRESS_STEP numbers or more reports progress after each step and at the end: done
 * = numbers tested, total = hi - lo (forq_task_progress() drops reports under 50 ms apart,
 * never the final one), so any client can watch FJP's progress messages with a built-in task. */
static int t_count_primes(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t lo, hi, count = 0;
    char text[64];

    if (forq_task_arg_range(ctx, args, 2, 2) < 0 || forq_task_arg_int(ctx, args, 0, &lo) < 0 ||
        forq_task_arg_int(ctx, args, 1, &hi) < 0)
        return -1;
    if (lo < 0 || hi < 0)
        return forq_task_error(ctx, "ValueError", "count_primes() bounds must not be negative");
    if (hi - lo < PRIMES_PROGRESS_STEP)
        return msgpack_pack_int64(out, forq_count_primes(lo, hi));
    for (int64_t n = lo; n < hi;) {
        int64_t end = hi - n > PRIMES_PROGRESS_STEP ? n + PRIMES_PROGRESS_STEP : hi;
        count += forq_count_primes(n, end);
        n = end;
        snprintf(text, sizeof(text), "%lld primes so far", (long long)count);
        forq_task_progress(ctx, (uint64_t)(n - lo), (uint64_t)(hi - lo), text);
    }
    return msgpack_pack_int64(out, count);
}

/* sum_squares(n) -> sum(i*i for i in range(n)) */
static int t_sum_squares(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    uint64_t sum = 0;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0 || forq_task_arg_int(ctx, args, 0, &n) < 0)
        return -1;
    if (n < 0)
        return forq_task_error(ctx, "ValueError", "sum_squares() n must not be negative");
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        uint64_t sq = i * i;
        if ((i && sq / i != i) || sum + sq < sum)
            return forq_task_error(ctx, "OverflowError",
                                   "sum_squares(%lld) does not fit in 64 bits", (long long)n);
        sum += sq;
    }
    return msgpack_pack_uint64(out, sum);
}

static int pack_hex(msgpack_packer *out, const uint8_t *d, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char s[2 * SHA256_DIGEST_SIZE];
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = hex[d[i] >> 4];
        s[2 * i + 1] = hex[d[i] & 15];
    }
    msgpack_pack_str(out, 2 * n);
    return msgpack_pack_str_body(out, s, 2 * n);
}

static int sha256_file(forq_task_ctx_t *ctx, const msgpack_object *path, msgpack_packer *out)
{
    struct sha256_ctx h;
    uint8_t digest[SHA256_DIGEST_SIZE], buf[65536];
    char p[4096];
    ssize_t n;
    int fd;

    if (path->type != MSGPACK_OBJECT_STR || path->via.str.size == 0 ||
        path->via.str.size >= sizeof(p))
        return forq_task_error(ctx, "TypeError", "sha256() 'path' must be a non-empty string");
    memcpy(p, path->via.str.ptr, path->via.str.size);
    p[path->via.str.size] = '\0';
    if (memchr(p, '\0', path->via.str.size))
        return forq_task_error(ctx, "ValueError", "sha256() 'path' contains a NUL byte");
    fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return forq_task_error(ctx, errno == ENOENT ? "FileNotFoundError" : "OSError",
                               "sha256(): cannot open %s: %s", p, strerror(errno));
    sha256_init(&h);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return forq_task_error(ctx, "OSError", "sha256(): cannot read %s: %s", p, strerror(e));
        }
        sha256_update(&h, (size_t)n, buf);
    }
    close(fd);
    sha256_digest(&h, sizeof(digest), digest);
    return pack_hex(out, digest, sizeof(digest));
}

/* sha256(data) -> hex digest of a string or bytes; sha256({"path": P}) -> of a file's contents */
static int t_sha256(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *a;
    struct sha256_ctx h;
    uint8_t digest[SHA256_DIGEST_SIZE];
    const char *data;
    size_t len;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0)
        return -1;
    a = forq_task_arg(args, 0);
    if (a->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            const msgpack_object_kv *kv = &a->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 4 &&
                memcmp(kv->key.via.str.ptr, "path", 4) == 0)
                return sha256_file(ctx, &kv->val, out);
        }
        return forq_task_error(ctx, "TypeError",
                               "sha256() takes bytes, a string, or "
                               "{\"path\": FILE}; the map has no 'path'");
    }
    if (forq_task_arg_bytes(ctx, args, 0, &data, &len) < 0)
        return -1;
    sha256_init(&h);
    sha256_update(&h, len, (const uint8_t *)data);
    sha256_digest(&h, sizeof(digest), digest);
    return pack_hex(out, digest, sizeof(digest));
}

static const forq_task_def_t builtin_tasks[] = {
    {"echo", t_echo, "echo(*args) -> the arguments as sent"},
    {"sleep", t_sleep, "sleep(seconds) -> null"},
    {"is_prime", t_is_prime, "is_prime(n) -> bool"},
    {"count_primes", t_count_primes,
     "count_primes(lo, hi) -> primes in range(lo, hi); progress every 2^20 numbers"},
    {"sum_squares", t_sum_squares, "sum_squares(n) -> sum(i*i for i in range(n))"},
    {"sha256", t_sha256, "sha256(data | {\"path\": FILE}) -> hex digest"},
    {"exec", task_exec, "exec({argv, stdin?, env?, cwd?}) -> {exit_code, signal, stdout, stderr}"},
    {NULL, NULL, NULL},
};

const forq_plugin_t builtin_plugin = {FORQ_TASK_ABI_VERSION, "builtin", builtin_tasks, NULL, NULL};
