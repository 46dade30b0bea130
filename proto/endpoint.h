/* endpoint.h - where forqd listens when nobody says otherwise, shared by forqd and its clients so
 * that both agree with no configuration: ipc://$XDG_RUNTIME_DIR/forq/forqd.sock, or
 * ipc:///tmp/forq-<uid>/forqd.sock when XDG_RUNTIME_DIR is unset. */
#ifndef FORQ_ENDPOINT_H
#define FORQ_ENDPOINT_H

#include <stddef.h>

/* Write the default runtime directory into buf. Returns 0 or -ENAMETOOLONG. */
int endpoint_default_dir(char *buf, size_t size);

/* Write the default client endpoint ("ipc://<dir>/forqd.sock") into buf. 0 or -ENAMETOOLONG. */
int endpoint_default(char *buf, size_t size);

#endif
