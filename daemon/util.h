/* util.h - small helpers of the daemon: allocation that aborts on out-of-memory (sizes from the
 * network are checked before they reach these), scope cleanup, monotonic time, descriptors. */
#ifndef FORQ_UTIL_H
#define FORQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Run `fn(&var)` when var goes out of scope; TAKE_PTR(p) hands p over and leaves NULL. */
#define _cleanup_(fn) __attribute__((cleanup(fn)))
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) take_ptr_tmp_ = (p);                                                         \
        (p) = NULL;                                                                                \
        take_ptr_tmp_;                                                                             \
    })
void freep(void *p);  /* for _cleanup_(freep) char *s */
void closep(int *fd); /* closes a descriptor >= 0 */

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define ELEMENTSOF(a)                   (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in milliseconds / microseconds. */
uint64_t now_ms(void);
uint64_t now_us(void);

/* How a child ended, from its wait status: "exited with code 3", "killed by signal 9 (Killed)". */
void describe_wait_status(int status, char *buf, size_t size);

/* Parse a whole decimal number in [min, max]; returns 0 or -EINVAL / -ERANGE. */
int parse_long(const char *s, long min, long max, long *ret);

#endif
