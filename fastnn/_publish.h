/* The last step of a save (fastnn/_files.pyx): an anonymous file (O_TMPFILE) gets a hidden name
 * and is renamed over the target. Linux has no call that names an anonymous file over an existing
 * one, so it takes two, and a process killed between them (a SIGKILL that arrives during the
 * link is acted on when the link returns) would leave the hidden name behind. So a child made by
 * vfork() makes both calls: a kill of the saving process does not stop it, and the parent,
 * suspended until the child exits, reads what happened from their shared memory. The child makes
 * system calls only (link, rename, unlink, _exit), with every signal blocked; where vfork fails,
 * the calls are made here. */
#ifndef FASTNN_PUBLISH_H
#define FASTNN_PUBLISH_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* link `source` (a /proc/self/fd entry) as `temporary` in `directory`, then rename it to
 * `target`; *step = 0 once done, else the call that failed (1: link, 2: rename, whose failure
 * removes `temporary` again) with its errno in *error */
static void fastnn_link_and_rename(const char *source, int directory, const char *temporary,
                                   const char *target, volatile int *step, volatile int *error) {
    /* AT_SYMLINK_FOLLOW links the file the /proc entry stands for, not the entry */
    if (linkat(AT_FDCWD, source, directory, temporary, AT_SYMLINK_FOLLOW) != 0) {
        *error = errno;
        *step = 1;
    } else if (renameat(directory, temporary, directory, target) != 0) {
        *error = errno;
        *step = 2;
        unlinkat(directory, temporary, 0);
    } else {
        *step = 0;
    }
}

static void fastnn_publish(const char *source, int directory, const char *temporary,
                           const char *target, int *step_out, int *error_out) {
    volatile int step = -1, error = 0;
    sigset_t all, before;
    pid_t child;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
    child = vfork();
    if (child == 0) {
        fastnn_link_and_rename(source, directory, temporary, target, &step, &error);
        _exit(0);
    }
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (child > 0)
        while (waitpid(child, NULL, __WALL) < 0 && errno == EINTR) {
        }
    if (child < 0 || step < 0)
        fastnn_link_and_rename(source, directory, temporary, target, &step, &error);
    *step_out = step;
    *error_out = error;
}

#endif
