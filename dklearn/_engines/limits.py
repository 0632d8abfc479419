"""BLAS and OpenMP thread caps for this process, while searches run in it.

Workers x BLAS threads must not exceed the cores: two workers each running
a 2-thread BLAS on 2 cores lose to either alone.  A worker process sets its
own caps (``_worker``); threads of this process share its BLAS libraries,
whose thread count is a process-wide setting, so searches running here cap
them for their duration and give the original back when the last one ends.

Searches may overlap (two threads of the caller each running one): the cap
in force is the smallest any running search asked for, and the limits the
process had before the first search are restored when the last one ends,
whatever the order.  OpenMP's thread count is per thread: each worker
thread caps its own (``cap_this_thread``), and so does the calling thread
while it runs tasks of a search, which gives its own limit back when the
search ends.
"""

import sys
import threading

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_controller = (None, None)  # (len(sys.modules) when made, threadpoolctl's controller)
_active = []  # the caps of the searches running now, one entry per search
_original = None  # threadpoolctl's limiter holding the limits from before the first


def controller():
    """threadpoolctl's view of the loaded libraries, made again when modules were imported.

    Making one reads every loaded library (3-25 ms): once per search and per
    worker thread, it cost a search of 100 small fits a tenth of its time.
    """
    global _controller
    count, made = _controller
    if made is None or count != len(sys.modules):
        made = ThreadpoolController()
        _controller = (len(sys.modules), made)
    return made


class blas_cap:
    """Context manager: BLAS threads of this process at most ``limit`` while inside."""

    def __init__(self, limit):
        self.limit = limit  # None: no cap

    def __enter__(self):
        global _original
        if self.limit is None:
            return self
        with _lock:
            _active.append(self.limit)
            _any_thread_may_set()
            if _original is None:
                # Its restore must touch BLAS only: a limiter puts back every library
                # it selected, as it found them.
                _original = controller().select(user_api="blas").limit(limits=self.limit)
            elif self.limit < min(_active[:-1]):
                controller().limit(limits=self.limit, user_api="blas")
            _any_thread_may_set()  # held by this thread, a user's limit elsewhere would not act
        return self

    def __exit__(self, *exc):
        global _original
        if self.limit is None:
            return False
        with _lock:
            _active.remove(self.limit)
            _any_thread_may_set()
            if not _active:
                original, _original = _original, None
                original.restore_original_limits()
            elif self.limit < min(_active):
                controller().limit(limits=min(_active), user_api="blas")
            _any_thread_may_set()
        return False


def _any_thread_may_set():
    """Let this thread set OpenBLAS's pool size, and any thread after it.

    threadpoolctl (3.8) lets only the thread that first set a process-wide
    OpenBLAS pool set it again, until that thread leaves a ``with
    threadpool_limits`` block.  These caps are set from whichever thread
    starts or ends a search: unreleased, a search ending in another thread
    left the cap in place, and the user's own limits in other threads did
    nothing.  (Older releases have no such rule, nor this method.)
    """
    import threadpoolctl

    controller_class = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller_class, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def cap_this_thread(limit):
    """Cap OpenMP in the thread that calls (a worker thread, or the caller's while a
    search runs tasks in it: it restores the limits this returns)."""
    if limit is not None:
        # OpenMP only: restored in the calling thread (``Here``) after the search's
        # BLAS cap has ended, a limiter of every library would cap BLAS again.
        return controller().select(user_api="openmp").limit(limits=limit)
    return None
