/*
 * fuzz_edge_key.c: edge_key_normalize() on arbitrary bytes. The first byte picks the split: the
 * rest up to the first NUL is the path; if the selector is odd, the bytes after that NUL are the
 * query. Checks that an accepted key is canonical: it starts with '/', has no "//", no dot
 * segment, lowercase hex or raw byte outside visible ASCII, and normalizing it again changes
 * nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/http_util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char in[8192], out[EDGE_KEY_MAX], again[EDGE_KEY_MAX];
    const char *why = NULL;

    if (size < 1 || size > sizeof(in) - 2)
        return 0;
    int sel = data[0];
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    in[size] = '\0';
    const char *path = in, *query = NULL;
    if (sel & 1)
        query = in + strlen(in) + 1;

    size_t outlen = (sel & 2) ? 64 : sizeof(out);
    int rv = edge_key_normalize(path, query, NULL, out, outlen, &why);
    if (rv != 0) {
        CHECK((rv == EDGE_ERR_INVAL || rv == EDGE_ERR_TOO_BIG) && why != NULL);
        CHECK(out[0] == '\0' || outlen == 0);
        return 0;
    }
    size_t n = strlen(out);
    CHECK(n < outlen && out[0] == '/');
    size_t q = strcspn(out, "?");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c > 0x20 && c < 0x7f && c != '#');
        if (i < q) {
            CHECK(c != '\\');
            CHECK(!(c == '/' && i + 1 < q && out[i + 1] == '/'));
        }
        if (c == '%') {
            CHECK(i + 2 < n);
            CHECK(!(out[i + 1] >= 'a' && out[i + 1] <= 'f'));
            CHECK(!(out[i + 2] >= 'a' && out[i + 2] <= 'f'));
        }
    }
    /* No "." or ".." segment survives. */
    for (size_t i = 0; i < q; i++) {
        if (out[i] != '/')
            continue;
        size_t j = i + 1, k = j;
        while (k < q && out[k] != '/')
            k++;
        CHECK(!(k - j == 1 && out[j] == '.'));
        CHECK(!(k - j == 2 && out[j] == '.' && out[j + 1] == '.'));
    }
    /* Idempotent. */
    CHECK(edge_key_normalize(out, NULL, NULL, again, sizeof(again), &why) == 0);
    CHECK(strcmp(out, again) == 0);
    return 0;
}
