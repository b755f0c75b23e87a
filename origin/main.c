/*
 * shortwave-origin: SRT in, LL-HLS and DASH out. Parses flags and the config file, runs the loop.
 */
#include <errno.h>
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
    {"analyze", required_argument, NULL, 'A'},
    {"events", required_argument, NULL, 'E'},
    {"analyze-signals", required_argument, NULL, 'S'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: shortwave-origin [-c FILE] [--srt ADDR:PORT] [--http ADDR:PORT] [--data DIR]\n"
        "                        [--redis redis://HOST:PORT] [--public-url URL]\n"
        "                        [--log-level error|warn|info|debug] [--check-config]\n"
        "       shortwave-origin --analyze FILE.ts [--events FILE.jsonl]\n"
        "                        [--analyze-signals FILE|-]\n"
        "\n--analyze runs the shorts detector over a recorded show and its room events (one\n"
        "JSON object a line; without --events there are none, so no moments) and prints the\n"
        "moments as one JSON array; --analyze-signals also writes every signal it fed (loudness,\n"
        "video frames, events) as JSON lines. Exit 0, 2 for a bad argument or input (a bad\n"
        "events line stops it, named), 1 for any other failure.\n"
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
    int argc;
    char **argv;
    origin_config_t cfg; /* the running configuration */
} daemon_ctx_t;

/*
 * Builds the configuration: defaults, the file (-c), the flags over it, SHORTWAVE_API_TOKEN when
 * neither sets api_token, then the checks no single key can make. Returns 0, or 2 with err filled.
 * Run at start and on SIGHUP, with the same arguments.
 */
static int load_config(int argc, char **argv, origin_config_t *cfg, int *check_only, char *err,
                       size_t errlen)
{
    const char *file = NULL;
    int opt;

    origin_config_init(cfg);
    optind = 0; /* glibc: rescan from the start */
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1)
        if (opt == 'c')
            file = optarg;
    if (file != NULL && sw_conf_load(file, origin_conf_keys(), cfg, err, errlen) != 0)
        goto fail;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        static const struct {
            int opt;
            const char *key;
        } flags[] = {{'s', "srt"},   {'H', "http"},       {'d', "data"},
                     {'r', "redis"}, {'p', "public_url"}, {'l', "log_level"}};
        if (opt == 'k' && check_only != NULL)
            *check_only = 1;
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            if (flags[i].opt == opt &&
                sw_conf_set(origin_conf_keys(), cfg, "", flags[i].key, optarg, err, errlen) != 0)
                goto fail;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\"", argv[optind]);
        goto fail;
    }
    /* The token may stay out of the file (a systemd EnvironmentFile, a Kubernetes Secret). */
    const char *env_token = getenv("SHORTWAVE_API_TOKEN");
    if ((cfg->api_token == NULL || cfg->api_token[0] == '\0') && env_token != NULL &&
        env_token[0] != '\0' &&
        sw_conf_set(origin_conf_keys(), cfg, "", "api_token", env_token, err, errlen) != 0)
        goto fail;
    if (origin_config_check(cfg, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    origin_config_dispose(cfg);
    return 2;
}

/* Whether key `k` has the same value in both configurations (keys with a plain value only). */
static int same_value(const sw_conf_key_t *k, const origin_config_t *a, const origin_config_t *b)
{
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
    switch (k->type) {
    case SW_CONF_STR: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
    }
    case SW_CONF_INT:
    case SW_CONF_SIZE:
    case SW_CONF_DURATION:
        return *(const int64_t *)pa == *(const int64_t *)pb;
    case SW_CONF_BOOL:
    case SW_CONF_LOGLEVEL:
        return *(const int *)pa == *(const int *)pb;
    }
    return 1;
}

/* The keys origin_reload() applies; every other key with a plain value needs a restart. */
static int reloadable(const sw_conf_key_t *k)
{
    static const char *const keys[] = {"log_level",      "api_token",      "access_log",
                                       "max_publishers", "max_per_source", "require_passphrase"};
    if (k->type == SW_CONF_CUSTOM)
        return 1; /* [prefix], [pull], [srt] allow */
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(k->name, keys[i]) == 0)
            return 1;
    return 0;
}

static void on_closed(void *data)
{
    daemon_ctx_t *d = data;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
}

/*
 * SIGHUP: re-reads the file and the flags and applies what can change while publishers stay
 * (origin_reload()); a key that needs a restart is named and keeps its running value. A file
 * that does not load leaves everything as it runs.
 */
