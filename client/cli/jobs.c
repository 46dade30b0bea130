/* jobs.c - the commands about one job: submit (waiting for its result unless --no-wait, its
 * progress on a terminal, Ctrl-C cancelling it) and wait (the result of a job submitted
 * elsewhere). map.c has the map. */
#define _GNU_SOURCE
#include "cli.h"

#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Report how a done future ended: the result on stdout, or one line on stderr. */
static int report(forq_future_t *f)
{
    forq_state_t st = forq_future_state(f);
    const void *data;
    size_t len;

    if (forq_future_result(f, &data, &len) == FORQ_OK) {
        print_msgpack(data, len, JSON_COMPACT);
        return 0;
    }
    if (st == FORQ_STATE_ERROR)
        fprintf(stderr, "forq: job %s failed: %s: %s\n", forq_future_id(f),
                forq_future_error_type(f) ? forq_future_error_type(f) : "Error",
                forq_future_detail(f));
    else if (st == FORQ_STATE_REJECTED)
        fprintf(stderr, "forq: job %s rejected (%s): %s\n", forq_future_id(f),
                forq_future_code(f) ? forq_future_code(f) : "rejected", forq_future_detail(f));
    else
        fprintf(stderr, "forq: job %s %s: %s\n", forq_future_id(f), forq_state_name(st),
                forq_future_detail(f));
    return exit_for(st);
}

/* Ctrl-C while submit waits: cancel the job, or leave it running (--detach-on-interrupt). */
static int interrupted(const globals_t *g, forq_client_t *c, forq_future_t *f, bool detach)
{
    const char *id = forq_future_id(f);
    int tmo = ms_of(g->connect_timeout);
    forq_cancel_t out;
    forq_job_info_t info;

    if (detach) {
        /* one round trip: forqd has the job once this answers, so the id is worth printing */
        if (forq_client_status(c, id, tmo, &info) != FORQ_OK) {
            fprintf(stderr, "forq: interrupted; could not make sure forqd has job %s: %s\n", id,
                    forq_errdetail());
            return EXIT_INTERRUPTED;
        }
        if (info.state > FORQ_STATE_RUNNING && forq_future_wait(f, tmo) == FORQ_OK)
            return report(f); /* it finished meanwhile: there is nothing to go on */
        fprintf(stderr, "forq: job %s goes on: forq wait %s / forq cancel %s\n", id, id, id);
        return EXIT_INTERRUPTED;
    }
    if (forq_client_cancel(c, id, tmo, &out) != FORQ_OK) {
        fprintf(stderr, "forq: interrupted, but job %s could not be cancelled: %s\n", id,
                forq_errdetail());
        return EXIT_INTERRUPTED;
    }
    if (out == FORQ_CANCEL_FINISHED && forq_future_wait(f, tmo) == FORQ_OK)
        return report(f); /* it finished before the cancel came */
    fprintf(stderr, "forq: interrupted: job %s cancelled (%s)\n", id,
            out == FORQ_CANCEL_KILLING ? "its worker was killed" : "it had not started");
    return EXIT_INTERRUPTED;
}

int job_option(int id, const char *val, forq_submit_opts_t *so)
{
    long v;

    switch (id) {
    case O_JOB_TIMEOUT:
        return parse_seconds("--timeout", val, &so->timeout);
    case O_JOB_PRIORITY:
        if (parse_int("--priority", val, 0, 9, &v) < 0)
            return -1;
        so->priority = (int)v;
        return 0;
    case O_JOB_RETRIES:
        if (parse_int("--retries", val, 0, 100, &v) < 0)
            return -1;
        so->retries = (unsigned)v;
        return 0;
    case O_JOB_TAGS:
        so->tags = val;
        return 0;
    }
    return -1;
}

