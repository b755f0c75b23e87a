/*
 * sw_http1.c: the HTTP/1.1 request head parser and response head framing. Pure functions over
 * bytes; the connection core in sw_http.c does the I/O.
 *
 * The parser first looks for the blank line that ends the head, remembering how far it searched
 * so a slow client costs O(n) overall, then parses the whole head in one pass (picohttpparser's
 * approach). Heads are bounded by max_bytes, so the re-parse is cheap.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sw_http_int.h"

/* RFC 9110 token characters. */
static int is_tchar(uint8_t ch)
{
    if (ch >= 'a' && ch <= 'z')
        return 1;
    if (ch >= 'A' && ch <= 'Z')
        return 1;
    if (ch >= '0' && ch <= '9')
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Field values: visible ASCII, space, tab and obs-text. */
static int is_vchar_or_ws(uint8_t ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

void sw__http1_head_init(sw__http1_head_t *h, size_t max_bytes)
{
    memset(h, 0, sizeof(*h));
    h->max_bytes = max_bytes;
    h->content_length = -1;
    h->host_index = -1;
}

static int fail(sw__http1_head_t *h, int status, const char **err_desc, const char *why)
{
    h->status = status;
    if (err_desc != NULL)
        *err_desc = why;
    return SW__HTTP1_ERROR;
}

static sw__span_t span(const uint8_t *buf, const uint8_t *p, size_t len)
{
    sw__span_t s = {(uint32_t)(p - buf), (uint32_t)len};
    return s;
}

/* Skips the empty lines a client may send before a request line (RFC 9112 2.2). */
static size_t skip_empty_lines(const uint8_t *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n')) {
        if (buf[i] == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))
            break;
        i += buf[i] == '\r' ? 2 : 1;
    }
    return i;
}

