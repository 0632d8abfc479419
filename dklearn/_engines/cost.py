"""Where each kind of task runs: one rule, from what has been measured.

A kind is every task that fits (or fits and scores) the same class:
``"fit PCA"``, ``"score MLPClassifier"``.  The planner names it; glue tasks
(stacking union branches, slicing fit parameters) have none and run in the
calling thread.  Tasks start on threads, which cost nothing to start and
share intermediate results for free.  For a kind with r tasks not yet
started, from its tasks that ran (or are running) on N threads:

    w   wall seconds per task;
    c   CPU seconds per task of the thread that ran it;
    P   the cores that all worker threads used together (the sum of their
        CPU clocks over the time since they started).

Threads of one process lose time to each other only through the GIL, and
only while it is held.  When P is near 1 or above, the GIL is busy: a
thread's time beyond its own CPU (w - c) is time it waited for the GIL, and
a process would not wait.  When P is near 0, the GIL is free: that time is
the task's own waiting (I/O, sleep, BLAS threads of its own), which a
process would wait too.  So a task would take, alone in a process,

    a = c + (w - c) * (1 - min(P, 1))

and the kind's remaining work is expected to take

    on threads      r * w / N
    here            r * a                (the calling thread, one at a time)
    on processes    L + max(r - L * N / w, 0) * (a + m) / N

where m is the measured cost of moving one task (pickling its inputs and
result; measured once tasks of the kind have run in processes, 0 before:
constants travel once per search, not with each task), and L the time until
workers are ready, during which the threads go on (L * N / w tasks).
Workers are forks of one interpreter that imports NumPy, SciPy and
scikit-learn once (``_worker``): L is that interpreter's start (as long as
it took in this process, 1 s before it first started), and 0 once it runs
or workers are warm (left by an earlier search of this process).  Its
imports take one core; a kind worth moving leaves one idle (its threads
wait for the GIL), so L costs the search nothing else.  Once tasks of a
kind have run in processes, their measured wall time replaces ``a + m``.

The rule: each kind runs where its expected time is least.  A kind is
judged once its tasks have run ``SAMPLE_SWITCHES`` GIL switch intervals per
worker (a share measured over fewer is noise), from running tasks too (the
CPU a running task has had is a lower bound of c, which may decide a move,
never a stay), so a search of long GIL-bound fits moves before its first
fit ends.  A move must gain more than one task's time (tasks start whole,
so a smaller expected gain is none).  It moves at most twice: once from threads, on the estimate, and
once back if, after a task per worker there, the measured time in its new
place is worse than on threads (estimates of tiny tasks are noisy; a kind
that kept being re-judged would flap between places for nothing).  Every term is a time measured on this machine, by this search:
nothing in the rule is tuned on a benchmark, so it reads the same on 2
cores and on 64.  In words: move a kind to processes when the time its
threads lose to the GIL exceeds what moving costs; run it in the calling
thread when threads are slower than doing the work alone.

Hard constraints come first: a kind whose tasks cannot be pickled stays in
this process; once a task killed a worker process, every kind runs in
processes (a fit that can crash a process must never run in the caller's).
"""

import sys
import time

# A share of a core is judged over at least this many GIL switch intervals
# per worker (sys.getswitchinterval(): 5 ms by default, so 0.1 s).
SAMPLE_SWITCHES = 20
# Seconds a worker process takes to start before one has been measured here.
START_SECONDS_PRIOR = 1.0
# Worker starts measured in this process, for the estimates of later searches.
_STARTS = []


class _Kind:
    __slots__ = ("left", "wall", "cpu", "n", "proc_wall", "proc_n", "place", "pinned", "moves")

    def __init__(self, left):
        self.left = left  # tasks not started yet
        self.wall = self.cpu = 0.0  # summed over finished tasks on threads
        self.n = 0
        self.proc_wall = 0.0  # summed over finished tasks in processes (round trip)
        self.proc_n = 0
        self.place = "threads"
        self.pinned = None  # a place it must stay in
        self.moves = 0


