/* service.h - the dict service: named dicts of versioned msgpack values (store.h), durable
 * with --state-dir (dictlog.h), answering `dict` requests from clients and from running tasks
 * inside the broker's loop, through the broker's outbox. It attaches itself to the broker
 * (broker_attach_dict) and the broker never calls it otherwise. */
#ifndef FORQ_DICT_SERVICE_H
#define FORQ_DICT_SERVICE_H

#include "broker.h"
#include "config.h"

typedef struct dict_service dict_service_t;

/* Open the store (replaying the log of cfg->state_dir, if set) and attach to b. cfg is
 * borrowed for the service's life. NULL after printing why (the log cannot be opened). */
dict_service_t *dict_service_new(broker_t *b, const config_t *cfg);
/* Close the log, free the store and the open waits (unanswered: forqd is stopping). Must run
 * before the broker is destroyed. Safe twice. */
void dict_service_destroy(dict_service_t **s);

#endif
