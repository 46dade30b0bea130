/* stats.h - what the broker tells about itself: the stats reply (forq status), jobs/s, and the
 * service manager's view (READY once the pool is up, a STATUS line every second, the watchdog). */
#ifndef FORQ_STATS_H
#define FORQ_STATS_H

#include "broker_int.h"

#include <stddef.h>

/* Registers its tick with b's loop. */
stats_t *stats_new(broker_t *b);
void stats_destroy(stats_t **s);
/* Answer a `stats` request. */
void stats_reply(broker_t *b, const origin_t *o, const wire_hdr_t *h);
/* "1/4 workers busy, 12 queued, 830 jobs/s", for the service manager. */
void stats_status_line(broker_t *b, char *buf, size_t size);

#endif
