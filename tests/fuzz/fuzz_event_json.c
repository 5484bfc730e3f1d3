/* libFuzzer target: arbitrary bytes through the strict event parser. Every accepted event is
 * re-encoded (JSON and stream form) and decoded again, so the fuzzer also checks that whatever
 * the parser lets in survives the codecs. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "astro/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_codecs(const struct astro_event *ev)
{
    struct astro_stream_fields f;
    struct astro_event back;
    char err[256];
    astro_stream_fields_init(&f);
    if (astro_event_stream_encode(ev, &f) != ASTRO_OK)
        abort();
    if (astro_event_stream_decode_argv(f.argv, f.argvlen, (size_t)f.argc, &back, err,
                                       sizeof(err)) != ASTRO_OK)
        abort();
    if (back.ts_us != ev->ts_us || strcmp(back.id, ev->id) != 0 ||
        memcmp(&back.value, &ev->value, sizeof(back.value)) != 0)
        abort();
    astro_event_cleanup(&back);
    astro_stream_fields_cleanup(&f);
    cJSON *j = astro_event_to_json(ev);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    if (text == NULL)
        abort();
    cJSON_Delete(j);
    free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const envelope[] = {"type", "seq"};
    struct astro_event_limits lim = astro_event_limits_default();
    struct astro_event ev;
    char err[256];
    lim.max_age_us = 0; /* fixed corpus timestamps must not age out */
    lim.max_future_us = 0;
    lim.allow_multi = (size & 1) != 0; /* exercise both intake modes */
    lim.extra_fields = envelope;
    lim.n_extra_fields = 2;
    if (astro_event_parse_json((const char *)data, size, &lim, 0, &ev, err, sizeof(err)) ==
        ASTRO_OK) {
        if (astro_event_assign_defaults(&ev, 1796090400000000) != ASTRO_OK)
            abort();
        check_codecs(&ev);
    } else if (err[0] == '\0') {
        abort(); /* every refusal must say why */
    }
    astro_event_cleanup(&ev);
    return 0;
}
