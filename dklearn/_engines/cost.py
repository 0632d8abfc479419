"""Where each kind of task runs: one rule, from what has been measured.

A kind is every task that fits (or fits and scores) the same class:
``"fit PCA"``, ``"score MLPClassifier"``.  The planner names it; glue tasks
(stacking union branches, slicing fit parameters) have none and run in the
calling thread.

A kind first runs one task at a time on a thread (a probe), which
measures a, the time of a task alone, and how much of that time it holds
the GIL: while a probe task runs alone on the threads, the loop wakes once
a switch interval, and a wake-up that comes ``LATE_SWITCHES`` of an
interval late waited for the GIL (a woken thread runs within tens of
microseconds unless a holder keeps the GIL, until its next C call or for up
to an interval; on Linux, the time the kernel kept it waiting for a core
that other programs had is not counted: ``local._QueueClock``).  A task
shorter than an interval ends before any look: after one, the probe's
tasks run in the calling thread, which spares each the hand-over to a
thread, until one takes longer.  The share g of looks that waited is the
share of time a task holds the GIL; N threads want it N * g of the
time.  With r tasks left, N workers can gain at most r * a * (1 - 1/N).
When that is less than a sample (below) the kind runs in the calling
thread, once two tasks
have ended (the smaller of their times counts: the first call of a class
in a process also pays its imports), so a search too small to gain from
parallelism never pays for threads.  Otherwise the probe goes on until the
looks settle whether N * g < 1 (g lies more than two standard errors from
1/N) or its tasks have run a sample.  Neither counts the first sample of
the first task, which also pays the class's imports, holding the GIL.
Threads that want the GIL less than all the time fan out to the N threads;
those that want it more would queue for it (and a thread that let it go
for a C call waits up to an interval to get it back), so the kind runs
here or in processes, whichever the estimates below expect to take less
for tasks as long as the shortest probe task (a class's imports land in
whichever task first makes their calls).
Looks while tasks of other kinds run on the threads do not count (whose
GIL would they see?); a probe without looks fans out.

On the threads, for a kind with r tasks not started, from its tasks that
ran (or are running) there:

    w   wall seconds per task;
    c   CPU seconds per task of the thread that ran it;
    P   the cores N threads of this kind use together: N * c / w (per
        task, so candidates of unequal cost do not blur it).

Threads of one process lose time to each other only through the GIL.  When
P is about one (between 1/``SERIALIZED`` and ``SERIALIZED``), the GIL ran
them one at a time: threads bought nothing but contention, and they are no
longer an option.  (P well under one is threads that wait for something
other than the GIL, sleep or I/O, and do not contend.)  Without a measured
a, a task alone is expected to take

    a = c + (w - c) * (1 - min(P, 1))

(time beyond a thread's own CPU is time waiting for the GIL while it is
busy, and its own waiting, I/O or sleep, while it is free).  This is an
upper bound: contention also costs CPU (each hand-over of the GIL wakes a
thread on a core whose caches hold another's data; a gradient-boosting
fit that hands it over thousands of times took 0.62 s of CPU on two
threads against 0.43 s alone), so estimates from it err toward staying
on the threads.  The kind's
remaining work is expected to take

    on threads      r * w / N
    here            r * a                (the calling thread, one at a time)
    on processes    L + max(r - L * N / w * (1 - s), 0) * (a + m) / N

where m is the cost of sending a task and its result to a worker process:
twice the time this thread took to pickle one of its tasks with the
intermediate results it reads (the worker unpickles it, and the socket
copies it twice: as much again), plus the bytes of its result times the
seconds a byte takes to pickle, copy and unpickle (measured once in this
process); the search's constants travel once per search, not with each
task.  Since this one thread pickles and writes every task, processes
complete at most one task per m / 2 seconds.  L is the time until workers
are ready, during which the current place goes on (L * N / w tasks, on
threads; L / a here, where tasks then run one at a time on a thread, so
that the loop hands work to each worker the moment it is ready): workers
are forks of one interpreter that imports NumPy, SciPy and scikit-learn
once (``_worker``), so L is that interpreter's start (as long as it took
in this process, 1 s before it first started), and 0 once it runs or
workers are warm (left by an earlier search of this process).  Its
imports take one core: a kind on P threads loses s = max(P + 1 - N, 0) / P
of its pace meanwhile (none if it leaves a core idle, as a kind that waits
for the GIL does).  A kind in processes stays there (below): what its
tasks take there is not measured.

The rule: each kind runs where its expected time is least, and moves only
away from contention, never back: from threads to the calling thread or to
processes, and from the calling thread to processes.  A move needs a gain
larger than a task's time per worker where the kind runs (tasks start
whole: the last ones leave workers idle by chance) and than twice the
spread of the mean the gain rests on: a task's time in the calling thread
(over two tasks at least); on threads its time off a core, w - c (the
mean time of a task, unequal between candidates, scales every place's
estimate alike; over fewer than two finished tasks the spread is taken
as none, so a long first fit can move the kind before a second ends).
A smaller gain is noise (and a class's first calls pay its imports), and
a move that does not pay cannot be undone.  Time off a core is not all
contention: other programs' load on the cores also shows there, and
counts as a gain.  Whether processes have it depends on where the load
runs: the workers run in a session of their own, which Linux's autogroup
scheduling gives its own share of the cores (a BLAS-bound kind under four
busy processes of the caller's session: 3.5 s moved to processes, 6.7 s
kept on threads).  A kind is
judged once its tasks ran ``SAMPLE_SWITCHES`` GIL switch intervals per
worker where it is (a share measured over fewer is noise; after a move, the
sample starts again), from running tasks too (the
CPU a running task has had bounds c from below: it may decide a move, never
a stay), so a search of long GIL-bound fits moves before its first fit
ends.  What a kind measured is kept for the next search of this process
that runs it, which starts it where it ended, its old measurements counting
half: a notebook's second search, or the inner searches of a nested
cross-validation, need not learn again what the first learned.  Every term
is a time measured on this machine: nothing in the rule is tuned on a
benchmark, so it reads the same on 2 cores and on 64.

Hard constraints come first: a kind whose tasks cannot be pickled stays in
this process; once a task killed a worker process, every kind runs in
processes (a fit that can crash a process must never run in the caller's).
"""

