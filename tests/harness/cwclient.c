#include <civetweb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cwclient.h"

struct cwclient {
    struct mg_connection *conn;
    pthread_mutex_t lock;
    char got[CWCLIENT_MAX_MESSAGES][CWCLIENT_MAX_TEXT];
    int n;
};

/* Runs on civetweb's client thread. */
static int
on_data(struct mg_connection *conn, int flags, char *data, size_t len, void *user)
{
    struct cwclient *c = user;
    (void)conn;
    if ((flags & 0xf) == MG_WEBSOCKET_OPCODE_TEXT) {
        pthread_mutex_lock(&c->lock);
        if (c->n < CWCLIENT_MAX_MESSAGES)
            snprintf(c->got[c->n++], sizeof(c->got[0]), "%.*s", (int)len, data);
        pthread_mutex_unlock(&c->lock);
    }
    return 1;
}

struct cwclient *
cwclient_connect(int port, const char *path, char *err, size_t errlen)
{
    struct cwclient *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    mg_init_library(0);
    c->conn = mg_connect_websocket_client("127.0.0.1", port, 0, err, errlen, path, NULL,
                                          on_data, NULL, c);
    if (c->conn == NULL) {
        cwclient_close(c);
        return NULL;
    }
    return c;
}

int
cwclient_send_text(struct cwclient *c, const char *text)
{
    return mg_websocket_client_write(c->conn, MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text)) > 0
               ? 0
               : -1;
}

static long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
cwclient_wait(struct cwclient *c, int n, int timeout_ms)
{
    long until = now_ms() + timeout_ms;
    int have = 0;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        have = c->n;
        pthread_mutex_unlock(&c->lock);
        if (have >= n || now_ms() >= until)
            return have;
        usleep(5000);
    }
}

const char *
cwclient_message(struct cwclient *c, int i)
{
    pthread_mutex_lock(&c->lock);
    const char *m = i >= 0 && i < c->n ? c->got[i] : NULL;
    pthread_mutex_unlock(&c->lock);
    return m;
}

void
cwclient_close(struct cwclient *c)
{
    if (c == NULL)
        return;
    if (c->conn != NULL)
        mg_close_connection(c->conn);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
