/*
 * Fuzzes the HTTP/1.1 request head parser: the whole input parsed as pipelined heads, and the
 * first head again fed in two pieces, which must give the same answer as in one piece.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sw__http1_head_t h;
    const char *why;
    size_t off = 0;

    for (int i = 0; i < 16 && off < size; i++) {
        sw__http1_head_init(&h, 4096);
        int rv = sw__http1_parse_head(data + off, size - off, &h, &why);
        if (rv != SW__HTTP1_COMPLETE)
            break;
        if (h.head_len == 0 || h.head_len > size - off)
            abort();
        for (size_t k = 0; k < h.nheaders; k++) {
            if (h.headers[k].name.off + h.headers[k].name.len > h.head_len ||
                h.headers[k].value.off + h.headers[k].value.len > h.head_len)
                abort();
        }
        off += h.head_len;
    }

    /* Resumed parsing agrees with parsing all at once. */
    sw__http1_head_t whole, split;
    sw__http1_head_init(&whole, 4096);
    sw__http1_head_init(&split, 4096);
    int a = sw__http1_parse_head(data, size, &whole, &why);
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    int b = sw__http1_parse_head(data, cut, &split, &why);
    if (b == SW__HTTP1_INCOMPLETE)
        b = sw__http1_parse_head(data, size, &split, &why);
    if (b != SW__HTTP1_ERROR && a != b)
        abort();
    if (a == SW__HTTP1_COMPLETE && b == SW__HTTP1_COMPLETE && whole.head_len != split.head_len)
        abort();
    return 0;
}