import sys
import time

# A share of a core is judged over at least this many GIL switch intervals
# per worker (sys.getswitchinterval(): 5 ms by default, so 0.1 s).
SAMPLE_SWITCHES = 20
# Threads that together used fewer cores than this ran one at a time: a
# GIL-bound kind measures 1.0-1.2 on any number of threads (one runs, plus
# the C calls that let go of the GIL), one that runs in parallel near N.
SERIALIZED = 1.25
# While a kind probes, the loop wakes once a GIL switch interval to look at
# the GIL: a look that comes this many switch intervals late waited for it.
# (A woken thread runs within tens of microseconds unless a holder keeps the
# GIL, until its next C call or for up to a switch interval.)
LATE_SWITCHES = 0.1
# Seconds a worker process takes to start before one has been measured here.
START_SECONDS_PRIOR = 1.0
# Worker starts measured in this process, for the estimates of later searches.
_STARTS = []
_SECONDS_PER_BYTE = []
# What each kind measured in earlier searches of this process (see module doc).
_KNOWN = {}


def seconds_per_byte():
    """What a byte of a task's data costs to send to a worker (measured once per process).

    Pickling it and unpickling it into fresh memory, measured on 4 MB of
    floats, twice: the socket copies each byte twice more, into the kernel
    and out of it, as pickle and unpickle do.
    """
    if not _SECONDS_PER_BYTE:
        import pickle

        import numpy as np

        data = np.ones(1 << 19)
        start = time.perf_counter()
        blob = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
        _SECONDS_PER_BYTE.append(2 * (time.perf_counter() - start) / data.nbytes)
    return _SECONDS_PER_BYTE[0]


