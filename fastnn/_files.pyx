# Design: the one step of a save that must not be split. An anonymous file (O_TMPFILE), written
# and synced, gets a hidden name and is renamed over the target by two system calls with no
# Python between them: a save killed at any moment leaves the old file or the new one, and a
# hidden temporary only if killed in the instant between the two calls (Linux has no call that
# names an anonymous file over an existing one).

cdef extern from "<fcntl.h>" nogil:
    const int AT_FDCWD
    const int AT_SYMLINK_FOLLOW

cdef extern from "<unistd.h>" nogil:
    int linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath, int flags)
    int unlinkat(int dirfd, const char* pathname, int flags)

cdef extern from "<stdio.h>" nogil:
    int renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath)

cdef extern from "<errno.h>" nogil:
    int errno


def publish(int handle, int directory, bytes temporary, bytes target):
    """Name the anonymous file open as ``handle`` ``temporary`` in the folder open as
    ``directory``, then rename it to ``target`` there, back to back without the GIL.

    Returns
    -------
    (int, int)
        ``(0, 0)`` once ``target`` is the file; else which call failed (1: the link, 2: the
        rename) and its errno. A failed rename removes ``temporary`` again, so nothing is left.
    """
    cdef bytes source = f"/proc/self/fd/{handle}".encode()
    cdef const char* c_source = source
    cdef const char* c_temporary = temporary
    cdef const char* c_target = target
    cdef int step = 0, error = 0
    with nogil:
        # linkat(AT_SYMLINK_FOLLOW) links the file the /proc entry stands for, not the entry
        if linkat(AT_FDCWD, c_source, directory, c_temporary, AT_SYMLINK_FOLLOW) != 0:
            step, error = 1, errno
        elif renameat(directory, c_temporary, directory, c_target) != 0:
            step, error = 2, errno
            unlinkat(directory, c_temporary, 0)
    return step, error
