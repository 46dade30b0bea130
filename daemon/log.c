/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cur_level = LOG_INFO;
static const char *cur_role = "forqd";
static bool to_journal;

static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%lu:%lu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(int level, const char *role)
{
    cur_level = level;
    cur_role = role;
    to_journal = stderr_is_journal();
}

int log_level(void)
{
    return cur_level;
}

static const struct {
    const char *name;
    int level;
} level_names[] = {{"error", LOG_ERR},
                   {"warning", LOG_WARNING},
                   {"notice", LOG_NOTICE},
                   {"info", LOG_INFO},
                   {"debug", LOG_DEBUG}};

int log_level_from(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i].name) == 0)
            return level_names[i].level;
    return -1;
}

const char *log_level_name(int level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (level_names[i].level == level)
            return level_names[i].name;
    return "info";
}

void log_msg(int level, const char *fmt, ...)
{
    static const char *const words[] = {"emerg",   "alert",  "crit", "error",
                                        "warning", "notice", "info", "debug"};
    char line[2048];
    int n;
    va_list ap;

    if (level > cur_level)
        return;
    if (to_journal)
        n = snprintf(line, sizeof(line), "<%d>%s: ", level, cur_role);
    else
        n = snprintf(line, sizeof(line), "%s[%d]: %s: ", cur_role, (int)getpid(), words[level & 7]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* one write per line, so lines of several processes never interleave */
    size_t len = strlen(line);
    line[len++] = '\n';
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report it */
    }
}
