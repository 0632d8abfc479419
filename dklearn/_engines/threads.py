"""The places in this process where the loop runs a task: here, or a pool of threads.

``Here`` runs a task in the calling thread, at once; ``Threads`` hands it
to one of ``workers`` threads, which share every intermediate result for
free.  Either posts ``(job, outcome, value, wall s, CPU s)`` to the
``Inbox`` when the task ends, where the loop (``local``) reads it.  Worker
threads cap their own OpenMP threads (a per-thread setting) and run under
the caller's scikit-learn configuration, so a task's result does not depend
on where it ran.
"""

import collections
import os
import threading
import time
import warnings
from multiprocessing import connection

import sklearn

from .. import _compat, _tasks
from . import limits
from ._worker import nested_parallelism

# The loop never sleeps longer than this: a Ctrl-C that lands just before it
# goes to sleep is only seen once it wakes (Python runs signal handlers
# between bytecodes, and a signal that came first does not cut the sleep).
WAKE_SECONDS = 0.2


class Inbox:
    """Where places post finished tasks; the loop sleeps on it and on worker sockets.

    Its pipe closes when the last thread holding it is gone (a thread of an
    interrupted search posts after the loop has left), never before: a
    closed descriptor's number may be reused by the next file opened.
    """

    def __init__(self):
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._events = collections.deque()

    def __del__(self):
        os.close(self._r)
        os.close(self._w)

    def post(self, event):
        self._events.append(event)
        try:
            os.write(self._w, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups: the loop is awake
            pass

    def wait(self, conns, timeout):
        """(posted events, the ``conns`` ready to read, how late the wake-up was if
        nothing cut it short), after at most ``timeout`` s."""
        timeout = WAKE_SECONDS if timeout is None else min(timeout, WAKE_SECONDS)
        deadline = time.perf_counter() + timeout
        late = float("nan") if self._events else None
        while True:
            ready = connection.wait([self._r, *conns], 0 if self._events else timeout)
            if late is None:  # the first wake-up: on time unless another thread held the GIL
                late = time.perf_counter() - deadline if not ready else float("nan")
            if self._r in ready:
                os.read(self._r, 65536)
            ready_conns = [c for c in ready if c is not self._r]
            timeout = deadline - time.perf_counter()
            # A poster appends its event, then writes its byte: a byte may
            # come after its event was taken, and must not cut a wait short.
            if self._events or ready_conns or timeout <= 0:
                break
        events = []
        while self._events:
            events.append(self._events.popleft())
        return events, ready_conns, late


def _timed(task, inputs):
    """Run ``task``: (outcome, value, wall seconds, CPU seconds of this thread)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        value = _tasks.execute(task, inputs)
    except BaseException as error:  # noqa: BLE001 - the loop raises it in the caller
        return "error", error, time.perf_counter() - wall, time.thread_time() - cpu
    return "ok", value, time.perf_counter() - wall, time.thread_time() - cpu


class Here:
    """Runs a task in the calling thread, at once."""

    name = "here"

    def __init__(self, inbox, blas, alone):
        self.inbox, self.blas = inbox, blas
        self.openmp = None
        # While no worker thread runs a task (``alone()``), a task here runs under
        # warnings.catch_warnings(), as in scikit-learn's loop: a warning shows
        # once per fit, not once per place in the code.  Beside a running thread
        # it would not be safe: the filters are the whole process's, and one
        # thread's would be restored over the other's.
        self.alone = alone

    def free(self, nbytes=0):
        return True

    def start(self, job, task, inputs, timeout=None):
        if self.openmp is None and self.blas:  # capped as in a worker thread: equal results
            self.openmp = limits.cap_this_thread(self.blas)
        job.started = time.perf_counter()
        if self.alone():
            with warnings.catch_warnings():
                outcome = _timed(task, inputs)
        else:
            outcome = _timed(task, inputs)
        if outcome[0] == "error" and not isinstance(outcome[1], Exception):
            raise outcome[1]  # Ctrl-C lands in this thread: the search stops now
        self.inbox.post((job, *outcome))

    def done(self, job):
        pass

    def close(self, abort):
        if self.openmp is not None:
            self.openmp.restore_original_limits()


class Threads:
    """``workers`` threads of this process, each under the caller's configuration.

    Tasks wait in a queue that the loop can take back from (``recall``): a
    task of a kind that moved to processes, not started yet, goes there.
    """

    name = "threads"

    def __init__(self, inbox, workers, blas, config):
        self.inbox, self.workers = inbox, workers
        self.busy = 0  # handed out and not answered: read and written by the loop only
        self.queue = collections.deque()
        self.ready = threading.Condition()
        self.lone = None  # (job, process CPU time at its start) of a task started alone
        self.clocks = {}  # thread ident -> (its CPU clock, running job, its CPU at the start)
        self.threads = [
            threading.Thread(target=self._serve, args=(blas, config), daemon=True,
                             name=f"dklearn-{i}")
            for i in range(workers)
        ]
        for thread in self.threads:
            thread.start()

    def free(self, nbytes=0):
        return self.busy < 2 * self.workers  # a task running and one ahead, each

    def start(self, job, task, inputs, timeout=None):
        self.busy += 1
        with self.ready:
            self.queue.append((job, task, inputs))
            self.ready.notify()

    def done(self, job):
        self.busy -= 1

    def recall(self, kinds):
        """Take back the tasks of ``kinds`` no thread has started; their keys."""
        with self.ready:
            back = [item for item in self.queue if item[0].kind in kinds]
            for item in back:
                self.queue.remove(item)
        self.busy -= len(back)
        return [job.key for job, _, _ in back]

    def lone_cores(self, kind):
        """The cores a task of ``kind`` running alone on the threads keeps busy so far (this
        process's CPU time over its wall time), or None."""
        lone = self.lone
        if lone is None or lone[0].kind != kind or lone[0].started is None:
            return None
        wall = time.perf_counter() - lone[0].started
        return (time.process_time() - lone[1]) / wall if wall > 0 else None

    def running_kinds(self):
        """The kind of each task running now, one entry per task."""
        return [job.kind for _, job, _ in list(self.clocks.values())]

    def running(self):
        """(kind, wall seconds, CPU seconds so far) of each task running now."""
        now = time.perf_counter()
        out = []
        for clock, job, cpu0 in list(self.clocks.values()):
            if clock is not None:
                try:
                    cpu = time.clock_gettime(clock)
                except OSError:  # the thread has moved on
                    continue
                out.append((job.kind, now - job.started, cpu - cpu0))
        return out

    def _serve(self, blas, config):
        limits.cap_this_thread(blas)
        sklearn.set_config(**config)
        _tasks.RUNNING.task = _tasks.RUNNING.beside = True
        ident = threading.get_ident()
        try:
            clock = time.pthread_getcpuclockid(ident)
        except (AttributeError, OSError):
            clock = None
        while True:
            with self.ready:
                while not self.queue:
                    self.ready.wait()
                item = self.queue.popleft()
            if item is None:
                return
            job, task, inputs = item
            job.started = time.perf_counter()
            # A task started alone stays so until another starts beside it.
            lone = self.lone = (job, time.process_time()) if not self.clocks else None
            self.clocks[ident] = (clock, job, time.thread_time())
            with nested_parallelism():
                if _compat.EACH_FIT_CATCHES_WARNINGS and self.busy == 1:
                    # The only task out (a probe's): under catch_warnings, as in
                    # scikit-learn's loop and as ``Here`` runs one; beside another
                    # task it would not be safe (see ``Here``).
                    with warnings.catch_warnings():
                        outcome = _timed(task, inputs)
                else:
                    outcome = _timed(task, inputs)
            del self.clocks[ident]
            if lone is not None and self.lone is lone:
                # The cores it kept busy by itself: its own threads count (an OpenMP
                # team, which a cap may not reach: LightGBM sizes its own).
                job.cores = (time.process_time() - lone[1]) / max(outcome[2], 1e-9)
                self.lone = None
            item = task = inputs = None
            self.inbox.post((job, *outcome))

    def close(self, abort):
        with self.ready:
            if abort:  # tasks not started yet are dropped
                self.queue.clear()
            self.queue.extend([None] * len(self.threads))
            self.ready.notify_all()
        if not abort:  # after Ctrl-C or an error, a running task ends on its own, unwaited
            for thread in self.threads:
                thread.join()
