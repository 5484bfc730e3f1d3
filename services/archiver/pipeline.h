/* Internal to an archive pipeline (reader.c, worker.c): two batch slots handed between the
 * reader thread (Redis reads and decoding) and the writer thread (PostgreSQL and XACK), so the
 * next batch is read while the current one is written. Slots are used strictly in turn, so
 * batches are written in the order they were read. Each pipeline owns a fixed share of the
 * streams (stream i belongs to pipeline i % ASTRO_WRITERS): the entries of one stream are
 * always written in order, by one connection, while the pipelines commit in parallel. */
#ifndef ARC_PIPELINE_H
#define ARC_PIPELINE_H

#include <pthread.h>
#include <stdbool.h>

#include "archiver.h"

struct arc_pipe {
    struct arc_ctx *ctx;
    size_t *streams;    /* owned: indexes into ctx->streams */
    size_t nstreams;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct arc_batch slot[2];
    bool full[2];       /* under mu: written by the reader, emptied by the writer */
    int next_fill;      /* reader's */
    int next_write;     /* writer's */
    bool reader_done;   /* under mu */
    pthread_t reader, writer;
    bool reader_started, writer_started;
};

/* Sleeps ms in short steps; false when the deadline (abort_now) cut it short. */
bool arc_nap(struct arc_ctx *ctx, uint32_t ms);

/* The reader thread: fills slots until stop, then sets reader_done. */
void *arc_reader_main(void *arg);

#endif
