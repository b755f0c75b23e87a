/*
 * sw_alog.c: the access log (sw/alog.h), shared by the edge (one descriptor per worker) and the
 * origin.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sw/alog.h"
#include "sw/sw.h"

int sw_alog_open(sw_alog_t *l, const char *spec, char *err, size_t errlen)
{
    l->fd = -1;
    l->owned = 0;
    if (spec == NULL || strcmp(spec, "off") == 0)
        return 0;
    if (strcmp(spec, "stderr") == 0) {
        l->fd = 2;
        return 0;
    }
    int fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "access_log %s: %s", spec, strerror(errno));
        return SW_ERR_IO;
    }
    l->fd = fd;
    l->owned = 1;
    return 0;
}

void sw_alog_close(sw_alog_t *l)
{
    if (l->owned)
        close(l->fd);
    l->fd = -1;
    l->owned = 0;
}

/* Appends `v` quoted, escaping what could break the line or forge a field: the request target
 * comes from the network. */
static size_t put_quoted(char *out, size_t room, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (room < 8)
        return 0;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p && n + 6 < room; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n++] = '"';
    return n;
}

void sw_alog_write(const sw_alog_t *l, const sw_alog_rec_t *r)
{
    char line[6144], t[40], target[4200];
    if (l->fd < 0)
        return;
    snprintf(target, sizeof(target), "%s%s%s", r->path ? r->path : "-",
             r->query && r->query[0] ? "?" : "", r->query ? r->query : "");
    size_t n = (size_t)snprintf(line, sizeof(line), "time=%s peer=%s proto=%s method=%s path=",
                                sw_iso8601(sw_now_ms(), t, sizeof(t)),
                                r->peer && r->peer[0] ? r->peer : "-",
                                r->version == 20   ? "HTTP/2"
                                : r->version == 10 ? "HTTP/1.0"
                                                   : "HTTP/1.1",
                                r->method ? r->method : "-");
    n += put_quoted(line + n, sizeof(line) - n, target);
    n += (size_t)snprintf(
        line + n, sizeof(line) - n, " status=%d bytes=%llu duration_ms=%lld cache=%s", r->status,
        (unsigned long long)r->bytes, (long long)r->duration_ms, r->cache ? r->cache : "-");
    if (r->upstream_ms >= 0 && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, " upstream_ms=%lld",
                              (long long)r->upstream_ms);
    if (r->aborted && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, " aborted=1");
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    line[n++] = '\n';
    /* A failed or short write loses one line; the request path must not stall on the log. */
    ssize_t w = write(l->fd, line, n);
    (void)w;
}
