/* keys.c - CURVE keys for the forq command: `forq keygen`, and the key pair and server key a
 * connection to a tcp endpoint uses (--key / $FORQ_KEY, --server-key / $FORQ_SERVER_KEY). */
#define _GNU_SOURCE
#include "cli.h"

#include "keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The default key file: $XDG_CONFIG_HOME/forq/client.key, else ~/.config/forq/client.key.
 * -1 if there is no home to put it in. */
static int default_key_path(char *buf, size_t size, bool make_dir)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    char dir[4096];

    if (xdg && *xdg)
        snprintf(dir, sizeof(dir), "%s/forq", xdg);
    else if (home && *home)
        snprintf(dir, sizeof(dir), "%s/.config/forq", home);
    else
        return -1;
    if (make_dir) {
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            mkdir(parent, 0700); /* ~/.config, when absent */
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -1;
    }
    if ((size_t)snprintf(buf, size, "%s/client.key", dir) >= size)
        return -1;
    return 0;
}

int keys_apply(const globals_t *g, forq_client_opts_t *o, char pub[41], char sec[41], char srv[41])
{
    const char *server = g->server_key ? g->server_key : getenv("FORQ_SERVER_KEY");
    const char *key = g->key_file ? g->key_file : getenv("FORQ_KEY");
    char path[4096], err[600];

    if (!server || !*server) {
        if (g->key_file)
            return usage_error("%s", "--key needs --server-key (forqd's public key, which "
                                     "forqd --show-key prints)");
        return 0; /* plaintext: ipc, or forqd --insecure-tcp */
    }
    if (keyfile_public(server, srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "forq: --server-key: %s\n", err);
        return EXIT_USAGE;
    }
    if (!key || !*key) {
        if (default_key_path(path, sizeof(path), false) < 0 || access(path, F_OK) < 0) {
            fprintf(stderr, "forq: with a server key, forq needs your key pair: give --key FILE "
                            "($FORQ_KEY), or make the default one with forq keygen\n");
            return EXIT_USAGE;
        }
        key = path;
    }
    if (keyfile_read(key, pub, sec, err, sizeof(err)) < 0) {
        fprintf(stderr, "forq: --key: %s\n", err);
        return EXIT_USAGE;
    }
    if (!sec[0]) {
        fprintf(stderr,
                "forq: --key: %s holds no secret key: give the key file forq keygen wrote "
                "(its public key alone is for forqd's clients file)\n",
                key);
        return EXIT_USAGE;
    }
    o->server_key = srv;
    o->public_key = pub;
    o->secret_key = sec;
    return 0;
}

int cmd_keygen(const globals_t *g, int argc, char **argv)
{
    static const opt_t opts[] = {{"out", true, 'o'}, {"force", false, 'f'}, {NULL, false, 0}};
    const char *out = NULL;
    bool force = false;
    char path[4096], pub[FORQ_KEY_Z85], err[600];
    args_t a;
    int r;

    (void)g;
    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (r == 'o')
            out = a.val;
        else if (r == 'f')
            force = true;
        else
            return cmd_usage_error("keygen", "unexpected argument '%s'", a.val);
    }
    if (!out) {
        if (default_key_path(path, sizeof(path), true) < 0)
            return cmd_usage_error("keygen", "%s",
                                   "there is no $XDG_CONFIG_HOME or $HOME to keep the key in: "
                                   "give --out FILE");
        out = path;
    }
    if (keyfile_generate(out, force, pub, err, sizeof(err)) < 0) {
        fprintf(stderr, "forq: keygen: %s\n", err);
        return EXIT_USAGE;
    }
    printf("%s\n", pub);
    fprintf(stderr,
            "forq: a new key pair is in %s (mode 0600: keep it secret); the public key above "
            "goes in forqd's clients file: KEY NAME tasks=... read=... write=...\n",
            out);
    return 0;
}
