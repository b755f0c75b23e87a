/*
 * sw/log.h: one log line per event, to stderr, safe from any thread.
 *
 * A line reads `2026-11-28T06:40:03.123Z warn  srt: publisher 127.0.0.1:5000 refused: ...`.
 * The whole line is written with one write(2), so lines from threads never interleave.
 */
#ifndef SW_LOG_H
#define SW_LOG_H

#include <stdarg.h>

enum sw_log_level {
    SW_LOG_ERROR = 0,
    SW_LOG_WARN = 1,
    SW_LOG_INFO = 2,
    SW_LOG_DEBUG = 3,
};

/** Sets the most verbose level that is printed (default SW_LOG_INFO). Any thread. */
void sw_log_set_level(int level);
int sw_log_get_level(void);

/**
 * Parses "error", "warn", "info" or "debug". Returns the level, or -1 for anything else.
 */
int sw_log_level_parse(const char *s);

/** Logs one line. `comp` names the component ("srt", "http", "hls"). Any thread. */
void sw_log(int level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sw_vlog(int level, const char *comp, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define sw_log_enabled(level) ((level) <= sw_log_get_level())

#endif
