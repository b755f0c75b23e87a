#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sw/sw.h"

const char *sw_strerror(int rv)
{
    switch (rv) {
    case SW_OK:
        return "ok";
    case SW_ERR_NOMEM:
        return "out of memory";
    case SW_ERR_INVAL:
        return "invalid argument or input";
    case SW_ERR_IO:
        return "i/o error";
    case SW_ERR_ADDR:
        return "bad address";
    case SW_ERR_STATE:
        return "not allowed in this state";
    case SW_ERR_CLOSED:
        return "closed";
    case SW_ERR_TOO_BIG:
        return "too big";
    }
    return "unknown error";
}

int64_t sw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t sw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int sw_addr_parse(const char *s, struct sockaddr_storage *out)
{
    char host[256];
    const char *colon, *port_s;

    memset(out, 0, sizeof(*out));
    if (s == NULL || *s == '\0')
        return SW_ERR_ADDR;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return SW_ERR_ADDR;
        memcpy(host, s + 1, end - s - 1);
        host[end - s - 1] = '\0';
        port_s = end + 2;
    } else {
        if ((colon = strrchr(s, ':')) == NULL || (size_t)(colon - s) >= sizeof(host))
            return SW_ERR_ADDR;
        memcpy(host, s, colon - s);
        host[colon - s] = '\0';
        port_s = colon + 1;
    }
    char *endp;
    long port = strtol(port_s, &endp, 10);
    if (*port_s == '\0' || *endp != '\0' || port < 0 || port > 65535)
        return SW_ERR_ADDR;

    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = htons((uint16_t)port);
    } else if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        if (strcmp(host, "localhost") == 0)
            v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    } else {
        return SW_ERR_ADDR;
    }
    return 0;
}

const char *sw_addr_format(const void *sa, char *buf, size_t len)
{
    const struct sockaddr *a = sa;
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = sa;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(v4->sin_port));
    } else if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(v6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
    return buf;
}

const char *sw_iso8601(int64_t unix_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
    return buf;
}
