/*
 * fanout_probe: N concurrent GETs of one URL on libcurl's multi interface, with per-request
 * timings, for tests/integration/test_edge_collapse.py and test_edge_failover.py.
 *
 *   fanout_probe [-n N] [--h2] [--timeout MS] [--header NAME] [--summary] URL
 *
 * Starts N requests at once, each on a connection of its own as N players would (HTTP/1.1; --h2:
 * HTTP/2, h2c with prior knowledge on http://, ALPN on https://) and prints one JSON line per
 * request when all have ended or the timeout (default 30000 ms) has passed:
 *   {"i":0,"status":200,"bytes":N,"sha256":"HEX","start_us":T,"first_us":T,"last_us":T,
 *    "done_us":T,"err":"","header":"VALUE"}
 * Times are CLOCK_REALTIME in microseconds (0: never happened): the request's start, its first
 * and last body byte, and its end. `header` is the value of the --header response header ("" if
 * absent). --summary prints one line instead: counts, distinct bodies, and the spread of the
 * first- and last-byte times. Exits 0 once every request has ended (any status), 1 on a timeout,
 * 2 on bad usage.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

typedef struct probe_req {
    int i;
    CURL *h;
    EVP_MD_CTX *md;
    long status;
    uint64_t bytes;
    int64_t start_us, first_us, last_us, done_us;
    char sha[65];
    char err[CURL_ERROR_SIZE];
    char header[256];
    int ended;
} probe_req_t;

static const char *want_header;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    probe_req_t *r = data;
    size_t len = size * n;
    int64_t t = now_us();
    if (r->first_us == 0)
        r->first_us = t;
    r->last_us = t;
    r->bytes += len;
    EVP_DigestUpdate(r->md, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    probe_req_t *r = data;
    size_t len = size * n, nl = strlen(want_header);
    if (len > nl + 1 && p[nl] == ':' && strncasecmp(p, want_header, nl) == 0) {
        const char *v = p + nl + 1, *e = p + len;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        size_t vl =
            (size_t)(e - v) < sizeof(r->header) - 1 ? (size_t)(e - v) : sizeof(r->header) - 1;
        memcpy(r->header, v, vl);
        r->header[vl] = '\0';
    }
    return len;
}

static void finish_req(probe_req_t *r, CURLcode rc)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    r->done_us = now_us();
    r->ended = 1;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (rc != CURLE_OK && r->err[0] == '\0')
        snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(rc));
    EVP_DigestFinal_ex(r->md, md, &mdlen);
    for (unsigned k = 0; k < mdlen && k < 32; k++)
        snprintf(r->sha + 2 * k, 3, "%02x", md[k]);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Prints min, p50, p99 and max of the non-zero values, in ms relative to their minimum. */
static void print_spread(const char *name, probe_req_t *reqs, int n, size_t field)
{
    int64_t *v = malloc(sizeof(*v) * (size_t)(n > 0 ? n : 1));
    int k = 0;
    for (int i = 0; i < n && v != NULL; i++) {
        int64_t t = *(const int64_t *)((const char *)&reqs[i] + field);
        if (t != 0)
            v[k++] = t;
    }
    if (k == 0) {
        printf(",\"%s\":null", name);
        free(v);
        return;
    }
    qsort(v, (size_t)k, sizeof(*v), cmp_i64);
    printf(",\"%s\":{\"min_us\":%lld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}", name,
           (long long)v[0], (double)(v[k / 2] - v[0]) / 1e3,
           (double)(v[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1] - v[0]) / 1e3,
           (double)(v[k - 1] - v[0]) / 1e3);
    free(v);
}

