/* Connection counts per peer address and per API key, shared by every loop. The lock is taken
 * when a connection opens, authenticates or closes, never per request or message. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

#define QUOTA_BUCKETS 1024

struct quota_entry {
    struct quota_entry *next;
    unsigned count;
    char key[];
};

struct net_quota {
    pthread_mutex_t lock;
    struct quota_entry *buckets[QUOTA_BUCKETS];
};

/* FNV-1a: keys are short addresses and API keys; quality matters little here. */
static size_t
bucket_of(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % QUOTA_BUCKETS;
}

struct net_quota *
net_quota_new(void)
{
    struct net_quota *q = calloc(1, sizeof(*q));
    if (q != NULL)
        pthread_mutex_init(&q->lock, NULL);
    return q;
}

void
net_quota_free(struct net_quota *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < QUOTA_BUCKETS; i++) {
        while (q->buckets[i] != NULL) {
            struct quota_entry *e = q->buckets[i];
            q->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static struct quota_entry **
find(struct net_quota *q, const char *key)
{
    struct quota_entry **pp = &q->buckets[bucket_of(key)];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

int
net_quota_take(struct net_quota *q, const char *key, unsigned max)
{
    int rc = ASTRO_ERR;
    pthread_mutex_lock(&q->lock);
    struct quota_entry **pp = find(q, key);
    if (*pp == NULL) {
        size_t n = strlen(key) + 1;
        struct quota_entry *e = malloc(sizeof(*e) + n);
        if (e == NULL)
            goto out;
        memcpy(e->key, key, n);
        e->count = 0;
        e->next = NULL;
        *pp = e;
    }
    if (max == 0 || (*pp)->count < max) {
        (*pp)->count++;
        rc = ASTRO_OK;
    }
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void
net_quota_release(struct net_quota *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    struct quota_entry **pp = find(q, key);
    struct quota_entry *e = *pp;
    if (e != NULL && --e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&q->lock);
}
