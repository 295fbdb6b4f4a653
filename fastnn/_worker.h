/* A second thread for an engine's row-split steps (fastnn/_passes.pxd, split_step).
 *
 * One task at a time: the engine's thread posts it (fastnn_worker_post), computes its own half,
 * then finishes the task (fastnn_worker_finish): it waits for the worker if the worker has
 * claimed the task, and otherwise claims and runs it itself, so a worker that was not scheduled in
 * time (beside a busy process) costs the step nothing but the hand-off. Each task is run once:
 * whoever claims it first (a compare-and-swap of `claimed`) runs it. Hand-offs take ~1 us: the
 * worker spins (with the pause instruction) for up to SPIN_NS after its last task before it sleeps
 * on a condition variable, so an idle worker burns no CPU between fits; the poster spins only
 * while the worker runs the task, yielding the core after a while (a preempted worker needs it).
 *
 * Fork: a child has no worker thread. The engine stops it (fastnn_worker_stop, joining it) before
 * fork() and starts it again lazily, so no child inherits a worker struct whose thread is gone.
 */
#ifndef FASTNN_WORKER_H
#define FASTNN_WORKER_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTNN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FASTNN_PAUSE() __asm__ __volatile__("yield")
#else
#define FASTNN_PAUSE() ((void)0)
#endif

#define FASTNN_WORKER_SPIN_NS 50000L    /* the worker spins this long after a task, then sleeps */
#define FASTNN_WAIT_SPIN_NS 20000L      /* the poster spins this long, then yields between checks */

typedef void (*fastnn_task)(void *arg);

typedef struct {
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_ulong posted;      /* tasks posted */
    atomic_ulong claimed;     /* the last task claimed, by the worker or the poster */
    atomic_ulong finished;    /* tasks finished */
    atomic_int sleeping;      /* the worker waits on `wake` (or is about to) */
    atomic_int stopping;
    fastnn_task task;
    void *arg;
} fastnn_worker;

static inline long long fastnn_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void *fastnn_worker_main(void *self) {
    fastnn_worker *w = (fastnn_worker *)self;
    unsigned long seen = 0;
    for (;;) {
        long long spun_since = fastnn_now_ns();
        int k = 0;
        while (atomic_load(&w->posted) == seen && !atomic_load(&w->stopping)) {
            FASTNN_PAUSE();
            if (++k % 64 == 0 && fastnn_now_ns() - spun_since > FASTNN_WORKER_SPIN_NS) {
                pthread_mutex_lock(&w->mutex);
                atomic_store(&w->sleeping, 1);
                while (atomic_load(&w->posted) == seen && !atomic_load(&w->stopping))
                    pthread_cond_wait(&w->wake, &w->mutex);
                atomic_store(&w->sleeping, 0);
                pthread_mutex_unlock(&w->mutex);
            }
        }
        if (atomic_load(&w->stopping))
            return NULL;
        seen = atomic_load(&w->posted);
        unsigned long previous = seen - 1;
        if (atomic_compare_exchange_strong(&w->claimed, &previous, seen)) {
            w->task(w->arg);
            atomic_store(&w->finished, seen);
        }
    }
}

/* A worker, its thread started; NULL when a thread cannot be had (the caller then does not split). */
static inline fastnn_worker *fastnn_worker_start(void) {
    fastnn_worker *w = (fastnn_worker *)calloc(1, sizeof(fastnn_worker));
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, fastnn_worker_main, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->mutex);
        free(w);
        return NULL;
    }
    return w;
}

/* Stop and join the worker's thread (no task under way: the engine's lock is held), then free it. */
static inline void fastnn_worker_stop(fastnn_worker *w) {
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mutex);
    atomic_store(&w->stopping, 1);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mutex);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mutex);
    free(w);
}

/* Post a task; returns 1 if the worker was asleep (its wake-up then delays the task). */
static inline int fastnn_worker_post(fastnn_worker *w, fastnn_task task, void *arg) {
    w->task = task;
    w->arg = arg;
    atomic_fetch_add(&w->posted, 1);   /* sequentially consistent: pairs with `sleeping` */
    if (!atomic_load(&w->sleeping))
        return 0;
    pthread_mutex_lock(&w->mutex);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mutex);
    return 1;
}

/* Finish the task posted last: run it here if the worker has not claimed it, else wait for the
 * worker to finish it. */
static inline void fastnn_worker_finish(fastnn_worker *w) {
    unsigned long target = atomic_load(&w->posted), previous = target - 1;
    long long started;
    int k = 0;
    if (atomic_compare_exchange_strong(&w->claimed, &previous, target)) {
        w->task(w->arg);
        atomic_store(&w->finished, target);
        return;
    }
    if (atomic_load(&w->finished) == target)
        return;
    started = fastnn_now_ns();
    while (atomic_load(&w->finished) != target) {
        FASTNN_PAUSE();
        if (++k % 64 == 0 && fastnn_now_ns() - started > FASTNN_WAIT_SPIN_NS)
            sched_yield();
    }
}

/* CPUs this process may run on (1 where that cannot be known). */
static inline int fastnn_usable_cpus(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
#endif
    return 1;
}

#endif
