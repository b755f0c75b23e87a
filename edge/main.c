/*
 * shortwave-edge: a caching HTTP node in front of Shortwave origins. Parses flags and the config
 * file, runs the loop.
 */
#include <getopt.h>
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
    {"cache-size", required_argument, NULL, 'S'},
    {"log-level", required_argument, NULL, 'l'},
    {"check-config", no_argument, NULL, 'k'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shortwave-edge [-c FILE] [--listen ADDR:PORT] [--origin URL]...\n"
               "                      [--tls-listen ADDR:PORT --tls-cert FILE --tls-key FILE]\n"
               "                      [--cache-size BYTES] [--log-level error|warn|info|debug]\n"
               "                      [--check-config]\n"
               "\nFlags override the file (--origin adds to its origins). Config keys (key, "
               "default):\n");
    for (const sw_conf_key_t *k = edge_conf_keys(); k->name != NULL; k++)
        fprintf(f, "  %-12s %-13s %s\n", k->name, k->def, k->help);
}

typedef struct daemon_ctx {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    edge_server_t *edge;
    int stopping;
} daemon_ctx_t;

static void on_closed(void *data)
{
    daemon_ctx_t *d = data;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    sw_log(SW_LOG_WARN, "edge", "SIGHUP ignored: restart the edge to apply a new configuration");
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_ctx_t *d = h->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    sw_log(SW_LOG_INFO, "edge", "signal %d: shutting down", signum);
    edge_server_shutdown(d->edge, on_closed, d);
}

int main(int argc, char **argv)
{
    edge_config_t cfg;
    char err[512];
    const char *file = NULL;
    int check_only = 0, opt;

    edge_config_init(&cfg);
    /* First pass: find the file, so that flags can override what it says. */
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (opt == 'c')
            file = optarg;
        else if (opt == 'h' || opt == 'V' || opt == '?') {
            if (opt == 'V')
                printf("shortwave-edge 0.1.0\n");
            else
                usage(opt == 'h' ? stdout : stderr);
            edge_config_dispose(&cfg);
            return opt == '?' ? 2 : 0;
        }
    }
    if (file != NULL && sw_conf_load(file, edge_conf_keys(), &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-edge: %s\n", err);
        edge_config_dispose(&cfg);
        return 2;
    }
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
        case 'S':
            key = "cache_size";
            break;
        case 'l':
            key = "log_level";
            break;
        case 'k':
            check_only = 1;
            break;
        }
        if (key != NULL &&
            sw_conf_set(edge_conf_keys(), &cfg, "", key, optarg, err, sizeof(err)) != 0) {
            fprintf(stderr, "shortwave-edge: %s\n", err);
            edge_config_dispose(&cfg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shortwave-edge: unexpected argument \"%s\"\n", argv[optind]);
        edge_config_dispose(&cfg);
        return 2;
    }
    sw_log_set_level(cfg.log_level);
    if (cfg.n_origins == 0) {
        fprintf(stderr, "shortwave-edge: no origin configured (--origin URL or origin = URL)\n");
        edge_config_dispose(&cfg);
        return 2;
    }
    if (check_only) {
        printf("configuration ok\n");
        edge_config_dispose(&cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    daemon_ctx_t d = {0};
    if (uv_loop_init(&d.loop) != 0) {
        fprintf(stderr, "shortwave-edge: cannot create the event loop\n");
        edge_config_dispose(&cfg);
        return 1;
    }
    if (edge_server_new(&d.edge, &d.loop, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-edge: %s\n", err);
        edge_config_dispose(&cfg);
        uv_loop_close(&d.loop);
        return 1;
    }
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);

    uv_run(&d.loop, UV_RUN_DEFAULT);

    edge_server_free(d.edge);
    uv_loop_close(&d.loop);
    edge_config_dispose(&cfg);
    sw_log(SW_LOG_INFO, "edge", "stopped");
    return 0;
}
