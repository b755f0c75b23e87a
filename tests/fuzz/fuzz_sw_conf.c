/* Fuzz target: a config file through sw_conf with a table covering every key type. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw/conf.h"

typedef struct cfg {
    char *s;
    int64_t i, size, dur;
    int b, level;
} cfg_t;

static int custom(void *c, const char *arg, const char *value, const char **err)
{
    if (strlen(arg) > 100) {
        *err = "argument too long";
        return -1;
    }
    return 0;
}

static const sw_conf_key_t keys[] = {
    {"", "s", SW_CONF_STR, offsetof(cfg_t, s), 0, 0, NULL, "", ""},
    {"", "i", SW_CONF_INT, offsetof(cfg_t, i), -5, 5000, NULL, "", ""},
    {"a", "size", SW_CONF_SIZE, offsetof(cfg_t, size), 0, 0, NULL, "", ""},
    {"a", "dur", SW_CONF_DURATION, offsetof(cfg_t, dur), 0, 0, NULL, "", ""},
    {"a", "b", SW_CONF_BOOL, offsetof(cfg_t, b), 0, 0, NULL, "", ""},
    {"", "level", SW_CONF_LOGLEVEL, offsetof(cfg_t, level), 0, 0, NULL, "", ""},
    {"rule", "x", SW_CONF_CUSTOM, 0, 0, 0, custom, "", ""},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cfg_t c = {0};
    char err[256];
    sw_conf_load_string(text, "fuzz.conf", keys, &c, err, sizeof(err));
    sw_conf_free_strings(keys, &c);
    free(text);
    return 0;
}