class Router:
    """The loop's answer to "where does a task of this kind go?" (see module doc)."""

    def __init__(self, workers, fixed, counts, verbose=0):
        self.workers, self.fixed, self.verbose = workers, fixed, verbose
        self.kinds = {kind: _Kind(n) for kind, n in counts.items() if kind is not None}
        self.sample = SAMPLE_SWITCHES * sys.getswitchinterval()
        self.processes_broken = None
        self.warm = 0
        self.zygote = False  # a ready interpreter forks workers in milliseconds
        self.crashed_once = False
        self.look_at = time.perf_counter() + self.sample
        self.step = self.sample
        self.threads = None  # the loop's threads, once started

    # -- what the loop asks ----------------------------------------------------

    def places(self, kind):
        """Where a task of ``kind`` may go now, best first."""
        if kind is None:
            return ("here",)
        if self.fixed is not None:
            return (self.fixed,)
        if self.crashed_once:
            return ("processes",)
        state = self.kinds[kind]
        if state.pinned:
            return (state.pinned,)
        if state.place == "processes":
            return ("processes", "threads")  # threads while the workers start
        return (state.place,)

    def next_look(self):
        """When the loop should wake up to let the rule look at running tasks."""
        if self.fixed is not None or self.crashed_once or self.threads is None:
            return float("inf")
        return self.look_at

    # -- what the loop tells ---------------------------------------------------

    def started(self, kind):
        state = self.kinds.get(kind)
        if state is not None:
            state.left -= 1

    def finished(self, kind, place, wall, cpu):
        state = self.kinds.get(kind)
        if state is None:
            return
        if place == "processes":
            state.proc_wall += wall
            state.proc_n += 1
        elif place == "threads":
            state.wall += wall
            state.cpu += cpu
            state.n += 1
        if self.fixed is None:
            self._judge(kind, state, ())

    def warm_workers(self, ready):
        self.warm = ready

    def zygote_started(self, seconds):
        self.zygote = True
        if seconds is not None:
            _STARTS.append(seconds)

    def latency(self):
        """L of the module doc: seconds until worker processes are ready."""
        if self.zygote or self.warm >= self.workers:
            return 0.0
        return _STARTS[-1] if _STARTS else START_SECONDS_PRIOR

    def crashed(self):
        self.crashed_once = True

    def unavailable(self, kind, place, error):
        """Tasks of ``kind`` cannot run in ``place`` (``error`` says why)."""
        if self.fixed == place or (self.crashed_once and place == "processes"):
            raise error
        state = self.kinds.get(kind)
        if state is not None and place == "processes":
            state.pinned = "threads"
            self._say(f"{kind!r} stays in this process: {error}")

    def broken(self, error):
        """Worker processes cannot be used at all in this search."""
        if self.fixed == "processes" or self.crashed_once:
            raise error
        self.processes_broken = error
        for state in self.kinds.values():
            if state.place == "processes":
                state.place = "threads"
        self._say(f"worker processes unavailable, staying on threads: {error}")

    def look(self, now):
        """Judge kinds from the tasks running on threads too (long fits)."""
        if now < self.look_at or self.next_look() == float("inf"):
            return
        self.step *= 2  # each look costs the loop the GIL: a few, spaced out
        self.look_at = now + self.step
        running = self.threads.running()
        for kind, state in self.kinds.items():
            self._judge(kind, state, [(w, c) for k, w, c in running if k == kind])

    # -- the rule ----------------------------------------------------------------

    def _judge(self, kind, state, running):
        if state.left <= 0 or state.pinned or self.processes_broken is not None:
            return
        if state.moves >= 2 or (state.moves == 1 and state.proc_n < self.workers
                                and state.place == "processes"):
            return
        n = self.workers
        times = {}
        if state.n or running:
            wall = state.wall + sum(w for w, _ in running)
            if wall < self.sample * n and not state.proc_n:
                return  # not enough seen yet
            cpu = state.cpu + sum(c for _, c in running)
            if state.n:
                w, c = state.wall / state.n, state.cpu / state.n
            else:  # running tasks only: what they had so far bounds c from below
                c = max(c for _, c in running)
                w = c * wall / max(cpu, 1e-9)
            busy = min(self.threads.cores_used(), 1.0) if self.threads is not None else 1.0
            alone = c + (w - c) * (1.0 - busy)
            times["threads"] = state.left * w / n
            times["here"] = state.left * alone
        else:
            return  # never ran on threads: nothing to compare with
        if state.proc_n:
            times["processes"] = state.left * (state.proc_wall / state.proc_n) / n
        else:
            late = self.latency()
            times["processes"] = late + max(state.left - late * n / w, 0) * alone / n
        best = min(times, key=times.get)
        if not state.n and best != "processes":
            return  # a lower bound of c may decide a move, never a stay
        if times.get(state.place, float("inf")) - times[best] <= w:
            return  # tasks start whole: a gain of less than one is none
        if state.moves == 1 and best != "threads":
            return  # the second move only goes back
        if best != state.place:
            state.moves += 1
            self._say(
                f"{kind!r} -> {best}: {state.left} tasks left, expected "
                + ", ".join(f"{p} {t:.2f} s" for p, t in times.items())
            )
            state.place = best

    def _say(self, message):
        if self.verbose >= 1:
            print(f"[dklearn] {message}", flush=True)