def _spread(mean, squares, n):
    """The standard error of a mean of ``n`` values whose squares sum to ``squares``."""
    return (max(squares / n - mean * mean, 0.0) / n) ** 0.5


class _Kind:
    __slots__ = ("left", "n", "wall", "lost2", "cpu", "here_n", "here_wall", "here_wall2",
                 "bytes", "bytes_n", "pickling", "place", "came_from",
                 "pinned", "fresh", "probing", "probed", "probe_min", "probe_first",
                 "probe_wall", "probe_last", "looks", "held", "out", "look_at")

    def __init__(self, left, known=None, probing=True):
        self.left = left  # tasks not started yet
        self.probing = probing and known is None  # one task at a time until it is decided
        self.probed = 0  # tasks that ended while it probed
        self.probe_min = float("inf")  # the shortest of them
        self.probe_first, self.probe_wall = 0.0, 0.0  # the first one's seconds; all told
        self.probe_last = float("inf")  # the last one's seconds
        self.looks, self.held = 0, 0  # the loop's looks at the GIL, and those it waited for
        self.out = 0  # tasks handed out and not ended (while probing: one at most)
        self.look_at = float("inf")  # when a running probe task may decide a fan-out
        self.n, self.wall, self.cpu = 0, 0.0, 0.0  # finished on threads
        self.lost2 = 0.0  # the squares of their seconds off a core (wall - CPU)
        self.here_n, self.here_wall, self.here_wall2 = 0, 0.0, 0.0
        self.bytes, self.bytes_n = 0, 0  # intermediate data returned, per task
        self.pickling = None  # seconds this thread took to pickle one of its tasks
        self.place = "threads"
        self.came_from = "threads"  # where it goes while workers start, if it moved to them
        self.pinned = None  # a place it must stay in
        self.fresh = 0.0  # seconds of tasks measured where it is since it moved there
        if known is not None:  # an earlier search's measurements, counting half
            for name in ("n", "wall", "lost2", "cpu", "here_n", "here_wall", "here_wall2",
                         "bytes", "bytes_n"):
                setattr(self, name, getattr(known, name) / 2)
            self.pickling = known.pickling
            self.place, self.came_from = known.place, known.came_from
            self.fresh = float("inf")


