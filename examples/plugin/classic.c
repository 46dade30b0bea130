/* classic.c - an example forq task plugin, built against the installed <forq/task.h>, with the
 * tasks of the classic multiprocessing examples:
 *
 *     cc -shared -fPIC -o classic.so classic.c $(pkg-config --cflags --libs forq-task)
 *     forqd --tasks ./classic.so
 *     forq submit square 7                                 -> 49
 *     forq submit multiply '[6, 7]'                        -> 42
 *     forq submit word_count '["to be or not to be"]'      -> {"words":6,"lines":1,"chars":18}
 *     forq submit fib 90                                   -> 2880067194370816120
 */
#include <forq/task.h>

#include <ctype.h>
#include <string.h>

/* square(x) -> x * x */
static int square(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t x;
    if (forq_task_arg_range(ctx, args, 1, 1) < 0 || forq_task_arg_int(ctx, args, 0, &x) < 0)
        return -1;
    if (x > 3037000499 || x < -3037000499)
        return forq_task_error(ctx, "OverflowError", "square(%lld) does not fit in 64 bits",
                               (long long)x);
    return msgpack_pack_int64(out, x * x);
}

/* multiply(a, b) -> a * b */
static int multiply(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t a, b, r;
    if (forq_task_arg_range(ctx, args, 2, 2) < 0 || forq_task_arg_int(ctx, args, 0, &a) < 0 ||
        forq_task_arg_int(ctx, args, 1, &b) < 0)
        return -1;
    if (__builtin_mul_overflow(a, b, &r))
        return forq_task_error(ctx, "OverflowError", "multiply(%lld, %lld) does not fit in 64 bits",
                               (long long)a, (long long)b);
    return msgpack_pack_int64(out, r);
}

/* word_count(text) -> {"words": N, "lines": N, "chars": N} */
static int word_count(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *s;
    size_t n;
    int64_t words = 0, lines = 0;
    int in_word = 0;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0 || forq_task_arg_bytes(ctx, args, 0, &s, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            lines++;
        if (isspace((unsigned char)s[i]))
            in_word = 0;
        else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    if (n > 0 && s[n - 1] != '\n')
        lines++;
    msgpack_pack_map(out, 3);
    msgpack_pack_str_with_body(out, "words", 5);
    msgpack_pack_int64(out, words);
    msgpack_pack_str_with_body(out, "lines", 5);
    msgpack_pack_int64(out, lines);
    msgpack_pack_str_with_body(out, "chars", 5);
    return msgpack_pack_uint64(out, n);
}

/* fib(n) -> the n-th Fibonacci number, 0 <= n <= 92 */
static int fib(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n, a = 0, b = 1;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0 || forq_task_arg_int(ctx, args, 0, &n) < 0)
        return -1;
    if (n < 0 || n > 92)
        return forq_task_error(ctx, "ValueError", "fib(n) needs 0 <= n <= 92, got %lld",
                               (long long)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t t = a + b;
        a = b;
        b = t;
    }
    return msgpack_pack_int64(out, a);
}

static const forq_task_def_t tasks[] = {
    {"square", square, "square(x) -> x*x"},
    {"multiply", multiply, "multiply(a, b) -> a*b"},
    {"word_count", word_count, "word_count(text) -> {words, lines, chars}"},
    {"fib", fib, "fib(n) -> n-th Fibonacci number"},
    {NULL, NULL, NULL},
};

FORQ_PLUGIN_DEFINE("classic", tasks, NULL, NULL);