static void print_summary(probe_req_t *reqs, int n)
{
    int ended = 0, ok = 0, distinct = 0;
    for (int i = 0; i < n; i++) {
        ended += reqs[i].ended;
        ok += reqs[i].ended && reqs[i].status == 200 && reqs[i].err[0] == '\0';
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = reqs[j].ended && strcmp(reqs[j].sha, reqs[i].sha) == 0;
        distinct += reqs[i].ended && !seen;
    }
    printf("{\"n\":%d,\"ended\":%d,\"ok\":%d,\"distinct_bodies\":%d", n, ended, ok, distinct);
    print_spread("first_byte", reqs, n, offsetof(probe_req_t, first_us));
    print_spread("last_byte", reqs, n, offsetof(probe_req_t, last_us));
    print_spread("done", reqs, n, offsetof(probe_req_t, done_us));
    printf("}\n");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fanout_probe [-n N] [--h2] [--timeout MS] [--header NAME] [--summary] URL\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int n = 1, h2 = 0, summary = 0;
    long timeout_ms = 30000;
    const char *url = NULL;

    want_header = "x-cache";
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "-n") == 0 && a + 1 < argc)
            n = atoi(argv[++a]);
        else if (strcmp(argv[a], "--h2") == 0)
            h2 = 1;
        else if (strcmp(argv[a], "--timeout") == 0 && a + 1 < argc)
            timeout_ms = atol(argv[++a]);
        else if (strcmp(argv[a], "--header") == 0 && a + 1 < argc)
            want_header = argv[++a];
        else if (strcmp(argv[a], "--summary") == 0)
            summary = 1;
        else if (argv[a][0] != '-' && url == NULL)
            url = argv[a];
        else
            usage();
    }
    if (url == NULL || n < 1 || n > 10000 || timeout_ms < 1 || want_header[0] == '\0')
        usage();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;

    probe_req_t *reqs = calloc((size_t)n, sizeof(*reqs));
    CURLM *m = curl_multi_init();
    if (reqs == NULL || m == NULL)
        return 2;
    /* One connection per request, as n separate players would have. (Multiplexing them all on
     * one h2c connection with CURLOPT_PIPEWAIT fails every stream but the first with "Error in
     * the HTTP2 framing layer" in libcurl 7.88, against any server; h2load covers that case.) */
    curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n);
    for (int i = 0; i < n; i++) {
        probe_req_t *r = &reqs[i];
        r->i = i;
        if ((r->h = curl_easy_init()) == NULL || (r->md = EVP_MD_CTX_new()) == NULL ||
            EVP_DigestInit_ex(r->md, EVP_sha256(), NULL) != 1)
            return 2;
        curl_easy_setopt(r->h, CURLOPT_URL, url);
        curl_easy_setopt(r->h, CURLOPT_PRIVATE, r);
        curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(r->h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(r->h, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(r->h, CURLOPT_ERRORBUFFER, r->err);
        curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(r->h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(r->h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(r->h, CURLOPT_FRESH_CONNECT, 1L);
        if (!h2)
            curl_easy_setopt(r->h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
        else if (strncmp(url, "https:", 6) == 0)
            curl_easy_setopt(r->h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        else
            curl_easy_setopt(r->h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        r->start_us = now_us();
        curl_multi_add_handle(m, r->h);
    }

    int64_t deadline = now_us() + timeout_ms * 1000 + 2000000;
    int running = n, ended = 0;
    while (ended < n && now_us() < deadline) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            probe_req_t *r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            finish_req(r, msg->data.result);
            ended++;
        }
        if (ended < n)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }

    if (summary) {
        print_summary(reqs, n);
    } else {
        for (int i = 0; i < n; i++) {
            probe_req_t *r = &reqs[i];
            printf("{\"i\":%d,\"status\":%ld,\"bytes\":%llu,\"sha256\":\"%s\",\"start_us\":%lld,"
                   "\"first_us\":%lld,\"last_us\":%lld,\"done_us\":%lld,\"err\":\"",
                   r->i, r->status, (unsigned long long)r->bytes, r->sha, (long long)r->start_us,
                   (long long)r->first_us, (long long)r->last_us, (long long)r->done_us);
            /* curl's messages and header values are printable ASCII; keep the JSON valid. */
            for (const char *p = r->ended ? r->err : "timeout"; *p; p++)
                putchar(*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p);
            printf("\",\"header\":\"");
            for (const char *p = r->header; *p; p++)
                putchar(*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p);
            printf("\"}\n");
        }
    }
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, reqs[i].h);
        curl_easy_cleanup(reqs[i].h);
        EVP_MD_CTX_free(reqs[i].md);
    }
    curl_multi_cleanup(m);
    curl_global_cleanup();
    free(reqs);
    return ended == n ? 0 : 1;
}
