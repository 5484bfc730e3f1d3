/* civetweb's WebSocket client, the "real client" of the WebSocket tests: connect, send text,
 * wait for text messages. Messages arrive on civetweb's own thread and are kept (the first
 * CWCLIENT_MAX_MESSAGES, each truncated to CWCLIENT_MAX_TEXT - 1 bytes). */
#ifndef ASTRO_TEST_CWCLIENT_H
#define ASTRO_TEST_CWCLIENT_H

#include <stddef.h>

#define CWCLIENT_MAX_MESSAGES 8
#define CWCLIENT_MAX_TEXT 1024

struct cwclient;

/* Connects to ws://127.0.0.1:port<path>. Returns a client (free with cwclient_close()) or NULL
 * with civetweb's reason in err. */
struct cwclient *cwclient_connect(int port, const char *path, char *err, size_t errlen);

/* Sends one text message; 0 or -1. */
int cwclient_send_text(struct cwclient *c, const char *text);

/* Waits up to timeout_ms for at least n text messages; returns how many have arrived. */
int cwclient_wait(struct cwclient *c, int n, int timeout_ms);

/* A copy of the i-th text message (i < cwclient_wait()'s result), valid until close. */
const char *cwclient_message(struct cwclient *c, int i);

/* Closes the connection and frees the client; NULL is a no-op. */
void cwclient_close(struct cwclient *c);

#endif
