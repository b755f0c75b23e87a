#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sw/log.h"
#include "sw/sw.h"

static atomic_int log_level = SW_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sw_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int sw_log_get_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int sw_log_level_parse(const char *s)
{
    for (int i = 0; i < (int)SW_ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return SW_LOG_WARN;
    return -1;
}

void sw_vlog(int level, const char *comp, const char *fmt, va_list ap)
{
    char line[2048];
    char ts[32];

    if (level > sw_log_get_level())
        return;
    if (level < SW_LOG_ERROR)
        level = SW_LOG_ERROR;
    if (level > SW_LOG_DEBUG)
        level = SW_LOG_DEBUG;
    int n = snprintf(line, sizeof(line), "%s %-5s %s: ", sw_iso8601(sw_now_ms(), ts, sizeof(ts)),
                     level_names[level], comp);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line, so that lines from different threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void sw_log(int level, const char *comp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sw_vlog(level, comp, fmt, ap);
    va_end(ap);
}