int cmd_submit(const globals_t *g, int argc, char **argv)
{
    enum { O_DEADLINE = 1, O_ID, O_NO_WAIT, O_WAIT_TIMEOUT, O_STORE, O_DETACH };
    static const opt_t opts[] = {
        JOB_OPTS,
        {"deadline", true, O_DEADLINE},
        {"id", true, O_ID},
        {"no-wait", false, O_NO_WAIT},
        {"wait-timeout", true, O_WAIT_TIMEOUT},
        {"store", true, O_STORE},
        {"detach-on-interrupt", false, O_DETACH},
        {NULL, false, 0},
    };
    forq_submit_opts_t so;
    char store[WIRE_ID_MAX + 1 + 1024 + 1];
    const char *operand[2] = {NULL, NULL};
    forq_client_t *c = NULL;
    forq_future_t *f = NULL;
    json_t *args;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[256];
    double wait_s = -1;
    bool no_wait = false, detach = false;
    int nop = 0, r, rc;
    args_t a;

    forq_submit_opts_init(&so);
    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        switch (r) {
        case ARGS_STOP:
            return a.rc;
        case O_JOB_TIMEOUT:
        case O_JOB_PRIORITY:
        case O_JOB_RETRIES:
        case O_JOB_TAGS:
            if (job_option(r, a.val, &so) < 0)
                return EXIT_USAGE;
            break;
        case ARGS_OPERAND:
            if (nop == 2)
                return cmd_usage_error("submit",
                                       "unexpected argument '%s' (quote ARGS_JSON as one "
                                       "argument)",
                                       a.val);
            operand[nop++] = a.val;
            break;
        case O_DEADLINE:
            if (parse_seconds("--deadline", a.val, &so.deadline) < 0)
                return EXIT_USAGE;
            break;
        case O_WAIT_TIMEOUT:
            if (parse_seconds("--wait-timeout", a.val, &wait_s) < 0)
                return EXIT_USAGE;
            break;
        case O_ID:
            so.id = a.val;
            break;
        case O_STORE: {
            const char *slash = strchr(a.val, '/');
            if (!slash || slash == a.val || !slash[1] || strlen(a.val) >= sizeof(store))
                return cmd_usage_error("submit", "--store takes DICT/KEY, not '%s'", a.val);
            snprintf(store, sizeof(store), "%s", a.val);
            store[slash - a.val] = '\0';
            so.store_dict = store;
            so.store_key = store + (slash - a.val) + 1;
            break;
        }
        case O_NO_WAIT:
            no_wait = true;
            break;
        case O_DETACH:
            detach = true;
            break;
        }
    }
    if (!operand[0])
        return cmd_usage_error("submit", "%s", "submit needs a TASK");
    if (operand[1]) {
        if (!(args = json_argument("ARGS_JSON", operand[1])))
            return EXIT_USAGE;
    } else {
        args = json_array();
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc = json_to_msgpack(args, &pk, err, sizeof(err));
    json_decref(args);
    if (rc < 0) {
        fprintf(stderr, "forq: ARGS_JSON: %s\n", err);
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }
    if ((rc = connect_client(g, &c)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    if (!no_wait)
        term_catch_interrupts(); /* from here on Ctrl-C has a job to cancel */
    if (forq_submit(c, operand[0], sb.data, sb.size, &so, &f) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
    } else if (no_wait) {
        forq_job_info_t info;
        /* one round trip: forqd has the job (or its rejection) once this answers */
        if (forq_client_status(c, forq_future_id(f), ms_of(g->connect_timeout), &info) != FORQ_OK) {
            fprintf(stderr, "forq: %s\n", forq_errdetail());
            rc = EXIT_CONNECT;
        } else if (forq_future_done(f) && forq_future_state(f) != FORQ_STATE_OK) {
            rc = report(f);
        } else {
            puts(forq_future_id(f));
            rc = 0;
        }
    } else if (wait_future(g, c, f, ms_of(wait_s)) == FORQ_OK) {
        rc = report(f);
    } else if (term_interrupted()) {
        rc = interrupted(g, c, f, detach);
    } else {
        fprintf(stderr, "forq: job %s still pending after %g s; it goes on ('forq wait %s')\n",
                forq_future_id(f), wait_s, forq_future_id(f));
        rc = EXIT_WAIT_TIMEOUT;
    }
    msgpack_sbuffer_destroy(&sb);
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    return rc;
}

int cmd_wait(const globals_t *g, int argc, char **argv)
{
    static const opt_t opts[] = {{"timeout", true, 't'}, {NULL, false, 0}};
    forq_client_t *c = NULL;
    forq_future_t *f = NULL;
    const char *id = NULL;
    double wait_s = -1;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (r == 't' && parse_seconds("--timeout", a.val, &wait_s) < 0)
            return EXIT_USAGE;
        if (r == ARGS_OPERAND) {
            if (id)
                return cmd_usage_error("wait", "%s", "wait takes exactly one job ID");
            id = a.val;
        }
    }
    if (!id)
        return cmd_usage_error("wait", "%s", "wait takes exactly one job ID");
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    term_catch_interrupts();
    if (forq_client_fetch(c, id, &f) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
    } else if (wait_future(g, c, f, ms_of(wait_s)) == FORQ_OK) {
        if (forq_future_state(f) == FORQ_STATE_UNKNOWN) {
            fprintf(stderr, "forq: %s\n", forq_future_detail(f));
            rc = EXIT_NOT_FOUND;
        } else {
            rc = report(f);
        }
    } else if (term_interrupted()) {
        fprintf(stderr, "forq: stopped waiting; job %s goes on: forq wait %s / forq cancel %s\n",
                id, id, id);
        rc = EXIT_INTERRUPTED;
    } else {
        fprintf(stderr, "forq: job %s still pending after %g s; it goes on\n", id, wait_s);
        rc = EXIT_WAIT_TIMEOUT;
    }
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    return rc;
}