/* Returns the offset just after the blank line ending the head, or 0 when not found yet. */
static size_t find_end(const uint8_t *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Reads one line ending in CRLF or LF. Returns the line length; *next gets the next line. */
static int get_line(const uint8_t *p, const uint8_t *end, const uint8_t **next, size_t *llen)
{
    const uint8_t *nl = memchr(p, '\n', end - p);
    if (nl == NULL)
        return -1;
    const uint8_t *e = nl;
    if (e > p && e[-1] == '\r')
        e--;
    *llen = e - p;
    *next = nl + 1;
    return 0;
}

static int parse_request_line(const uint8_t *buf, const uint8_t *p, size_t n, sw__http1_head_t *h,
                              const char **err_desc)
{
    const uint8_t *end = p + n, *q = p;

    while (q < end && is_tchar(*q))
        q++;
    if (q == p)
        return fail(h, 400, err_desc, "missing method");
    if (q == end || *q != ' ')
        return fail(h, 400, err_desc, "bad character in method");
    h->method = span(buf, p, q - p);

    const uint8_t *t = ++q;
    while (q<end && * q> 0x20 && *q < 0x7f)
        q++;
    if (q == t)
        return fail(h, 400, err_desc, "missing request target");
    if (q == end)
        return fail(h, 400, err_desc, "missing HTTP version (HTTP/0.9 is not supported)");
    if (*q != ' ')
        return fail(h, 400, err_desc, "bad character in request target");
    h->target = span(buf, t, q - t);
    q++;

    if ((size_t)(end - q) != 8 || memcmp(q, "HTTP/", 5) != 0 || q[5] < '0' || q[5] > '9' ||
        q[6] != '.' || q[7] < '0' || q[7] > '9')
        return fail(h, 400, err_desc, "malformed HTTP version");
    if (q[5] != '1')
        return fail(h, 505, err_desc, "HTTP version not supported");
    h->version = q[7] == '0' ? 10 : 11;

    /* origin-form "/p?q", asterisk-form "*", absolute-form "http://host/p?q" */
    const uint8_t *path = t, *tend = t + h->target.len;
    if (*t != '/' && !(h->target.len == 1 && *t == '*')) {
        size_t skip = 0;
        if (h->target.len > 7 && strncasecmp((const char *)t, "http://", 7) == 0)
            skip = 7;
        else if (h->target.len > 8 && strncasecmp((const char *)t, "https://", 8) == 0)
            skip = 8;
        else
            return fail(h, 400, err_desc, "bad request target");
        const uint8_t *a = t + skip, *slash = a;
        while (slash < tend && *slash != '/' && *slash != '?')
            slash++;
        if (slash == a)
            return fail(h, 400, err_desc, "bad request target");
        h->authority = span(buf, a, slash - a);
        path = slash;
    }
    const uint8_t *qm = memchr(path, '?', tend - path);
    if (qm == NULL) {
        h->path = span(buf, path, tend - path);
        h->query = span(buf, tend, 0);
    } else {
        h->path = span(buf, path, qm - path);
        h->query = span(buf, qm + 1, tend - qm - 1);
    }
    return 0;
}

static int token_in_list(const uint8_t *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp((const char *)v + s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

static int is_name(const uint8_t *buf, sw__span_t s, const char *name)
{
    return strlen(name) == s.len && strncasecmp((const char *)buf + s.off, name, s.len) == 0;
}

/* Interprets the headers the server itself acts on. */
static int interpret(const uint8_t *buf, sw__http1_head_t *h, const char **err_desc)
{
    int conn_close = 0, conn_keep = 0, has_te = 0;

    for (size_t i = 0; i < h->nheaders; i++) {
        sw__span_t nm = h->headers[i].name, vs = h->headers[i].value;
        const uint8_t *v = buf + vs.off;
        if (is_name(buf, nm, "content-length")) {
            if (vs.len == 0 || vs.len > 15)
                return fail(h, 400, err_desc, "bad Content-Length");
            int64_t cl = 0;
            for (size_t k = 0; k < vs.len; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return fail(h, 400, err_desc, "bad Content-Length");
                cl = cl * 10 + (v[k] - '0');
            }
            if (h->content_length >= 0 && h->content_length != cl)
                return fail(h, 400, err_desc, "conflicting Content-Length headers");
            h->content_length = cl;
        } else if (is_name(buf, nm, "transfer-encoding")) {
            has_te = 1;
            if (!token_in_list(v, vs.len, "chunked"))
                return fail(h, 501, err_desc, "unsupported Transfer-Encoding");
        } else if (is_name(buf, nm, "connection")) {
            conn_close |= token_in_list(v, vs.len, "close");
            conn_keep |= token_in_list(v, vs.len, "keep-alive");
        } else if (is_name(buf, nm, "host")) {
            if (h->host_index >= 0)
                return fail(h, 400, err_desc, "more than one Host header");
            h->host_index = (int)i;
        } else if (is_name(buf, nm, "expect")) {
            if (vs.len == 12 && strncasecmp((const char *)v, "100-continue", 12) == 0)
                h->expect_continue = 1;
        }
    }
    /* Both framings at once is how requests get smuggled past proxies: refuse. */
    if (has_te && h->content_length >= 0)
        return fail(h, 400, err_desc, "both Content-Length and Transfer-Encoding");
    if (has_te)
        return fail(h, 411, err_desc, "chunked request bodies are not supported");
    if (h->version == 11 && h->host_index < 0 && h->authority.len == 0)
        return fail(h, 400, err_desc, "missing Host header");
    h->keep_alive = h->version == 11 ? !conn_close : (conn_keep && !conn_close);
    return 0;
}

int sw__http1_parse_head(const uint8_t *buf, size_t len, sw__http1_head_t *h, const char **err_desc)
{
    size_t start = skip_empty_lines(buf, len);
    size_t from = h->_scanned > start + 2 ? h->_scanned - 2 : start;
    size_t end = find_end(buf, len, from);

    if (end == 0) {
        h->_scanned = len;
        if (len > h->max_bytes)
            return fail(h, 431, err_desc, "request head too large");
        /* Fail early on a request line that cannot become valid. */
        for (size_t i = start; i < len && buf[i] != ' '; i++) {
            if (!is_tchar(buf[i]))
                return fail(h, 400, err_desc, "bad character in method");
        }
        return SW__HTTP1_INCOMPLETE;
    }
    if (end - start > h->max_bytes)
        return fail(h, 431, err_desc, "request head too large");

    const uint8_t *p = buf + start, *stop = buf + end, *next;
    size_t n;
    if (get_line(p, stop, &next, &n) != 0 || n == 0)
        return fail(h, 400, err_desc, "missing request line");
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0' || p[i] == '\r')
            return fail(h, 400, err_desc, "control character in request line");
    }
    if (parse_request_line(buf, p, n, h, err_desc) != 0)
        return SW__HTTP1_ERROR;

    h->nheaders = 0;
    for (p = next; get_line(p, stop, &next, &n) == 0 && n > 0; p = next) {
        if (*p == ' ' || *p == '\t')
            return fail(h, 400, err_desc, "obsolete line folding");
        const uint8_t *q = p, *e = p + n;
        while (q < e && is_tchar(*q))
            q++;
        if (q == e)
            return fail(h, 400, err_desc, "header line without colon");
        if (q == p || *q != ':')
            return fail(h, 400, err_desc, "bad character in header name");
        if (h->nheaders == SW__HTTP1_MAX_HEADERS)
            return fail(h, 431, err_desc, "too many headers");
        sw__span_t name = span(buf, p, q - p);
        q++;
        while (q < e && (*q == ' ' || *q == '\t'))
            q++;
        const uint8_t *ve = e;
        while (ve > q && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const uint8_t *k = q; k < ve; k++) {
            if (!is_vchar_or_ws(*k))
                return fail(h, 400, err_desc, "bad character in header value");
        }
        h->headers[h->nheaders].name = name;
        h->headers[h->nheaders].value = span(buf, q, ve - q);
        h->nheaders++;
    }
    if (interpret(buf, h, err_desc) != 0)
        return SW__HTTP1_ERROR;
    h->head_len = end;
    return SW__HTTP1_COMPLETE;
}

int sw__http1_format_head(sw_str_t *out, int version, int status, const sw_http_header_t *hdrs,
                          size_t nhdrs, int64_t content_length, int chunked, int keep_alive,
                          const char *date, const char *server_name)
{
    /* Appends, not printf: this runs for every response, and printf costs more than the rest. */
    sw_str_puts(out, version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    sw_str_put_u64(out, (uint64_t)status);
    sw_str_puts(out, " ");
    sw_str_puts(out, sw_http_reason(status));
    sw_str_puts(out, "\r\nDate: ");
    sw_str_puts(out, date);
    sw_str_puts(out, "\r\nServer: ");
    sw_str_puts(out, server_name);
    sw_str_puts(out, "\r\n");
    for (size_t i = 0; i < nhdrs; i++) {
        sw_str_puts(out, hdrs[i].name);
        sw_str_puts(out, ": ");
        sw_str_puts(out, hdrs[i].value);
        sw_str_puts(out, "\r\n");
    }
    if (content_length >= 0) {
        sw_str_puts(out, "Content-Length: ");
        sw_str_put_u64(out, (uint64_t)content_length);
        sw_str_puts(out, "\r\n");
    } else if (chunked)
        sw_str_puts(out, "Transfer-Encoding: chunked\r\n");
    if (!keep_alive)
        sw_str_puts(out, "Connection: close\r\n");
    else if (version == 10)
        sw_str_puts(out, "Connection: keep-alive\r\n");
    sw_str_puts(out, "\r\n");
    return out->failed ? SW_ERR_NOMEM : 0;
}

const char *sw_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}
