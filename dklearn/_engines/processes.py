"""Worker processes: where a task escapes the GIL, a crash costs that task only, and a
task past its time limit is stopped.

Each worker is a fork of the zygote (see ``_worker``: one interpreter of
this machine pays the imports, each worker then starts in tens of
milliseconds), connected to this process by a socket of its own, running
one task at a time.  Knowing which worker runs which task keeps the rules
simple:

- a worker that dies while running a task crashed *that* task; the others
  go on, and a new worker takes its place;
- a task past its time limit ends with its worker (its own timer, see
  ``_worker``), and only it;
- a worker that cannot start, or cannot read a task or send back its result,
  is never a failed fit: it is reported (``WorkerUnavailable``,
  ``TaskNotSendable``) and the loop raises it or runs the task elsewhere.

What travels: a task and the small intermediate results it reads, pickled
with cloudpickle with each task; the search's constants (X, y, folds,
scorers, fit parameters) once per search, written to files by ``Store`` and
read by a worker when a task first names them; intermediate results of a
megabyte or more (a transformed fold, which every candidate after it reads)
written once each, read by each task that names them, and removed when no
task will.  NumPy arrays of a megabyte or more in those files are
memory-mapped (as joblib does for scikit-learn): one copy in memory however
many workers read them.

Warm across searches: the zygote, and the idle workers a search hands back
(``_WARM``), serve the next search of this process, as scikit-learn's
reusable loky workers do.  Idle for ``IDLE_SECONDS``, they leave; they also
leave when this process exits, however it exits.  What a worker took from
this process when it started, it keeps; so a warm worker serves a search
only if nothing it took has changed since: ``sys.path`` and the
environment (each fork gets the current ones), and the files of the
modules imported here (a notebook's autoreload, ``importlib.reload``: a
file edited after the zygote started retires it and its workers).  A
module's variables changed in memory are not seen, as in scikit-learn's
workers.
"""

import atexit
import collections
import itertools
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from multiprocessing.connection import Connection

import cloudpickle

from .. import _tasks
from .._own_code import own_files
from ._worker import RemoteTraceback, Stored

# As joblib's loky workers: a notebook's next search finds them warm.
IDLE_SECONDS = 300
# Arrays this large are memory-mapped by the workers (joblib's max_nbytes).
MMAP_BYTES = 1 << 20


class WorkerUnavailable(RuntimeError):
    """No worker process could run the task (one could not start, or left)."""


class Resend(Exception):
    """The worker chosen for a task is gone: the task goes to another one."""


class TaskNotSendable(RuntimeError):
    """A task could not be sent to a worker process, or its result could not come back."""


# The zygote finds dklearn where this process found it (not only where it is
# installed: a checkout on sys.path), before it reads this process's sys.path.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_START = (f"import sys; sys.path.insert(0, {_ROOT!r}); "
          "import dklearn._engines._worker as worker; worker.main(sys.argv)")


