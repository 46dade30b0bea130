/* log.h - one line per event on stderr. When JOURNAL_STREAM names our stderr, lines carry the
 * journal's <N> syslog-level prefix; otherwise they read "forqd[pid]: level: text". */
#ifndef FORQ_LOG_H
#define FORQ_LOG_H

#include <syslog.h>

/* Set the least severe level that is printed (LOG_ERR .. LOG_DEBUG) and the process's role,
 * shown in each line ("forqd", "forkserver", "worker"). */
void log_setup(int level, const char *role);
int log_level(void);

/* Parse "error", "warning", "notice", "info", "debug"; returns the level or -1. */
int log_level_from(const char *name);
/* The name of a level log_level_from() takes. */
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)  log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_level() >= LOG_DEBUG)                                                              \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
