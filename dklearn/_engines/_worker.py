"""Worker processes: ``_worker.main([_, FD])``, in a new interpreter, is the zygote.

The only module of the engines a worker process imports (with ``.._tasks``
and ``.._compat``, the task bodies).  Importing NumPy, SciPy and scikit-learn takes a fresh
interpreter one to two seconds of a core, so one interpreter, the zygote,
pays it once for this machine's searches, and each worker is a fork of it
(tens of milliseconds).  The zygote only imports and forks: it runs no
task, starts no thread and never enters an OpenMP region, so forking it is
safe.  Its control socket (a SOCK_SEQPACKET pair, which carries file descriptors)
speaks, as pickles of plain values:

    parent -> zygote   ("hello", sys.path, idle seconds)       once, first
                       ("fork", sys.path, environment changes, BLAS cap)
                                                 + a socket: a new worker on it
                       ("import", module names)                  before forking: warm them
    zygote -> parent   ("ready", pid, CPU seconds) | ("start-error", traceback)

A worker runs one task at a time on its socket (``multiprocessing.connection``
framing):

    parent -> worker   ("run", job id, payload, deadline seconds or None)
                       ("forget",)                      the search ended
    worker -> parent   ("ready", pid)
                       ("done", job id, result, wall s, CPU s, what it said)
                       ("error", job id, exception or None, what it said)
                                                        the task raised (None: an
                                                        exception that cannot travel)
                       ("unloadable", job id, traceback)   the task could not be read
                       ("unsendable", job id, traceback)   its result could not be pickled
                       ("bye",)                         idle too long: leaving

Payloads and results are cloudpickle, as loky sends scikit-learn's work:
classes, functions and lambdas defined in the caller's ``__main__`` travel
by value (no worker imports the caller's main module).  A payload names the
search's constants (X, y, folds, scorers), and its large intermediate
results, by ``Stored`` references to files the parent wrote once; large
arrays among them are memory-mapped, read only, as joblib does (one copy in
memory however many workers).

A task with a time limit arms the kernel's real-time timer with SIGALRM's
default action: the process dies at the deadline, even inside C code that
holds the GIL, and the parent, seeing its socket close after the deadline,
knows why.  Workers and zygote leave when the parent closes their socket
(the parent exited, even by SIGKILL), or after ``idle``
seconds without work; they live in a session of their own, so a Ctrl-C in
the terminal reaches the parent only, which decides what stops.
"""

import os
import pickle
import select
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection
from traceback import format_exc


class Stored:
    """A value the parent wrote to ``folder/name`` (see ``processes.Store``): a
    constant of the search, which a worker keeps once read, or a large
    intermediate result, read again by each task (``keep`` False)."""

    __slots__ = ("name", "keep")

    def __init__(self, name, keep=True):
        self.name, self.keep = name, keep

    def __reduce__(self):
        return (Stored, (self.name, self.keep))


def load(path):
    """Read a file the parent's ``Store`` wrote; large arrays come back memory-mapped."""
    import numpy as np

    folder = os.path.dirname(path)

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            return np.load(os.path.join(folder, pid), mmap_mode="r")

    with open(path, "rb") as f:
        return Unpickler(f).load()


class _Constants:
    """The search's constants this worker has read, for the current folder only
    (and the large intermediates a task reads, for that task only)."""

    def __init__(self):
        self.folder, self.values = None, {}

    def resolve(self, folder, data):
        if folder != self.folder:
            self.folder, self.values = folder, {}
        out = {}
        for key, value in data.items():
            if isinstance(value, Stored) and not value.keep:
                value = load(os.path.join(folder, value.name))
            elif isinstance(value, Stored):
                if value.name not in self.values:
                    self.values[value.name] = load(os.path.join(folder, value.name))
                value = self.values[value.name]
            out[key] = value
        return out

    def forget(self):
        self.folder, self.values = None, {}


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process."""

    def __str__(self):
        return f'\n"""\n{self.args[0]}"""'


def _exception(error, trace):
    """``error`` pickled with its traceback text (the parent attaches it as the
    cause, ``RemoteTraceback``, as joblib does), or None if it cannot travel
    (it does not pickle, or does not load again: an ``__init__`` that its own
    ``args`` cannot call).  The parent then runs the task itself, and meets
    the error as scikit-learn's loop would."""
    import cloudpickle

    try:
        data = cloudpickle.dumps((error, trace))  # a cause does not travel in a pickle
        pickle.loads(data)
    except Exception:  # noqa: BLE001
        return None
    return data


# ---------------------------------------------------------------------------
# A worker
# ---------------------------------------------------------------------------


def nested_parallelism():
    """Where a task runs in a worker, thread or process: a fit's own joblib calls
    (a forest's n_jobs, a StackingClassifier's) run on threads, as joblib runs
    them inside its own workers, instead of each worker starting a pool of
    processes of its own that outlives the search."""
    import joblib

    return joblib.parallel_config(backend="threading")


