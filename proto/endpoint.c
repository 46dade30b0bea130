/* endpoint.c - see endpoint.h. */
#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int endpoint_default_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (xdg && xdg[0] == '/')
        n = snprintf(buf, size, "%s/forq", xdg);
    else
        n = snprintf(buf, size, "/tmp/forq-%u", (unsigned)getuid());
    return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

int endpoint_default(char *buf, size_t size)
{
    char dir[4096];
    int n;

    if (endpoint_default_dir(dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    n = snprintf(buf, size, "ipc://%s/forqd.sock", dir);
    return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}
