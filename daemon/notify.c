/* notify.c - see notify.h. */
#include "notify.h"

#include "forq_config.h"

#include <stdio.h>
#include <stdlib.h>

#if FORQ_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static uint64_t period_ms; /* half the watchdog timeout, 0 = no watchdog */
static uint64_t last_ping;

bool notify_init(void)
{
    uint64_t usec = 0;
    /* the watchdog is for this process (WATCHDOG_PID), not for workers that inherit it */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        period_ms = usec / 2000 ? usec / 2000 : 1;
    return getenv("NOTIFY_SOCKET") != NULL;
}

void notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: draining running jobs");
}

void notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void notify_reloading(void)
{
    sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
}

void notify_tick(uint64_t now)
{
    if (period_ms && now - last_ping >= period_ms) {
        sd_notify(0, "WATCHDOG=1");
        last_ping = now;
    }
}

uint64_t notify_next(void)
{
    return period_ms ? last_ping + period_ms : UINT64_MAX;
}

#else

bool notify_init(void)
{
    return false;
}

void notify_ready(const char *status)
{
    (void)status;
}

void notify_stopping(void)
{
}

void notify_status(const char *status)
{
    (void)status;
}

void notify_reloading(void)
{
}

void notify_tick(uint64_t now)
{
    (void)now;
}

uint64_t notify_next(void)
{
    return UINT64_MAX;
}

#endif
