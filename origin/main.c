/*
 * shortwave-origin: SRT in, LL-HLS and DASH out. Parses flags and the config file, runs the loop.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "origin/origin.h"
#include "sw/log.h"

static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"srt", required_argument, NULL, 's'},
    {"http", required_argument, NULL, 'H'},
    {"data", required_argument, NULL, 'd'},
    {"redis", required_argument, NULL, 'r'},
    {"public-url", required_argument, NULL, 'p'},
    {"log-level", required_argument, NULL, 'l'},
    {"check-config", no_argument, NULL, 'k'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shortwave-origin [-c FILE] [--srt ADDR:PORT] [--http ADDR:PORT] [--data DIR]\n"
            "                        [--redis redis://HOST:PORT] [--public-url URL]\n"
            "                        [--log-level error|warn|info|debug] [--check-config]\n"
            "\nFlags override the file. Config keys (section, key, default):\n");
    for (const sw_conf_key_t *k = origin_conf_keys(); k->name != NULL; k++) {
        char sec[24];
        snprintf(sec, sizeof(sec), k->section[0] ? "[%s]" : "%s", k->section);
        fprintf(f, "  %-8s %-17s %-13s %s\n", sec, k->name, k->def, k->help);
    }
}

typedef struct daemon_ctx {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    origin_t *origin;
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
    /* A hang-up must not stop a live origin; its configuration is read once, at start. */
    sw_log(SW_LOG_WARN, "origin",
           "SIGHUP ignored: restart the origin to apply a new configuration");
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_ctx_t *d = h->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    sw_log(SW_LOG_INFO, "origin", "signal %d: shutting down", signum);
    origin_shutdown(d->origin, on_closed, d);
}

int main(int argc, char **argv)
{
    origin_config_t cfg;
    char err[512];
    const char *file = NULL;
    int check_only = 0, opt;

    origin_config_init(&cfg);
    /* First pass: find the file, so that flags can override what it says. */
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (opt == 'c')
            file = optarg;
        else if (opt == 'h' || opt == 'V' || opt == '?') {
            if (opt == 'V')
                printf("shortwave-origin 0.1.0\n");
            else
                usage(opt == 'h' ? stdout : stderr);
            origin_config_dispose(&cfg);
            return opt == '?' ? 2 : 0;
        }
    }
    if (file != NULL && sw_conf_load(file, origin_conf_keys(), &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-origin: %s\n", err);
        origin_config_dispose(&cfg);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case 's':
            key = "srt";
            break;
        case 'H':
            key = "http";
            break;
        case 'd':
            key = "data";
            break;
        case 'r':
            key = "redis";
            break;
        case 'p':
            key = "public_url";
            break;
        case 'l':
            key = "log_level";
            break;
        case 'k':
            check_only = 1;
            break;
        }
        if (key != NULL &&
            sw_conf_set(origin_conf_keys(), &cfg, "", key, optarg, err, sizeof(err)) != 0) {
            fprintf(stderr, "shortwave-origin: %s\n", err);
            origin_config_dispose(&cfg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shortwave-origin: unexpected argument \"%s\"\n", argv[optind]);
        origin_config_dispose(&cfg);
        return 2;
    }
    /* The token may stay out of the file (a systemd EnvironmentFile, a Kubernetes Secret). */
    const char *env_token = getenv("SHORTWAVE_API_TOKEN");
    if ((cfg.api_token == NULL || cfg.api_token[0] == '\0') && env_token != NULL &&
        env_token[0] != '\0' &&
        sw_conf_set(origin_conf_keys(), &cfg, "", "api_token", env_token, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-origin: %s\n", err);
        origin_config_dispose(&cfg);
        return 2;
    }
    if (origin_config_check(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-origin: %s\n", err);
        origin_config_dispose(&cfg);
        return 2;
    }
    sw_log_set_level(cfg.log_level);
    if (check_only) {
        printf("configuration ok\n");
        origin_config_dispose(&cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    daemon_ctx_t d = {0};
    if (uv_loop_init(&d.loop) != 0) {
        fprintf(stderr, "shortwave-origin: cannot create the event loop\n");
        origin_config_dispose(&cfg);
        return 1;
    }
    if (origin_new(&d.origin, &d.loop, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-origin: %s\n", err);
        origin_config_dispose(&cfg);
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

    origin_free(d.origin);
    uv_loop_close(&d.loop);
    origin_config_dispose(&cfg);
    sw_log(SW_LOG_INFO, "origin", "stopped");
    return 0;
}
