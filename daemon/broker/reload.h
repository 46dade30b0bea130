/* reload.h - SIGHUP: read the configuration again and start a forkserver with it, which loads
 * the plugins afresh; at its HELLO the broker rebinds its endpoints and switches to it and to
 * the new configuration (idle workers are replaced at once, busy ones after their job). A bad
 * file, a forkserver that fails or plugins that do not load: the reload is refused, the log
 * says why, and forqd goes on as it was. */
#ifndef FORQ_RELOAD_H
#define FORQ_RELOAD_H

#include "broker_int.h"

#include <stdbool.h>
#include <sys/types.h>

/* Registers for SIGHUP with b's loop. */
reload_t *reload_new(broker_t *b);
/* Stop a reload under way and free the configurations it made. Safe twice. */
void reload_destroy(reload_t **r);
/* Was pid (just reaped) the forkserver of a reload under way? Then the reload is refused. */
bool reload_reaped(reload_t *r, pid_t pid);

#endif
