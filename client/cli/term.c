/* term.c - what forq shows on a terminal, and Ctrl-C.
 *
 * The status line (a map's progress bar, a job's latest progress) lives on stderr, drawn in
 * place with "\r" and erased with "\r\033[K". Any other output that reaches the terminal - a
 * result line when stdout is the terminal too, a message on stderr - erases it first and draws
 * it again after, so that a line of output never carries pieces of the bar. The line is cut
 * to the terminal's width: a line that wrapped could not be erased by "\r\033[K".
 *
 * Ctrl-C and SIGTERM: the first only sets a flag, which the waiting loops look at (they wait
 * in slices), so that forq can cancel what it started and say what was done; a second one
 * exits at once. The handler is installed without SA_RESTART, so a read of stdin that blocks
 * returns EINTR. */
#define _GNU_SOURCE
#include "cli.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t interrupts;
static char status_text[512]; /* the status line as drawn, "" when none */
static bool status_shown;     /* it is on the screen now */

static void on_interrupt(int sig)
{
    (void)sig;
    if (interrupts++ > 0)
        _exit(EXIT_INTERRUPTED);
}

void term_catch_interrupts(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool term_interrupted(void)
{
    return interrupts > 0;
}

bool term_stderr_is_tty(void)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDERR_FILENO);
    return tty;
}

bool term_stdout_is_tty(void)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDOUT_FILENO);
    return tty;
}

static size_t columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
        return ws.ws_col;
    return 80;
}

void term_redraw(void)
{
    if (!term_stderr_is_tty() || !status_text[0])
        return;
    /* one column short of the width: a line that fills it would leave the cursor past it */
    fprintf(stderr, "\r%.*s\033[K", (int)(columns() - 1), status_text);
    fflush(stderr);
    status_shown = true;
}

void term_status(const char *fmt, ...)
{
    va_list ap;

    if (!term_stderr_is_tty())
        return;
    va_start(ap, fmt);
    vsnprintf(status_text, sizeof(status_text), fmt, ap);
    va_end(ap);
    for (char *p = status_text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' '; /* a task's text must not move the cursor */
    term_redraw();
}

void term_clear(void)
{
    if (!status_shown)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    status_shown = false;
}

void term_forget(void)
{
    term_clear();
    status_text[0] = '\0';
}

void term_say(const char *fmt, ...)
{
    va_list ap;

    term_clear();
    fputs("forq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    term_redraw();
}

void term_result(json_t *j)
{
    bool erase = status_shown && term_stdout_is_tty();

    if (erase)
        term_clear();
    print_json(j, JSON_COMPACT);
    if (erase) {
        fflush(stdout);
        term_redraw();
    }
}

void term_bar(char *buf, size_t size, size_t width, uint64_t done, uint64_t total)
{
    size_t fill = total == 0 ? 0 : done >= total ? width : (size_t)(done * width / total);

    if (width + 3 > size)
        width = size - 3, fill = fill > width ? width : fill;
    buf[0] = '[';
    memset(buf + 1, '=', fill);
    memset(buf + 1 + fill, ' ', width - fill);
    buf[width + 1] = ']';
    buf[width + 2] = '\0';
}
