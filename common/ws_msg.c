/* Pre-framed, reference-counted WebSocket messages for fan-out, and the handshake key. A server
 * frame is never masked, so the same bytes can go to every connection: each connection's output
 * buffer points at them (evbuffer_add_reference) and drops its reference once written. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "net_internal.h"

struct astro_ws_msg {
    atomic_uint refs;
    size_t payload_len;
    size_t frame_len;
    uint8_t frame[];
};

static size_t
header_len(size_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

struct astro_ws_msg *
astro_ws_msg_new(enum astro_ws_opcode op, const void *data, size_t len)
{
    size_t hl = header_len(len);
    struct astro_ws_msg *m = malloc(sizeof(*m) + hl + len);
    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    m->payload_len = len;
    m->frame_len = hl + len;
    m->frame[0] = (uint8_t)(0x80u | (unsigned)op);
    if (hl == 2) {
        m->frame[1] = (uint8_t)len;
    } else if (hl == 4) {
        m->frame[1] = 126;
        m->frame[2] = (uint8_t)(len >> 8);
        m->frame[3] = (uint8_t)len;
    } else {
        m->frame[1] = 127;
        for (int i = 0; i < 8; i++)
            m->frame[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (len > 0)
        memcpy(m->frame + hl, data, len);
    return m;
}

struct astro_ws_msg *
astro_ws_msg_ref(struct astro_ws_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void
astro_ws_msg_unref(struct astro_ws_msg *m)
{
    if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

size_t
astro_ws_msg_payload_len(const struct astro_ws_msg *m)
{
    return m->payload_len;
}

const uint8_t *
net_ws_msg_frame(const struct astro_ws_msg *m, size_t *len)
{
    *len = m->frame_len;
    return m->frame;
}

bool
net_ws_validate_key(const char *key)
{
    unsigned char raw[24];
    if (key == NULL || strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return false;
    /* EVP_DecodeBlock counts the padding as zero bytes: 24 chars always give 18. */
    return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

int
astro_ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    if (!net_ws_validate_key(key))
        return ASTRO_ERR;
    char buf[24 + sizeof(guid)];
    memcpy(buf, key, 24);
    memcpy(buf + 24, guid, sizeof(guid));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(buf, 24 + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return ASTRO_ERR;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return ASTRO_OK;
}
