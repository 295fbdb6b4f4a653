/* Ctrl-C inside compiled loops. Python's own SIGINT handler only marks the signal for the main
 * thread to handle at its next bytecode; a compiled epoch never reaches one until it ends. So at
 * the start of each long compiled call fastnn puts a handler in front of Python's (when a Python
 * handler is installed): it raises a flag that the loops read between batches, then calls
 * Python's handler, which raises KeyboardInterrupt as usual once the loop has returned. Where
 * SIGINT is ignored or has its default action, nothing is put in front and the loops simply run
 * to their end.
 */
#ifndef FASTNN_INTERRUPT_H
#define FASTNN_INTERRUPT_H
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t fastnn_interrupted __attribute__((unused)) = 0;
static struct sigaction fastnn_python_handler __attribute__((unused));

static volatile sig_atomic_t fastnn_in_handler __attribute__((unused)) = 0;

static inline void fastnn_on_sigint(int sig) {
    fastnn_interrupted = 1;
    /* another handler put in front of this one may chain back to it: never loop */
    if (fastnn_in_handler) {
        return;
    }
    fastnn_in_handler = 1;
    fastnn_python_handler.sa_handler(sig);
    fastnn_in_handler = 0;
}

/* Put fastnn's handler in front of the current SIGINT handler if that is a function (Python's);
 * return 1 if fastnn's handler is in front (already or now). */
static inline int fastnn_watch_sigint(void) {
    struct sigaction current, mine;
    if (sigaction(SIGINT, NULL, &current) != 0 || (current.sa_flags & SA_SIGINFO)
            || current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN) {
        return 0;
    }
    if (current.sa_handler == fastnn_on_sigint) {
        return 1;
    }
    fastnn_python_handler = current;
    memset(&mine, 0, sizeof(mine));
    mine.sa_handler = fastnn_on_sigint;
    mine.sa_mask = current.sa_mask;
    mine.sa_flags = current.sa_flags;
    return sigaction(SIGINT, &mine, NULL) == 0;
}

#endif