class _Zygote:
    """The one interpreter that imports, and forks each worker (see ``_worker``)."""

    def __init__(self):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _START, str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            child.close()
        self.sock = parent
        self.born = time.perf_counter()
        self.born_wall = time.time()  # against the files' modification times
        self.environ = dict(os.environ)  # what it started with
        self.ready = False
        self.error = None  # why it could not start, once known
        self.start_seconds = None  # from launch to ready
        self._reading = threading.Lock()
        parent.send(pickle.dumps(("hello", list(sys.path), IDLE_SECONDS)))

    def alive(self):
        return self.proc.poll() is None

    def fork(self, blas):
        """A new worker's socket (it says "ready" on it once forked), and its send buffer."""
        ours, theirs = socket.socketpair()
        try:
            # The environment as it is now: what changed since the zygote started.
            now = os.environ
            changes = ({k: v for k, v in now.items() if self.environ.get(k) != v},
                       [k for k in self.environ if k not in now])
            message = ("fork", list(sys.path), changes, blas)
            socket.send_fds(self.sock, [pickle.dumps(message)], [theirs.fileno()])
        finally:
            theirs.close()
        buffer = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return Connection(ours.detach()), buffer

    def warm(self, modules):
        """Have the zygote import ``modules`` so that the workers it forks next have them."""
        if modules:
            self.sock.send(pickle.dumps(("import", sorted(modules))))

    def receive(self):
        """Its first message, if it came: "ready", the error that kept it from starting,
        or None (not yet).  Searches in several threads share it: one reads, all hear."""
        with self._reading:
            if self.ready or self.error is not None:
                return "ready" if self.ready else self.error
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except OSError:
                data = b""
            try:
                message = pickle.loads(data) if data else None
            except (EOFError, pickle.UnpicklingError):
                message = None
            if message and message[0] == "ready":
                self.ready, self.start_seconds = True, time.perf_counter() - self.born
                return "ready"
            detail = message[1] if message else f"it exited with code {self.proc.poll()}"
            self.error = WorkerUnavailable(
                f"The process that starts dklearn's workers failed:\n{detail}")
        self.close()
        return self.error

    def close(self):
        self.sock.close()
        if not self.ready and self.error is None:
            self.proc.kill()  # still importing: it would read its socket's end only after
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Worker:
    def __init__(self, zygote, blas):
        self.conn, self.buffer = zygote.fork(blas)
        self.took = _what_a_worker_takes(blas)
        self.zygote_born = zygote.born_wall
        self.pid = None  # known once ready
        self.jobs = collections.deque()  # the one it runs, then the one it holds ahead
        self.served = 0
        self.gone = False  # a send failed: its end of the socket, to read, says how


    @property
    def ready(self):
        return self.pid is not None

    def send(self, message):
        self.conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def receive(self):
        """The next message, or None if the worker is gone."""
        try:
            return pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None

    def kill(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:  # it had already gone
                pass
        self.conn.close()


# The zygote and the idle workers between searches; searches in several
# threads share them under this lock.
_LOCK = threading.Lock()
_ZYGOTE = None
_WARM = []


def _zygote():
    global _ZYGOTE
    with _LOCK:
        if (_ZYGOTE is not None and _ZYGOTE.ready and _ZYGOTE.alive()
                and _ZYGOTE.born_wall <= _last_edit()):
            _ZYGOTE.close()  # it imported a file edited since: its forks would run old code
            _ZYGOTE = None
        if _ZYGOTE is None or not _ZYGOTE.alive():
            _ZYGOTE = _Zygote()
        return _ZYGOTE


def _what_a_worker_takes(blas):
    """What a worker keeps from this process as it was when it was forked."""
    return blas, tuple(sys.path), tuple(sorted(os.environ.items()))


def _last_edit():
    """The latest modification time of the files of the user's own modules imported here."""
    latest = 0.0
    for path in own_files():
        try:
            latest = max(latest, os.stat(path).st_mtime)
        except (OSError, ValueError):  # gone, or not a path
            pass
    return latest


def _take_warm(n, blas):
    """Up to ``n`` idle workers from earlier searches that took from this process what it
    is now (see module doc)."""
    now, edited = _what_a_worker_takes(blas), _last_edit() if _WARM else 0.0
    with _LOCK:
        same = [w for w in _WARM if w.took == now and w.zygote_born > edited]
        taken = same[:n]
        for worker in taken:
            worker.served = 1  # its first task loads nothing it has not seen
        for worker in [w for w in _WARM if w not in same]:
            worker.kill()  # what it took has changed (a cap no search asks for, say)
        _WARM[:] = []
    alive = []
    for worker in taken:
        if worker.conn.poll(0):  # it said goodbye, or died, while idle
            worker.conn.close()
        else:
            alive.append(worker)
    return alive


def warm_count(blas):
    """How many idle workers with this BLAS cap (and this process's ``sys.path`` and
    environment) wait for a search: the cost model's guess, made for every search,
    so without the look at edited files that taking them makes."""
    now = _what_a_worker_takes(blas)
    with _LOCK:
        return sum(w.took == now for w in _WARM)


def zygote_ready():
    """Whether this process has a zygote ready to fork workers."""
    with _LOCK:
        return _ZYGOTE is not None and _ZYGOTE.ready and _ZYGOTE.alive()


def _give_back(workers):
    with _LOCK:
        _WARM.extend(workers)


def _forget_in_a_fork():
    """A fork of this process (a multiprocessing Pool, say) starts with no workers.

    It inherits the sockets of the zygote and of the idle workers: shared by
    two processes, each answer would go to whichever read first.  Its copies
    are closed (the workers watch for their parent's end to close in every
    process, so they stay for this one).
    """
    global _LOCK, _ZYGOTE
    _LOCK = threading.Lock()  # another thread may have held it at the fork
    for worker in _WARM:
        worker.conn.close()
    _WARM[:] = []
    if _ZYGOTE is not None:
        _ZYGOTE.sock.close()
        _ZYGOTE.proc.returncode = 0  # not this process's child: never waited for here
        _ZYGOTE = None


os.register_at_fork(after_in_child=_forget_in_a_fork)


@atexit.register
def _shut_down():
    with _LOCK:
        workers, _WARM[:] = list(_WARM), []
        zygote = _ZYGOTE
    for worker in workers:
        worker.conn.close()  # it reads the end of its socket and leaves
    if zygote is not None:
        zygote.close()


class Store:
    """The search's constants, written once to a temporary folder for the workers.

    The folder goes when the search ends, however it ends, except when its
    process is killed outright (SIGKILL, out of memory): its name holds the
    process id, and the next search on the machine removes the folders of
    processes that no longer exist.
    """

    def __init__(self):
        _remove_folders_of_dead_processes()
        self.folder = tempfile.mkdtemp(prefix=f"dklearn-{os.getpid()}-")
        open(os.path.join(self.folder, _MARK), "w").close()
        self.stored = {}  # key -> its Stored reference, and the files written for it
        self._count = itertools.count()

    def put(self, key, value, keep=True):
        """``value`` written once, as a reference the workers read it by; ``keep``:
        they keep what they read for the rest of the search (the constants)."""
        if key not in self.stored:
            name = f"{next(self._count)}.pkl"
            with open(os.path.join(self.folder, name), "wb") as f:
                pickler = _StorePickler(f, self.folder, self._count)
                pickler.dump(value)
            self.stored[key] = (Stored(name, keep), [name, *pickler.arrays])
        return self.stored[key][0]

    def drop(self, key):
        """Remove the files of ``key``, if it was written (an intermediate no task reads
        any more; a worker still mapping one keeps it until it is done)."""
        for name in self.stored.pop(key, (None, ()))[1]:
            try:
                os.remove(os.path.join(self.folder, name))
            except OSError:
                pass

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


_MARK = ".dklearn-store"  # in each folder a Store makes: only those are removed


def _remove_folders_of_dead_processes():
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "dklearn" or not parts[1].isdigit():
            continue
        path = os.path.join(root, name)
        if not os.path.exists(os.path.join(path, _MARK)):
            continue  # a name like ours, not ours
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive, another user's: not ours to remove
            pass


def _main_by_value():
    """In a process multiprocessing started by spawn or forkserver, the user's script is
    the module ``__mp_main__``, which no worker can import: its classes and
    functions travel by value, as those of ``__main__`` do."""
    main = sys.modules.get("__mp_main__")
    if main is not None:
        cloudpickle.register_pickle_by_value(main)


class _StorePickler(_tasks.CodePickler):
    """cloudpickle, with large NumPy arrays written beside as .npy files."""

    def __init__(self, file, folder, count):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.folder, self.count = folder, count
        self.arrays = []  # the .npy files written

    def persistent_id(self, obj):
        np = sys.modules.get("numpy")
        if (np is None or type(obj) is not np.ndarray or obj.dtype.hasobject
                or obj.nbytes < MMAP_BYTES):
            return None
        name = f"{next(self.count)}.npy"
        np.save(os.path.join(self.folder, name), obj, allow_pickle=False)
        self.arrays.append(name)
        return name


def with_each_task(inputs, is_constant):
    """The inputs of a task that travel in its payload.  Constants go by file once per
    search; so do large intermediates, once each (read by several tasks, they
    would otherwise be pickled into each payload)."""
    return {k: v for k, v in inputs.items()
            if not is_constant(k) and _tasks.nbytes(v) < MMAP_BYTES}


class Processes:
    """The loop's place for tasks in worker processes (``n`` of them)."""

    name = "processes"

    def __init__(self, workers, blas, config, is_constant):
        self.n, self.blas, self.config = workers, blas, config
        # Each task runs under the caller's warning filters, as scikit-learn (from
        # 1.7) runs each fit in its workers: a warning shows once per fit.
        self.filters = list(warnings.filters)
        self.is_constant = is_constant
        _main_by_value()
        self.workers = []
        self.zygote = None
        self.zygote_heard = True  # whether the loop knows the zygote's start
        self.store = None
        self._jobs = itertools.count()

    # -- workers -------------------------------------------------------------------

    def launch(self, modules=()):
        """Take warm workers, and fork more up to ``n``; they say when they are ready."""
        self.workers = _take_warm(self.n, self.blas)
        if len(self.workers) < self.n:
            try:
                self.zygote = _zygote()
                self.zygote_heard = self.zygote.ready
                self.zygote.warm(modules)
                while len(self.workers) < self.n:
                    self.workers.append(_Worker(self.zygote, self.blas))
            except OSError as error:
                raise WorkerUnavailable(
                    f"A worker process could not be started: {error}") from error

    def ready_count(self):
        return sum(w.ready for w in self.workers)

    def free(self, nbytes=0):
        """Whether a worker can take a task reading ``nbytes`` of intermediate data.

        A task goes ahead to a busy worker only if it fits in the socket's
        buffer: a busy worker reads nothing, and this process, blocked
        sending to it, would not read the result the worker is blocked
        sending back.
        """
        return self._worker_for(nbytes) is not None

    def _worker_for(self, nbytes):
        best = None
        for w in self.workers:
            if not w.ready or w.gone or len(w.jobs) >= 2:
                continue
            if not w.jobs:
                return w
            if best is None and nbytes <= w.buffer // 4:
                best = w
        return best

    def connections(self):
        """Sockets the loop waits on: workers starting, running a task or gone; a starting
        zygote."""
        conns = [w.conn for w in self.workers if not w.ready or w.jobs or w.gone]
        if self.zygote is not None and not self.zygote.ready and self.zygote.error is None:
            conns.append(self.zygote.sock)
        return conns

    # -- tasks ---------------------------------------------------------------------

    def start(self, job, task, inputs, timeout=None):
        inline = with_each_task(inputs, self.is_constant)
        worker = self._worker_for(_tasks.nbytes(list(inline.values())))
        if self.store is None:
            try:
                self.store = Store()
            except OSError as error:  # a temporary folder it cannot write to
                raise WorkerUnavailable(
                    "dklearn's worker processes need a writable temporary folder "
                    f"(tempfile.gettempdir(), TMPDIR): {error}") from error
        try:
            data = {k: v if k in inline else self.store.put(k, v, keep=self.is_constant(k))
                    for k, v in inputs.items()}
            payload = _tasks.dumps((self.store.folder, self.config, self.filters, task, data))
        except Exception as error:  # noqa: BLE001 - e.g. an estimator holding a lock
            raise TaskNotSendable(
                f"The task {job.key!r} cannot be pickled for a worker process "
                f"({type(error).__name__}: {error})."
            ) from error
        try:
            worker.send(("run", next(self._jobs), payload, timeout))
        except OSError:  # it died, or left idle: ``receive`` will read why
            worker.gone = True
            raise Resend() from None
        if not worker.jobs:
            job.started = time.perf_counter()
        job.first = worker.served == 0
        worker.served += 1
        worker.jobs.append(job)

    def done(self, job):
        pass  # the worker is free from the moment its answer is read

    def forget(self, key):
        """No task reads the intermediate ``key`` any more: its file, if any, goes."""
        if self.store is not None:
            self.store.drop(key)

    def stop(self, job):
        """Kill the worker running ``job`` (past its time limit) and start another.

        Returns the job it held ahead, if any, which never started.
        """
        worker = next(w for w in self.workers if w.jobs and w.jobs[0] is job)
        worker.kill()
        self._replace(worker)
        return list(worker.jobs)[1:]

    def _replace(self, worker):
        self.workers.remove(worker)
        self.workers.append(_Worker(_zygote(), self.blas))

    def receive(self, conns):
        """Events for the loop, from the sockets ``conns`` that are ready to read."""
        events = []
        if not self.zygote_heard:  # it may have spoken to another search's loop
            outcome = self.zygote.receive()
            self.zygote_heard = outcome is not None  # said once, "ready" or not
            if isinstance(outcome, Exception):
                return [(None, "broken", outcome, 0.0, 0.0)]
            if outcome == "ready":
                events.append((None, "zygote", self.zygote.start_seconds, 0.0, 0.0))
        for worker in [w for w in self.workers if w.conn in conns]:
            message = worker.receive()
            if message is None or message[0] == "bye":
                worker.conn.close()
                self._replace(worker)
                jobs = list(worker.jobs)
                if jobs and message is None:  # it died under its task
                    head = jobs.pop(0)
                    events.append((head, "crashed", None,
                                   time.perf_counter() - head.started, 0.0))
                # The rest never started (or it left idle, before reading them).
                events.extend((job, "unavailable", None, 0.0, 0.0) for job in jobs)
                if not worker.ready and (self.zygote is None or not self.zygote.alive()):
                    events.append((None, "broken", WorkerUnavailable(
                        "A worker process exited before it was ready."), 0.0, 0.0))
                continue
            op = message[0]
            if op == "ready":
                worker.pid = message[1]
                events.append((None, "ready", None, 0.0, 0.0))
                continue
            job = worker.jobs.popleft()
            if worker.jobs:  # the one held ahead starts now
                worker.jobs[0].started = time.perf_counter()
            if op == "done":
                _, _, result, _, cpu, said = message
                _tasks.repeat(said)
                events.append((job, "ok", cloudpickle.loads(result),
                               time.perf_counter() - job.started, cpu))
            elif op == "error":
                _tasks.repeat(message[3])
                if message[2] is None:  # it cannot travel: the task runs here, to raise it
                    events.append((job, "rerun here", None, 0.0, 0.0))
                else:
                    error, trace = cloudpickle.loads(message[2])
                    error.__cause__ = RemoteTraceback(trace)  # where it raised, in the worker
                    events.append((job, "error", error, 0.0, 0.0))
            else:  # "unloadable" / "unsendable"
                what = "read the task" if op == "unloadable" else "send back the result"
                events.append((job, "unsendable", TaskNotSendable(
                    f"A worker process could not {what} of {job.key!r}:\n{message[2]}"),
                    0.0, 0.0))
        return events

    def close(self, abort):
        """Kill the workers still running a task; hand the others to the next search."""
        keep = []
        for worker in self.workers:
            if worker.jobs:
                worker.kill()
                continue
            if not worker.ready:  # it leaves as soon as it sees its socket closed
                worker.conn.close()
                continue
            try:
                worker.send(("forget",))
                keep.append(worker)
            except OSError:
                worker.conn.close()
        self.workers = []
        _give_back(keep)
        if self.store is not None:
            self.store.remove()
            self.store = None
