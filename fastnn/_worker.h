/* A second thread for an engine's row-split steps (fastnn/_passes.pxd, split_step).
 *
 * One task at a time: the engine's thread posts it (fastnn_worker_post), computes its own half,
 * then finishes the task (fastnn_worker_finish): it waits for the worker if the worker has
 * claimed the task, and otherwise claims and runs it itself, so a worker that was not scheduled in
 * time (beside a busy process) costs the step nothing but the hand-off. Each task is run once:
 * whoever claims it first (a compare-and-swap of `claimed`) runs it. Hand-offs take ~1 us: the
 * worker spins (with the pause instruction) after its last task (twice the longer of the task
 * and the recent gaps between tasks, 50 us to 1 ms) before it sleeps on a condition variable, so
 * an idle worker burns no CPU between fits. The poster spins only while the worker runs the
 * task, then, once it has waited as long as its own part took since the post, sleeps until the
 * worker signals: a
 * worker preempted mid-task (beside a busy process) is then moved by the kernel to the core the
 * poster leaves idle.
 *
 * Fork: a child has no worker thread. The engine stops it (fastnn_worker_stop, joining it) before
 * fork() and starts it again lazily, so no child inherits a worker struct whose thread is gone.
 */
#ifndef FASTNN_WORKER_H
#define FASTNN_WORKER_H

#include <dirent.h>
#include <fcntl.h>
#include <fenv.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTNN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FASTNN_PAUSE() __asm__ __volatile__("yield")
#else
#define FASTNN_PAUSE() ((void)0)
#endif

/* After a task the worker spins, then sleeps. A sleeping worker's wake-up (tens of microseconds
 * under KVM) delays the next task, so the spin bridges the gaps it has seen between its tasks:
 * twice the longer of the last task and the recent gaps (a maximum that decays by 1/64 a task:
 * an epoch's steps are ~5 us apart, but a fit's epochs are apart by its Python, ~40-150 us, which
 * a spin of twice the last task would not bridge), within these bounds. A gap longer than the
 * longest spin (the caller idle between fits) is not bridged: a worker left idle burns 1 ms. */
#define FASTNN_WORKER_SPIN_MIN_NS 50000LL
#define FASTNN_WORKER_SPIN_MAX_NS 1000000LL
/* the poster spins at least this long, or as long as its own part took since the post, then sleeps */
#define FASTNN_WAIT_SPIN_NS 20000LL

typedef void (*fastnn_task)(void *arg);

typedef struct {
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    pthread_cond_t done;      /* the poster waits on it for a task the worker runs late */
    atomic_ulong posted;      /* tasks posted */
    atomic_ulong claimed;     /* the last task claimed, by the worker or the poster */
    atomic_ulong finished;    /* tasks finished */
    atomic_int sleeping;      /* the worker waits on `wake` (or is about to) */
    atomic_int waiting;       /* the poster waits on `done` (or is about to) */
    atomic_int stopping;
    atomic_long tid;          /* the worker thread's id (0 until it has begun) */
    long long posted_at;      /* when the poster posted the last task (the poster's only) */
    fenv_t env;               /* the poster's floating-point environment at the post */
    fastnn_task task;
    void *arg;
} fastnn_worker;

/* The calling thread's id (the kernel's; gettid() itself needs glibc 2.30). */
static inline long fastnn_gettid(void) {
    return (long)syscall(SYS_gettid);
}