static void on_sighup(uv_signal_t *h, int signum)
{
    daemon_ctx_t *d = h->data;
    origin_config_t next;
    char err[512];

    (void)signum;
    if (d->stopping)
        return;
    if (load_config(d->argc, d->argv, &next, NULL, err, sizeof(err)) != 0) {
        sw_log(SW_LOG_ERROR, "origin", "reload failed, keeping the running configuration: %s", err);
        return;
    }
    if (origin_reload(d->origin, &next, err, sizeof(err)) != 0) {
        sw_log(SW_LOG_ERROR, "origin", "reload failed, keeping the running configuration: %s", err);
        origin_config_dispose(&next);
        return;
    }
    for (const sw_conf_key_t *k = origin_conf_keys(); k->name != NULL; k++) {
        if (reloadable(k) || same_value(k, &d->cfg, &next))
            continue;
        sw_log(SW_LOG_WARN, "origin",
               "reload: %s%s%s%s changed: needs a restart; the running "
               "value stays",
               k->section[0] ? "[" : "", k->section, k->section[0] ? "] " : "", k->name);
        /* Keep the running value, so that the next reload compares against what runs. */
        const size_t sz = k->type == SW_CONF_STR ? sizeof(char *)
                          : k->type == SW_CONF_BOOL || k->type == SW_CONF_LOGLEVEL
                              ? sizeof(int)
                              : sizeof(int64_t);
        char tmp[sizeof(int64_t)];
        memcpy(tmp, (char *)&next + k->offset, sz);
        memcpy((char *)&next + k->offset, (char *)&d->cfg + k->offset, sz);
        memcpy((char *)&d->cfg + k->offset, tmp, sz);
    }
    origin_config_dispose(&d->cfg);
    d->cfg = next;
    sw_log(SW_LOG_INFO, "origin",
           "reload: applied (log_level, api_token, access_log reopened, [srt] limits "
           "and allow, [prefix] rules, [pull] sections)");
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

/*
 * --analyze: no loop and no config file; the detector's defaults. Returns the exit status: 0, 2
 * for what the caller gave (a file that cannot be read, a bad events line, media that cannot be
 * read), 1 for the rest.
 */
static int analyze(int argc, char **argv)
{
    origin_analyze_opts_t o = {.out = stdout};
    const char *signals = NULL;
    char err[512];
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (opt == 'A')
            o.ts_path = optarg;
        else if (opt == 'E')
            o.events_path = optarg;
        else if (opt == 'S')
            signals = optarg;
        else if (opt == 'l') {
            int level = sw_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "shortwave-origin: log_level: expected error, warn, info or "
                                "debug\n");
                return 2;
            }
            sw_log_set_level(level);
        } else {
            fprintf(stderr, "shortwave-origin: --analyze takes only --events, "
                            "--analyze-signals and --log-level\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shortwave-origin: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (signals != NULL && strcmp(signals, "-") == 0) {
        o.signals = stdout;
    } else if (signals != NULL && (o.signals = fopen(signals, "w")) == NULL) {
        fprintf(stderr, "shortwave-origin: %s: cannot create: %s\n", signals, strerror(errno));
        return 2;
    }
    int rv = origin_analyze(&o, err, sizeof(err));
    if (o.signals != NULL && o.signals != stdout && fclose(o.signals) != 0 && rv == 0) {
        snprintf(err, sizeof(err), "%s: cannot write: %s", signals, strerror(errno));
        rv = ORIGIN_ERR_IO;
    }
    if (rv == 0)
        return 0;
    fprintf(stderr, "shortwave-origin: %s\n", err);
    return rv == ORIGIN_ERR_CONFIG || rv == ORIGIN_ERR_MEDIA ? 2 : 1;
}

int main(int argc, char **argv)
{
    static daemon_ctx_t d;
    char err[512];
    int check_only = 0, opt;

    /* --help and --version first, before a file that might not load. */
    int analyzing = 0, analyze_only = 0;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (opt == 'h' || opt == 'V' || opt == '?') {
            if (opt == 'V')
                printf("shortwave-origin 0.1.0\n");
            else
                usage(opt == 'h' ? stdout : stderr);
            return opt == '?' ? 2 : 0;
        }
        if (opt == 'A')
            analyzing = 1;
        else if (opt == 'E' || opt == 'S')
            analyze_only = 1;
    }
    if (analyzing)
        return analyze(argc, argv);
    if (analyze_only) {
        fprintf(stderr, "shortwave-origin: --events and --analyze-signals need --analyze\n");
        return 2;
    }
    if (load_config(argc, argv, &d.cfg, &check_only, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-origin: %s\n", err);
        return 2;
    }
    sw_log_set_level(d.cfg.log_level);
    if (check_only) {
        printf("configuration ok\n");
        origin_config_dispose(&d.cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    d.argc = argc;
    d.argv = argv;
    if (uv_loop_init(&d.loop) != 0) {
        fprintf(stderr, "shortwave-origin: cannot create the event loop\n");
        origin_config_dispose(&d.cfg);
        return 1;
    }
    if (origin_new(&d.origin, &d.loop, &d.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shortwave-origin: %s\n", err);
        origin_config_dispose(&d.cfg);
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
    origin_config_dispose(&d.cfg);
    sw_log(SW_LOG_INFO, "origin", "stopped");
    return 0;
}