def _send(conn, message):
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def serve(conn, idle):
    """Run tasks from ``conn`` one at a time until told to stop (see module doc)."""
    import cloudpickle

    from dklearn import _tasks

    _tasks.RUNNING.task = True
    _send(conn, ("ready", os.getpid()))
    constants, config = _Constants(), None
    while True:
        if not conn.poll(idle):
            _send(conn, ("bye",))
            return
        try:
            message = pickle.loads(conn.recv_bytes())
        except EOFError:  # the parent is gone
            return
        if message[0] == "forget":
            constants.forget()
            continue
        _, job, payload, deadline = message
        if deadline is not None:  # the kernel ends this process then, GIL or not
            signal.setitimer(signal.ITIMER_REAL, max(deadline, 1e-3))
        try:
            folder, wanted_config, filters, task, data = cloudpickle.loads(payload)
            data = constants.resolve(folder, data)
            if wanted_config != config:
                import sklearn

                sklearn.set_config(**wanted_config)
                config = wanted_config
        except BaseException:  # noqa: BLE001
            signal.setitimer(signal.ITIMER_REAL, 0)
            _send(conn, ("unloadable", job, format_exc()))
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        with _tasks.Said(filters) as said, nested_parallelism():
            try:
                value = _tasks.execute(task, data)
            except BaseException as error:  # noqa: BLE001 - the parent raises it
                signal.setitimer(signal.ITIMER_REAL, 0)
                value, failed = None, True
                failure = _exception(error, format_exc())
            else:
                signal.setitimer(signal.ITIMER_REAL, 0)
                failed = False
        if failed:
            _send(conn, ("error", job, failure, said.output()))
            continue
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        try:
            result = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001
            _send(conn, ("unsendable", job, format_exc()))
            continue
        _send(conn, ("done", job, result, wall, cpu, said.output()))
        del value, data, task, result


def _become_worker(control, fd, sys_path, environ, blas, idle):
    """In a fresh fork of the zygote: become a worker serving the socket ``fd``."""
    control.close()
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    sys.path[:] = sys_path
    changed, removed = environ  # the parent's, since the zygote started
    os.environ.update(changed)
    for name in removed:
        os.environ.pop(name, None)
    if blas is not None:
        # Libraries loaded from now on read these; those loaded already are capped here.
        for name in _THREAD_VARIABLES:
            os.environ[name] = str(blas)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas)
    _leave_with_the_parent(fd)
    conn = Connection(fd)
    try:
        serve(conn, idle)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone
    finally:
        os._exit(0)


def _leave_with_the_parent(fd):
    """Exit as soon as the parent's end of the socket closes, even in the middle of a task.

    The parent closes it only by exiting (however: SIGKILL too) or to send an
    idle worker away; between tasks the worker would read the end anyway, but
    a fit of an hour would otherwise run on for nobody.  A thread waits for
    the hang-up, which Linux reports apart from data (POLLRDHUP); elsewhere,
    the worker leaves at its next read.
    """
    hangup = getattr(select, "POLLRDHUP", None)
    if hangup is None:
        return

    def watch():
        poller = select.poll()
        poller.register(fd, hangup)
        while True:
            for _, events in poller.poll():
                if events & (hangup | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    os._exit(0)

    import threading

    threading.Thread(target=watch, name="dklearn-parent-watch", daemon=True).start()


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


# ---------------------------------------------------------------------------
# The zygote
# ---------------------------------------------------------------------------


def zygote(control):
    """Import once, then fork a worker for each request (see module doc)."""
    _, sys_path, idle = pickle.loads(control.recv(1 << 20))
    sys.path[:] = sys_path
    try:
        import cloudpickle  # noqa: F401
        import threadpoolctl  # noqa: F401

        from dklearn import _tasks  # noqa: F401 - scikit-learn with it
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        control.send(pickle.dumps(("start-error", format_exc())))
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped as they exit
    control.send(pickle.dumps(("ready", os.getpid(), time.process_time())))
    while True:
        if not select.select([control], [], [], idle)[0]:
            return  # idle too long; the parent starts another when it needs one
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
        except OSError:
            return
        if not data:
            return  # the parent is gone
        message = pickle.loads(data)
        if message[0] == "import":
            for name in message[1]:
                try:
                    __import__(name)
                except BaseException:  # noqa: BLE001 - the worker will say, if it matters
                    pass
            continue
        _, sys_path, environ, blas = message
        if os.fork() == 0:
            _become_worker(control, fds[0], sys_path, environ, blas, idle)
        os.close(fds[0])


def main(argv):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with socket.socket(fileno=int(argv[1])) as control:
        try:
            zygote(control)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass  # the parent is gone
