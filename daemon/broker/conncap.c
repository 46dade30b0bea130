/* conncap.c - the cap on client connections, under libzmq's accept.
 *
 * libzmq 4.3 accepts the connections of a bound socket in its I/O thread and offers no bound on
 * their number. When accept() fails with EMFILE it aborts the process over ipc (an errno_assert
 * in ipc_listener.cpp) and, over tcp, retries at once for ever with the connection still
 * pending (100 % CPU). A client flood, or just many clients under systemd's default limit of
 * 1,024 descriptors, would take forqd down.
 *
 * So forqd supplies accept() and accept4() itself. An executable's definitions come first in the
 * dynamic linker's lookup, so libzmq's calls land here (as an allocator linked into a program
 * replaces malloc for its libraries). In the broker process, armed by conncap_arm():
 *   - a connection whose descriptor would be at or over the ceiling (the soft limit less a
 *     reserve) is closed at once: the peer sees it closed, and a ZeroMQ client retries after its
 *     reconnect interval, so the extra clients wait and nobody else is disturbed;
 *   - an accept that fails for want of descriptors (the reserve was used up by other files)
 *     frees a spare descriptor kept for the purpose, accepts and closes the pending connection,
 *     and takes the spare back, so the listen queue drains instead of spinning.
 * Both report ECONNABORTED, which libzmq's listeners take as "nothing accepted" on every
 * transport. Everything else - the call itself, its flags, other processes (workers forked from
 * the broker) - is exactly the system call. */
#define _GNU_SOURCE
#include "conncap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORTED __attribute__((visibility("default")))

static atomic_int owner;               /* the pid the cap applies to; 0: not armed */
static atomic_long ceiling = LONG_MAX; /* the first descriptor number refused */
static atomic_int spare = -1;          /* freed to drain a connection when none is left */
static atomic_uint_fast64_t refused;

void conncap_arm(unsigned reserve)
{
    struct rlimit r;
    long lim = LONG_MAX, c;

    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY && r.rlim_cur < LONG_MAX)
        lim = (long)r.rlim_cur;
    /* never below half the limit: a small limit with many workers still serves clients */
    c = lim - (long)reserve;
    if (c < lim / 2)
        c = lim / 2;
    atomic_store(&ceiling, c);
    if (atomic_load(&spare) < 0)
        atomic_store(&spare, open("/dev/null", O_RDONLY | O_CLOEXEC));
    atomic_store(&owner, (int)getpid());
}

long conncap_ceiling(void)
{
    return atomic_load(&ceiling);
}

uint64_t conncap_refused(void)
{
    return atomic_load(&refused);
}

/* The cap applied to what accept4 returned (c, errno). */
static int admit(int fd, int c)
{
    int e = errno, s;

    if (atomic_load(&owner) != (int)getpid())
        return c;
    if (c >= 0) {
        if (c < atomic_load(&ceiling))
            return c;
        close(c);
    } else if (e == EMFILE || e == ENFILE) {
        if ((s = atomic_exchange(&spare, -1)) < 0) {
            errno = e;
            return -1;
        }
        close(s);
        c = (int)syscall(SYS_accept4, fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            close(c);
        atomic_store(&spare, open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (c < 0) {
            errno = ECONNABORTED;
            return -1;
        }
    } else {
        return c;
    }
    atomic_fetch_add(&refused, 1);
    errno = ECONNABORTED;
    return -1;
}

EXPORTED int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
    return admit(fd, (int)syscall(SYS_accept4, fd, addr, alen, flags));
}

EXPORTED int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
    return admit(fd, (int)syscall(SYS_accept4, fd, addr, alen, 0));
}
