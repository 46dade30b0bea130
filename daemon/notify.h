/* notify.h - forqd's side of systemd's service protocol (sd_notify): READY once the endpoints
 * are bound and the pool is up, STATUS with what the pool is doing, WATCHDOG pings from the
 * event loop when the unit sets WatchdogSec, STOPPING on SIGTERM. Without libsystemd (the meson
 * feature `systemd`), or outside systemd (no NOTIFY_SOCKET), every call does nothing. */
#ifndef FORQ_NOTIFY_H
#define FORQ_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read the environment (the watchdog period). Returns whether a service manager listens. */
bool notify_init(void);
void notify_ready(const char *status);
void notify_stopping(void);
void notify_reloading(void);
void notify_status(const char *status);
/* Ping the watchdog if half its period has passed since the last ping (now in ms). */
void notify_tick(uint64_t now);
/* When notify_tick() must run next (ms, monotonic), UINT64_MAX without a watchdog. */
uint64_t notify_next(void);

#endif
