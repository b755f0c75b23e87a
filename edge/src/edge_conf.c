/*
 * The edge's configuration keys: one table drives the file, the flags and --help.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "sw/log.h"

#define OFF(f) offsetof(edge_config_t, f)

static int set_origin(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_config_t *c = cfg;
    (void)arg;
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0 &&
        strncmp(value, "h2c://", 6) != 0) {
        *err = "an origin URL starts with http://, https:// or h2c://";
        return -1;
    }
    char **o = realloc(c->origins, (c->n_origins + 1) * sizeof(*o));
    if (o == NULL) {
        *err = "out of memory";
        return -1;
    }
    c->origins = o;
    if ((o[c->n_origins] = strdup(value)) == NULL) {
        *err = "out of memory";
        return -1;
    }
    c->n_origins++;
    return 0;
}

static const sw_conf_key_t keys[] = {
    {"", "listen", SW_CONF_STR, OFF(listen), 0, 0, NULL, "0.0.0.0:8081",
     "HTTP listen address (HTTP/1.1 and h2c)"},
    {"", "tls_listen", SW_CONF_STR, OFF(tls_listen), 0, 0, NULL, "(none)",
     "HTTPS listen address (HTTP/2 or HTTP/1.1 by ALPN); needs tls_cert and tls_key"},
    {"", "tls_cert", SW_CONF_STR, OFF(tls_cert), 0, 0, NULL, "(none)",
     "PEM certificate chain for tls_listen"},
    {"", "tls_key", SW_CONF_STR, OFF(tls_key), 0, 0, NULL, "(none)",
     "PEM private key for tls_listen"},
    {"", "origin", SW_CONF_CUSTOM, 0, 0, 0, set_origin, "(none)",
     "origin base URL; repeat for failover, first is primary"},
    {"", "cache_size", SW_CONF_SIZE, OFF(cache_size), 1 << 20, INT64_MAX, NULL, "256M",
     "memory cache budget (k, M, G)"},
    {"", "log_level", SW_CONF_LOGLEVEL, OFF(log_level), 0, 0, NULL, "info",
     "error, warn, info or debug"},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

const sw_conf_key_t *edge_conf_keys(void)
{
    return keys;
}

void edge_config_init(edge_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = strdup("0.0.0.0:8081");
    c->cache_size = 256LL << 20;
    c->log_level = SW_LOG_INFO;
}

void edge_config_dispose(edge_config_t *c)
{
    sw_conf_free_strings(keys, c);
    for (size_t i = 0; i < c->n_origins; i++)
        free(c->origins[i]);
    free(c->origins);
    memset(c, 0, sizeof(*c));
}
