# Design: the one step of a save that must not be split. An anonymous file (O_TMPFILE), written
# and synced, gets a hidden name and is renamed over the target by two system calls that a child
# of vfork() makes (fastnn/_publish.h): a save killed at any moment leaves the old file or the new
# one, never the hidden name.

cdef extern from "_publish.h" nogil:
    void fastnn_publish(const char* source, int directory, const char* temporary,
                        const char* target, int* step, int* error)


def publish(int handle, int directory, bytes temporary, bytes target):
    """Name the anonymous file open as ``handle`` ``temporary`` in the folder open as
    ``directory``, then rename it to ``target`` there, both in a child that a kill of this
    process does not stop, without the GIL.

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
        fastnn_publish(c_source, directory, c_temporary, c_target, &step, &error)
    return step, error