static inline long long fastnn_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void *fastnn_worker_main(void *self) {
    fastnn_worker *w = (fastnn_worker *)self;
    unsigned long seen = 0;
    long long spin = FASTNN_WORKER_SPIN_MIN_NS, gaps = 0, finished_at = 0, now, took;
    atomic_store(&w->tid, fastnn_gettid());
    for (;;) {
        long long spun_since = fastnn_now_ns();
        int k = 0;
        while (atomic_load(&w->posted) == seen && !atomic_load(&w->stopping)) {
            FASTNN_PAUSE();
            if (++k % 64 == 0 && fastnn_now_ns() - spun_since > spin) {
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
        now = fastnn_now_ns();
        gaps -= gaps / 64;
        if (finished_at > 0 && now - finished_at < FASTNN_WORKER_SPIN_MAX_NS / 2
                && now - finished_at > gaps)
            gaps = now - finished_at;
        if (atomic_compare_exchange_strong(&w->claimed, &previous, seen)) {
            fesetenv(&w->env);
            w->task(w->arg);
            atomic_store(&w->finished, seen);   /* sequentially consistent: pairs with `waiting` */
            if (atomic_load(&w->waiting)) {
                pthread_mutex_lock(&w->mutex);
                pthread_cond_signal(&w->done);
                pthread_mutex_unlock(&w->mutex);
            }
            finished_at = fastnn_now_ns();
            took = finished_at - now;
            spin = 2 * (took > gaps ? took : gaps);
            spin = spin < FASTNN_WORKER_SPIN_MIN_NS ? FASTNN_WORKER_SPIN_MIN_NS
                 : spin > FASTNN_WORKER_SPIN_MAX_NS ? FASTNN_WORKER_SPIN_MAX_NS : spin;
        }
    }
}

/* The worker thread's id, 0 for none (or not yet known). */
static inline long fastnn_worker_tid(fastnn_worker *w) {
    return w == NULL ? 0 : atomic_load(&w->tid);
}

/* A worker, its thread started; NULL when a thread cannot be had (the caller then does not split). */
static inline fastnn_worker *fastnn_worker_start(void) {
    fastnn_worker *w = (fastnn_worker *)calloc(1, sizeof(fastnn_worker));
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->done, NULL);
    if (pthread_create(&w->thread, NULL, fastnn_worker_main, w) != 0) {
        pthread_cond_destroy(&w->done);
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
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mutex);
    free(w);
}

/* Post a task; returns 1 if the worker was asleep (its wake-up then delays the task). */
static inline int fastnn_worker_post(fastnn_worker *w, fastnn_task task, void *arg) {
    w->task = task;
    w->arg = arg;
    /* the task runs in the poster's floating-point environment (rounding, flush-to-zero), which
     * may have changed since the worker began: the same bits whichever thread runs it */
    fegetenv(&w->env);
    w->posted_at = fastnn_now_ns();
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
    /* the worker, posted as this thread began its own part, should be done about now: past as
     * long again, it is late (preempted), and this thread sleeps */
    long long started = fastnn_now_ns(), patience = started - w->posted_at;
    int k = 0;
    if (patience < FASTNN_WAIT_SPIN_NS)
        patience = FASTNN_WAIT_SPIN_NS;
    if (atomic_compare_exchange_strong(&w->claimed, &previous, target)) {
        w->task(w->arg);
        atomic_store(&w->finished, target);
        return;
    }
    if (atomic_load(&w->finished) == target)
        return;
    while (atomic_load(&w->finished) != target) {
        FASTNN_PAUSE();
        if (++k % 64 == 0 && fastnn_now_ns() - started > patience) {
            /* the worker was preempted mid-task (a busy neighbour shares its core): sleep, so
             * that this core goes idle and the kernel moves the worker here, rather than yield
             * (a yielding thread keeps its core busy, and the worker waits for its own core's
             * next time slice, milliseconds away) */
            pthread_mutex_lock(&w->mutex);
            atomic_store(&w->waiting, 1);
            while (atomic_load(&w->finished) != target)
                pthread_cond_wait(&w->done, &w->mutex);
            atomic_store(&w->waiting, 0);
            pthread_mutex_unlock(&w->mutex);
        }
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

/* The first line of a /proc file into text (size >= 2); 0 where it cannot be read. */
static inline int fastnn_read_proc(const char *path, char *text, size_t size) {
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, text, size - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = 0;
    return 1;
}

/* The number after field `skip` of /proc/loadavg ("0.50 0.40 0.30 2/345 6789": field 3 is the
 * tasks runnable now, after its '/' the tasks there are), or -1. */
static inline int fastnn_loadavg_count(const char *text, int slash) {
    const char *c = text;
    int field = 0, count = 0;
    for (; *c && field < 3; c++)
        if (*c == ' ')
            field++;
    if (slash)
        while (*c && *c != '/')
            c++;
    c += slash && *c == '/';
    if (field < 3 || *c < '0' || *c > '9')
        return -1;
    for (; *c >= '0' && *c <= '9'; c++)
        count = 10 * count + (*c - '0');
    return count;
}

/* Entries of a /proc directory named by a number (processes in /proc, threads in a task/). */
static inline int fastnn_numbered_entries(const char *path) {
    DIR *dir = opendir(path);
    struct dirent *entry;
    int n = 0;
    if (dir == NULL)
        return 0;
    while ((entry = readdir(dir)) != NULL)
        n += entry->d_name[0] >= '0' && entry->d_name[0] <= '9';
    closedir(dir);
    return n;
}

/* Whether /proc/loadavg counts the tasks this process can see in /proc: not so in a container
 * that shares the host's kernel (its loadavg is the host's). Decided once, at the first call
 * (a millisecond or two: a directory per process). */
static inline int fastnn_loadavg_is_ours(void) {
    static atomic_int ours = -1;
    char text[256], path[64];
    int total, visible = 0, decided = atomic_load(&ours);
    DIR *processes;
    struct dirent *process;
    if (decided >= 0)
        return decided;
    decided = 0;
    if (fastnn_read_proc("/proc/loadavg", text, sizeof(text))
            && (total = fastnn_loadavg_count(text, 1)) > 0
            && (processes = opendir("/proc")) != NULL) {
        while ((process = readdir(processes)) != NULL) {
            if (process->d_name[0] < '0' || process->d_name[0] > '9')
                continue;
            snprintf(path, sizeof(path), "/proc/%.20s/task", process->d_name);
            visible += fastnn_numbered_entries(path);
        }
        closedir(processes);
        decided = 2 * visible >= total;
    }
    atomic_store(&ours, decided);
    return decided;
}

/* Whether the thread `tid` of this process is running or runnable now (state R). */
static inline int fastnn_thread_runs(long tid) {
    char text[256], path[64];
    const char *c;
    snprintf(path, sizeof(path), "/proc/self/task/%ld/stat", tid);
    /* "tid (comm) S ...": the state follows the last ')' (comm may hold one) */
    return fastnn_read_proc(path, text, sizeof(text)) && (c = strrchr(text, ')')) != NULL
           && c[1] == ' ' && c[2] == 'R';
}

/* Threads runnable on the machine at this instant besides the calling thread and, with
 * mine_only 0, every other thread of this process in state R (its BLAS's threads, which a try
 * of more BLAS threads would use), with mine_only 1, only the engine's worker thread `worker`
 * (0: none): the kernel's count in /proc/loadavg less those. For a row split, a BLAS's thread
 * spinning after a threaded product (SciPy's or NumPy's OpenBLAS spins ~0.1 s) takes a core as
 * a neighbour's process does. -1 where /proc cannot tell, or counts another machine's tasks (a
 * container's host). A hint, not a measure: a caller may only ever wait longer before a try
 * because of it, and judges by timing what it tries. Costs ~10 us (a file or two per thread). */
static inline int fastnn_others_runnable(int mine_only, long worker) {
    char text[256];
    int count;
    DIR *tasks;
    struct dirent *task;
    if (!fastnn_loadavg_is_ours() || !fastnn_read_proc("/proc/loadavg", text, sizeof(text))
            || (count = fastnn_loadavg_count(text, 0)) < 0)
        return -1;
    if (mine_only) {
        count -= fastnn_thread_runs(fastnn_gettid());
        count -= worker > 0 && fastnn_thread_runs(worker);
        return count > 0 ? count : 0;
    }
    if ((tasks = opendir("/proc/self/task")) == NULL)
        return -1;
    while ((task = readdir(tasks)) != NULL)
        if (task->d_name[0] >= '0' && task->d_name[0] <= '9')
            count -= fastnn_thread_runs(atol(task->d_name));
    closedir(tasks);
    return count > 0 ? count : 0;
}

#endif
