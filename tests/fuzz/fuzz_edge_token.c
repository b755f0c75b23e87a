/*
 * fuzz_edge_token.c: edge_token_verify() on arbitrary query strings, and mint/verify round trips
 * on arbitrary prefixes. The first byte picks the mode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/token.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t k1[] = "key-one", k2[] = "key-two";
    static const edge_token_key_t keys[] = {{"a", k1, 7}, {"b", k2, 7}};
    const edge_token_config_t cfg = {keys, 2, 0};
    const char *why = NULL;
    char tok[EDGE_TOKEN_MAX], prefix[300], path[400];

    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        int rv = edge_token_verify(&cfg, "/live/x/index.m3u8", (const char *)data + 1, size - 1,
                                   (data[0] & 2) ? "192.0.2.1" : NULL, 1000, &why);
        CHECK(rv == 0 ||
              (rv <= EDGE_ERR_TOKEN_MALFORMED && rv >= EDGE_ERR_TOKEN_PREFIX && why != NULL));
        return 0;
    }
    /* Round trip: whatever prefix the mint accepts, the verify accepts under it. */
    size_t n = size - 1 < sizeof(prefix) - 1 ? size - 1 : sizeof(prefix) - 1;
    memcpy(prefix, data + 1, n);
    prefix[n] = '\0';
    n = strlen(prefix); /* the prefix is a C string: it ends at the first NUL */
    const char *ip = (data[0] & 2) ? "2001:db8::1" : NULL;
    if (edge_token_mint(&keys[(data[0] >> 2) & 1], prefix, 5000, ip, tok, sizeof(tok)) != 0)
        return 0;
    strcpy(path, prefix);
    strcat(path, "seg.m4s");
    int rv = edge_token_verify(&cfg, path, tok, strlen(tok), ip, 1000, &why);
    /* Minting refused any byte outside visible ASCII, so this prefix is carried intact. */
    for (size_t i = 0; i < n; i++)
        CHECK(data[1 + i] > 0x20 && data[1 + i] < 0x7f);
    CHECK(rv == 0);
    CHECK(edge_token_verify(&cfg, path, tok, strlen(tok), ip, 5000, &why) ==
          EDGE_ERR_TOKEN_EXPIRED);
    return 0;
}
