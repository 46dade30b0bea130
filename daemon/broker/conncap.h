/* conncap.h - the cap on the client connections libzmq accepts for forqd, below the process's
 * open-file limit (see conncap.c for why it has to sit under libzmq's accept). */
#ifndef FORQ_CONNCAP_H
#define FORQ_CONNCAP_H
#include <stdint.h>

/* Arm the cap in this process (the broker; a child forked later is not capped): connections
 * are accepted while their descriptor is below the soft RLIMIT_NOFILE less `reserve`, the
 * descriptors forqd keeps for its workers, logs and reloads. Call again to re-read the limit
 * or change the reserve. Thread-safe against libzmq's I/O thread. */
void conncap_arm(unsigned reserve);

/* The descriptor number from which connections are refused. */
long conncap_ceiling(void);

/* Connections refused (accepted and closed at once) since the start. */
uint64_t conncap_refused(void);
#endif
