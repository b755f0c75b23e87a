/*
 * tests/fuzz/fuzz.h: what every fuzz target shares. CHECK() is for invariants the target asserts
 * about the code under test; it aborts, so it fires in release builds too, where assert() would
 * be compiled out.
 */
#ifndef SW_FUZZ_H
#define SW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