class Router:
    """The loop's answer to "where does a task of this kind go?" (see module doc)."""

    def __init__(self, workers, fixed, counts, verbose=0):
        self.workers, self.fixed, self.verbose = workers, fixed, verbose
        # A fixed place has no probe: nothing to decide.
        self.kinds = {kind: _Kind(n, _KNOWN.get(kind) if fixed is None else None,
                                  probing=fixed is None)
                      for kind, n in counts.items() if kind is not None}
        self.sample = SAMPLE_SWITCHES * sys.getswitchinterval()
        self.processes_broken = None
        self.warm = 0
        self.zygote = False  # a ready interpreter forks workers in milliseconds
        self.crashed_once = False
        self.look_at = time.perf_counter() + self.sample
        self.step = self.sample
        self.threads = None  # the loop's threads, once started
        self.leaves_threads = set()  # kinds that go elsewhere now
        self._changed = False
        self.tick_seconds = sys.getswitchinterval()

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
        if state.probing:
            if state.out:
                return ()
            # A task shorter than a switch interval ends before the loop's
            # look: on a thread it pays the hand-over and nothing is seen.
            return ("here",) if state.probe_last < self.tick_seconds else ("threads",)
        if state.place == "processes" and self.warm == 0:  # where it was, while workers start
            if state.came_from == "here":
                # One at a time, as here, but on a thread: the loop, not running
                # it, hears the workers the moment they are ready.
                return ("processes",) if state.out else ("processes", "threads")
            places = ("processes", state.came_from)
        else:
            places = (state.place,)
        if "here" in places and self.threads is not None and self.threads.running_of((kind,)):
            # It left the threads for the GIL: not beside their last tasks.
            places = tuple(p for p in places if p != "here")
        return places

    def moved(self):
        """Whether a kind changed places since the last call."""
        changed, self._changed = self._changed, False
        return changed

    def next_look(self):
        """When the loop should wake up to let the rule look at running tasks."""
        if self.fixed is not None or self.crashed_once or self.threads is None:
            return float("inf")
        return min([self.look_at, *(s.look_at for s in self.kinds.values() if s.probing)])

    def tick(self):
        """How soon the loop should look at the GIL: while probe tasks alone run on threads."""
        if self.fixed is not None or self.threads is None:
            return None
        if (any(s.probing and s.out for s in self.kinds.values())
                and self._probes_alone() is not None):
            return self.tick_seconds
        return None

    def looked(self, late):
        """The loop woke ``late`` seconds after the tick it asked for."""
        kinds = self._probes_alone()
        if not kinds:
            return
        for kind, wall, _ in self.threads.running():
            state = self.kinds[kind]
            # A class's first task in a process also pays its imports, holding
            # the GIL: its first sample does not stand for the others.
            if kind in kinds and state.probing and (state.probed or wall >= self.sample):
                state.looks += 1
                state.held += late > LATE_SWITCHES * self.tick_seconds
                self._probe(kind, state, wall)

    def _probes_alone(self):
        """The kinds of the tasks running on threads, if every one of them probes."""
        kinds = self.threads.running_kinds()
        if all(kind in self.kinds and self.kinds[kind].probing for kind in kinds):
            return kinds
        return None

    def knows_sending(self, kind):
        return self.kinds[kind].pickling is not None

    def sending(self, kind, seconds):
        """This thread took ``seconds`` to pickle a task of ``kind`` (inputs and all)."""
        self.kinds[kind].pickling = seconds

    def wants_bytes(self, kind):
        """Whether the rule still needs the sizes of this kind's data."""
        return self.fixed is None and kind in self.kinds

    def remember(self):
        """Keep what each kind measured for the next search of this process."""
        if self.fixed is None and not self.crashed_once:
            for kind, state in self.kinds.items():
                if not state.pinned:
                    _KNOWN[kind] = state

    # -- what the loop tells ---------------------------------------------------

    def started(self, kind):
        """A task of ``kind`` was handed out."""
        state = self.kinds.get(kind)
        if state is not None:
            state.left -= 1
            state.out += 1
            if state.probing:  # without looks, it may decide once the probe ran a sample
                state.look_at = time.perf_counter() + self.sample

    def ended(self, kind):
        """A task of ``kind`` handed out has ended, whatever the outcome."""
        state = self.kinds.get(kind)
        if state is not None:
            state.out -= 1

    def finished(self, kind, place, wall, cpu, nbytes=None):
        """A task of ``kind`` ended, returning ``nbytes`` of intermediate data."""
        state = self.kinds.get(kind)
        if state is None:
            return
        if nbytes is not None:
            state.bytes += nbytes
            state.bytes_n += 1
        if state.probing:  # it ran alone; too few to stand for the kind's mean
            state.probed += 1
            state.probe_min = min(state.probe_min, wall)
            state.probe_last = wall
            state.probe_wall += wall
            if state.probed == 1:
                state.probe_first = wall
            state.look_at = float("inf")
            self._probe(kind, state)
            return
        if place == "threads":
            state.wall += wall
            state.lost2 += (wall - cpu) ** 2
            state.cpu += cpu
            state.n += 1
        elif place == "here":
            state.here_wall += wall
            state.here_wall2 += wall * wall
            state.here_n += 1
        if place == state.place:
            state.fresh += wall
        if self.fixed is None:
            self._judge(kind, state, ())

    def warm_workers(self, ready):
        if ready and not self.warm and self.leaves_threads:
            # Kinds that moved went on in threads while workers started; the
            # tasks handed ahead to those threads go to the workers instead,
            # or threads and processes would run side by side on the cores.
            self._changed = True
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
        self.leaves_threads = set(self.kinds)
        self._changed = True

    def unavailable(self, kind, place, error):
        """Tasks of ``kind`` cannot run in ``place`` (``error`` says why)."""
        if self.fixed == place or (self.crashed_once and place == "processes"):
            raise error
        state = self.kinds.get(kind)
        if state is not None and place == "processes":
            state.pinned = "threads"
            self._place(kind, state, "threads", f"stays in this process: {error}")

    def broken(self, error):
        """Worker processes cannot be used at all in this search."""
        if self.fixed == "processes" or self.crashed_once:
            raise error
        self.processes_broken = error
        for kind, state in self.kinds.items():
            if state.place == "processes":
                self._place(kind, state, "threads", f"no worker process: {error}")

    def look(self, now):
        """Judge kinds from the tasks running on threads too (long fits)."""
        if now < self.next_look():
            return
        running = self.threads.running()
        for kind, state in self.kinds.items():
            if state.probing and now >= state.look_at:
                state.look_at = now + self.sample  # not started yet, maybe: later
                for k, w, _ in running:
                    if k == kind:
                        self._probe(kind, state, w)
        if now < self.look_at:
            return
        self.step *= 2  # each look costs the loop the GIL: a few, spaced out
        self.look_at = now + self.step
        for kind, state in self.kinds.items():
            self._judge(kind, state, [(w, c) for k, w, c in running if k == kind])

    # -- the rule ----------------------------------------------------------------

    def _probe(self, kind, state, running=0.0):
        """A kind's tasks so far ran one at a time on a thread (one has run ``running``
        seconds so far): fan out, run here, or go to processes?"""
        n = self.workers
        # A running task's time so far is a lower bound of its own time only.
        alone = state.probe_min if state.probed else running
        worth = state.left * alone * (1.0 - 1.0 / n)  # the most N workers could gain
        if worth <= self.sample:
            if state.probed >= 2 or state.left == 0:
                state.probing = False
                self._place(kind, state, "here",
                            f"{state.left} tasks of {alone:.4f} s could gain at most {worth:.2f} s"
                            f" from {n} workers, less than a {self.sample:.2f} s sample costs")
            return
        # The share of looks that waited for the GIL, and its standard error
        # (counting one look each way more, so that a few looks all alike
        # are not taken as certain).
        share = (state.held + 1) / (state.looks + 2)
        error = (share * (1 - share) / (state.looks + 2)) ** 0.5
        # Seconds probed, past the first task's first sample (see ``looked``).
        seconds = (state.probe_wall - state.probe_first + running if state.probed
                   else running - self.sample)
        if abs(share - 1 / n) <= 2 * error and seconds < self.sample:
            return  # neither a sample nor looks that settle it yet
        gil = state.held / state.looks if state.looks else 0.0
        held = f"the GIL was held at {state.held} of {state.looks} looks"
        if gil * n < 1:  # the loop hands its tasks out now
            state.probing, state.fresh = False, 0.0
            if self.verbose >= 1:
                print(f"[dklearn] {kind!r} fans out to {n} threads: {state.left} tasks of "
                      f"{alone:.3f} s or more could gain {worth:.2f} s; {held}", flush=True)
            return
        # N threads would want the GIL more than all the time: they would wait
        # for it.  Where else, judged on the shortest probe task (a running
        # one's time so far counts): a class's first calls pay imports and
        # set-up, in whichever task makes them, and one such task in a mean
        # sent 10 ms fits to processes.  Too short an estimate keeps the kind
        # here, where its measured times may still move it (``_judge``).
        if state.probed == 1 and not running:
            return  # one task, which may have paid the imports: the next one tells
        alone = min(state.probe_min, running or float("inf"))
        state.probing, state.fresh = False, 0.0
        here = state.left * alone
        away = self._on_processes(state, alone, state.left, alone)
        state.place = "here"  # where it goes on while workers start
        self._place(kind, state, "processes" if here - away > alone else "here",
                    f"{held}; expected here {here:.2f} s, processes {away:.2f} s "
                    f"for {state.left} tasks")

    def _on_processes(self, state, alone, r, now, busy=1.0):
        """Expected seconds for ``r`` tasks on processes, at ``now`` seconds a task
        where the kind is, on ``busy`` cores, until workers are ready."""
        if self.processes_broken is not None:
            return float("inf")
        # This thread pickles and writes every task: a bound on the rate.  A
        # task's pickling is measured; unpickling and the socket's two copies
        # cost as much again, and its result as many bytes do.
        send = (2 * (state.pickling or 0.0)
                + state.bytes / max(state.bytes_n, 1) * seconds_per_byte())
        late = self.latency()
        per_task = max((alone + send) / self.workers, send / 2)
        # The workers' start takes a core: the place the kind is in slows by
        # the share of its cores that core is, if it leaves no other idle.
        busy = min(max(busy, 1.0), self.workers)
        slowed = max(busy + 1 - self.workers, 0.0) / busy
        return late + max(r - late / max(now, 1e-9) * (1 - slowed), 0) * per_task

    def _judge(self, kind, state, running):
        if state.left <= 0 or state.pinned or state.probing:
            return
        n = self.workers
        # A sample where it is now, before judging (again).
        fresh = state.fresh + sum(w for w, _ in running)
        if fresh < self.sample * (1 if state.place == "here" else n):
            return
        if state.place == "processes":
            return  # where no GIL is shared: nowhere better to go
        if state.place == "here" and state.here_n < 2:
            return  # a spread needs two tasks
        if state.n:
            w, c = state.wall / state.n, state.cpu / state.n
            # What moving gains rests on w - c (see the module doc).
            spread = _spread(w - c, state.lost2, state.n)
        elif running:  # running tasks only: what they had so far bounds c from below
            wall, cpu = sum(w for w, _ in running), sum(c for _, c in running)
            c = max(c for _, c in running)
            w, spread = c * wall / max(cpu, 1e-9), 0.0
        else:
            return  # nothing measured on threads
        used = n * c / max(w, 1e-9)  # P: the cores N threads of this kind use together
        alone_spread = 0.0
        if state.here_n:
            alone = state.here_wall / state.here_n
            alone_spread = _spread(alone, state.here_wall2, state.here_n)
        else:
            alone = c + (w - c) * (1.0 - min(used, 1.0))
        per_task = {"here": alone}  # seconds per task, each place
        if not 1 / SERIALIZED <= used < SERIALIZED or n == 1:  # not one at a time
            per_task["threads"] = w / n
        r = state.left
        times = {p: t * r for p, t in per_task.items()}
        times["processes"] = self._on_processes(state, alone, r,
                                                per_task.get(state.place, w / n),
                                                used if state.place == "threads" else 1.0)
        if state.place == "here":
            times.pop("threads", None)  # it left them for contention: never back
        best = min(times, key=times.get)
        if best == state.place or (not state.n and best != "processes"):
            return  # a lower bound of c may decide a move, never a stay
        if state.place in times:
            gain = times[state.place] - times[best]
            # Noise, not a gain: within twice the spread, or under a task's
            # time per worker where it runs (the module doc says why).
            if state.place == "here":
                task, noise = alone, 2 * alone_spread * r
            else:
                task, noise = w / n, 2 * spread * r / n
            if gain <= max(task, noise):
                return
        self._place(kind, state, best, "expected " + ", ".join(
            f"{p} {t:.2f} s" for p, t in times.items()) + f" for {r} tasks")

    def _place(self, kind, state, place, why):
        state.came_from, state.place = state.place, place
        state.fresh = 0.0
        self._changed = True
        if place == "threads":
            self.leaves_threads.discard(kind)
        else:
            self.leaves_threads.add(kind)
        if self.verbose >= 1:
            print(f"[dklearn] {kind!r} -> {place}: {why}", flush=True)
