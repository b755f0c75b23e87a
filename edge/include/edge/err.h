/*
 * edge/err.h: the error codes every edge/ function returns, and edge_strerror().
 *
 * Functions return 0 on success or one negative EDGE_ERR_* value; each declaration lists the
 * codes it can return. Parsers also set `const char **err_desc` to a static reason string.
 */
#ifndef EDGE_ERR_H
#define EDGE_ERR_H

enum {
    EDGE_OK = 0,
    EDGE_ERR_NOMEM = -1,       /* out of memory */
    EDGE_ERR_INVAL = -2,       /* bad argument or malformed input; see err_desc */
    EDGE_ERR_STATE = -3,       /* call not allowed in the object's current state */
    EDGE_ERR_TOO_BIG = -4,     /* over a configured limit or an output buffer */
    EDGE_ERR_TRUNCATED = -5,   /* an object ended before its announced Content-Length */
    EDGE_ERR_UPSTREAM = -6,    /* the origin failed (the fetcher's own reason goes to the log) */
    EDGE_ERR_UNCACHEABLE = -7, /* response is private: waiters must fetch on their own */
    EDGE_ERR_TOKEN_MALFORMED = -20, /* signed URL parameters missing, repeated or not parsable */
    EDGE_ERR_TOKEN_EXPIRED = -21,   /* sw_exp is in the past */
    EDGE_ERR_TOKEN_BAD_SIG = -22,   /* signature does not verify (or unknown sw_kid) */
    EDGE_ERR_TOKEN_PREFIX = -23,    /* the path is outside the signed sw_prefix */
};

/** Names an EDGE_ERR_* code ("out of memory"); "unknown error" for anything else. Any thread. */
const char *edge_strerror(int rv);

#endif
