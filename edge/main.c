/*
 * shortwave-edge: a caching HTTP node in front of Shortwave origins. Parses flags and the config
 * file, starts the daemon (its workers run loops of their own) and runs the main loop: signals
 * and, with redis set, the overlay websockets.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "edge/edge.h"
#include "sw/log.h"

static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 'L'},
    {"tls-listen", required_argument, NULL, 'T'},
    {"tls-cert", required_argument, NULL, 'C'},
    {"tls-key", required_argument, NULL, 'K'},
    {"origin", required_argument, NULL, 'o'},
    {"parent", required_argument, NULL, 'P'},
    {"cache-size", required_argument, NULL, 'S'},
    {"workers", required_argument, NULL, 'w'},
    {"log-level", required_argument, NULL, 'l'},
    {"web-root", required_argument, NULL, 'W'},
    {"redis", required_argument, NULL, 'R'},
    {"check-config", no_argument, NULL, 'k'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shortwave-edge [-c FILE] [--listen ADDR:PORT] [--origin URL]...\n"
            "                      [--parent URL]...\n"
            "                      [--tls-listen ADDR:PORT --tls-cert FILE --tls-key FILE]\n"
            "                      [--cache-size BYTES] [--workers N]\n"
            "                      [--log-level error|warn|info|debug]\n"
            "                      [--web-root DIR] [--redis URL] [--check-config]\n"
            "\nFlags override the file (--origin and --parent add to its lists). Config keys (key, "
            "default):\n");
    for (const sw_conf_key_t *k = edge_conf_keys(); k->name != NULL; k++) {
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s%s", k->section[0] ? "[" : "", k->section,
                 k->section[0] ? "] " : "", k->name);
        fprintf(f, "  %-24s %-13s %s\n", name, k->def, k->help);
    }
}

static void free_config(edge_config_t *cfg)
{
    edge_config_dispose(cfg);
    free(cfg);
}

/* Fills `cfg` (already initialized) from the file, then the flags: at start and on SIGHUP, so
 * that a reload sees the same flags over the new file. Returns 0, or -1 with err set. */
static int load_config(edge_config_t *cfg, const char *file, int argc, char **argv, int *check_only,
                       char *err, size_t errlen)
{
    int opt;
    if (file != NULL && sw_conf_load(file, edge_conf_keys(), cfg, err, errlen) != 0)
        return -1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case 'L':
            key = "listen";
            break;
        case 'T':
            key = "tls_listen";
            break;
        case 'C':
            key = "tls_cert";
            break;
        case 'K':
            key = "tls_key";
            break;
        case 'o':
            key = "origin";
            break;
        case 'P':
            key = "parent";
            break;
        case 'S':
            key = "cache_size";
            break;
        case 'w':
            key = "workers";
            break;
        case 'l':
            key = "log_level";
            break;
        case 'W':
            key = "web_root";
            break;
        case 'R':
            key = "redis";
            break;
        case 'k':
            *check_only = 1;
            break;
        }
        if (key != NULL && sw_conf_set(edge_conf_keys(), cfg, "", key, optarg, err, errlen) != 0)
            return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    return 0;
}

typedef struct daemon_ctx {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    edge_daemon_t *edge;
    const char *file;
    int argc;
    char **argv;
    int stopping;
} daemon_ctx_t;

static void on_closed(void *data)
{
    daemon_ctx_t *d = data;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
}

/* SIGHUP: re-read the file and the flags, and hand the result to the daemon, which passes it to
 * every worker; on any error the running configuration stays. */
static void on_sighup(uv_signal_t *h, int signum)
{
    daemon_ctx_t *d = h->data;
    char err[512];
    int check_only = 0;
    (void)signum;
    if (d->stopping)
        return;
    edge_config_t *next = malloc(sizeof(*next));
    if (next == NULL) {
        sw_log(SW_LOG_ERROR, "edge", "reload: out of memory");
        return;
    }
    edge_config_init(next);
    if (load_config(next, d->file, d->argc, d->argv, &check_only, err, sizeof(err)) != 0 ||
        edge_daemon_reload(d->edge, next, err, sizeof(err)) != 0) {
        sw_log(SW_LOG_ERROR, "edge", "reload failed, keeping the running configuration: %s", err);
        free_config(next);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_ctx_t *d = h->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    sw_log(SW_LOG_INFO, "edge", "signal %d: shutting down", signum);
    edge_daemon_shutdown(d->edge, on_closed, d);
}

int main(int argc, char **argv)
{
    edge_config_t *cfg = malloc(sizeof(*cfg));
    char err[512];
    const char *file = NULL;
    int check_only = 0, opt;

    if (cfg == NULL) {
        fprintf(stderr, "shortwave-edge: out of memory\n");
        return 1;
    }
    edge_config_init(cfg);
    /* First pass: find the file, so that flags can override what it says. */
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (opt == 'c')
            file = optarg;
        else if (opt == 'h' || opt == 'V' || opt == '?') {
            if (opt == 'V')
                printf("shortwave-edge 0.1.0\n");
            else
                usage(opt == 'h' ? stdout : stderr);
            free_config(cfg);
            return opt == '?' ? 2 : 0;
        }
    }
    if (load_config(cfg, file, argc, argv, &check_only, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-edge: %s\n", err);
        free_config(cfg);
        return 2;
    }
    sw_log_set_level(cfg->log_level);
    if (edge_config_check(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-edge: %s\n", err);
        free_config(cfg);
        return 2;
    }
    if (check_only) {
        printf("configuration ok\n");
        free_config(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    /* Blocked while the workers start, which inherit the mask: a signal that comes meanwhile
     * waits for the handlers below, and only this thread ever takes them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    daemon_ctx_t d = {0};
    if (uv_loop_init(&d.loop) != 0) {
        fprintf(stderr, "shortwave-edge: cannot create the event loop\n");
        free_config(cfg);
        return 1;
    }
    if (edge_daemon_new(&d.edge, &d.loop, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-edge: %s\n", err);
        free_config(cfg);
        uv_loop_close(&d.loop);
        return 1;
    }
    d.file = file;
    d.argc = argc;
    d.argv = argv;
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

    uv_run(&d.loop, UV_RUN_DEFAULT);

    edge_daemon_free(d.edge);
    uv_loop_close(&d.loop);
    sw_log(SW_LOG_INFO, "edge", "stopped");
    return 0;
}
