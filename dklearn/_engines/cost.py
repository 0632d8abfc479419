"""Where each kind of task runs: one cost model, fed by what has been measured.

A kind is every task that fits (or fits and scores) one class, ``"fit PCA"``,
``"score SVC"``, as the planner names it; glue tasks have none and run in the
calling thread.  With N workers, r tasks of the kind not started and S a
sample (``SAMPLE_SWITCHES`` GIL switch intervals, 0.1 s by default), each
place is expected to take, for the rest of the kind:

    here        r * a                  the calling thread, one at a time
    threads     r * w / N
    processes   L + (r - L / t) * max((a + m) / N, m / 2)

a is a task's time alone, w its wall time on the threads, t its time per
task where it runs now; L is the time until worker processes are ready (0
when warm, else their last measured start: forks of one interpreter that
imports scikit-learn once), during which the kind goes on where it is, on
at most N - 1 workers so that the start has a core of its own (a gradient
boosting kind on both threads of 2 cores kept its workers starting for 3 s
instead of 1.3 s); the pace it loses meanwhile, a share max(P + 1 - N, 0) / P
on the P cores its threads used, is in the estimate;
A task that alone keeps c > 1 cores busy with threads of its own (an OpenMP
team its library sizes itself, as LightGBM does, whatever the caps) costs
c * a of the workers' time, a * c / N each: c is measured with a, as this
process's CPU time over the task's wall time (two such fits in two
processes otherwise fight for the cores, spinning: 40x slower here).
m is what sending a task and its result costs this thread (twice its
measured pickling time, plus its result's bytes at the measured seconds a
byte), which also bounds the rate at which this one thread can feed them.

A kind first runs one task at a time on a thread (the probe), measuring a
(the smaller of two tasks, the median of more: one of the first calls may
pay the class's imports; tasks start in random order, so they are a sample
of the kind, not a grid's cheapest or dearest corner), and whether N
threads could run at once: while the probe's task runs alone on the
threads, the loop wakes once a switch interval, and a wake-up that is
``LATE_SWITCHES`` of an interval late waited for the GIL.  The share g of
late looks is the share of its time a task holds the GIL; N threads want
it N * g of the time.  The probe decides as soon as it can:

- even N workers could gain r * a * (1 - 1/N) < S: here (a search too
  small for parallelism never pays for it);
- N * g < 1, settled (g two standard errors from 1/N) or after a sample of
  looks: threads;
- otherwise (and for tasks shorter than a switch interval, which no look
  can see and whose hand-over to a thread costs about what they take):
  here or processes, whichever is expected to take less.

Then the kind is judged again after each sample where it runs (from running
tasks too, which bound a and w from below and so may decide a move, never a
stay), on these estimates, with a for threads the CPU time a task had there
(the rest of w is time waiting, for the GIL mostly, which processes would
not).  It moves only away from contention, never back (threads -> here or
processes, here -> processes), and only on a gain larger than a task's time
per worker where it is (tasks start whole) and than twice the standard
error the gain rests on: a move that does not pay cannot be undone.

Every term is a time measured on this machine in this process; the only
constants are how long a sample is and what counts as a late wake-up, both
in units of the interpreter's switch interval, so the rule reads the same on
2 cores and on 64.  What a kind learned is kept for the next search of this
process, which starts it where it ended, without a probe (a notebook's next
search, the inner searches of a nested cross-validation).

Hard constraints first: a kind whose tasks cannot be pickled stays in this
process; once a task killed a worker process, everything runs in processes.
"""

import random
import statistics
import sys
import time

# A kind is judged over at least this many GIL switch intervals (0.1 s) per worker.
SAMPLE_SWITCHES = 20
# A look that wakes this many switch intervals late waited for the GIL (a woken
# thread runs within microseconds unless a holder keeps it, up to an interval).
LATE_SWITCHES = 0.1
# Seconds worker processes take to start, before one start has been measured here.
START_SECONDS_PRIOR = 1.0

_RANDOM = random.Random()  # its own: the caller's random module's state is theirs
_STARTS = []  # worker starts measured in this process
_SECONDS_PER_BYTE = []
_KNOWN = {}  # kind -> where it ended in an earlier search of this process


def seconds_per_byte():
    """What a byte of a result costs to send: pickled, unpickled, twice (the socket's copies)."""
    if not _SECONDS_PER_BYTE:
        import pickle

        import numpy as np

        data = np.ones(1 << 19)
        start = time.perf_counter()
        pickle.loads(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        _SECONDS_PER_BYTE.append(2 * (time.perf_counter() - start) / data.nbytes)
    return _SECONDS_PER_BYTE[0]


class _Stat:
    """A running mean with its standard error."""

    __slots__ = ("n", "total", "squares")

    def __init__(self):
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def add(self, value):
        self.n += 1
        self.total += value
        self.squares += value * value

    @property
    def mean(self):
        return self.total / self.n

    @property
    def error(self):
        mean = self.mean
        return (max(self.squares / self.n - mean * mean, 0.0) / self.n) ** 0.5


class _Kind:
    __slots__ = ("left", "out", "place", "came_from", "pinned", "probing", "probe", "looks",
                 "held", "probe_until", "wall", "cpu", "lost", "here", "fresh", "pickling",
                 "nbytes", "cores")

    def __init__(self, left, known):
        self.left, self.out = left, 0  # tasks not started, and handed out
        self.place, self.came_from, self.pinned = known or "threads", None, None
        self.probing = known is None
        self.probe = []  # the probe's tasks' times
        self.looks = self.held = 0
        self.probe_until = float("inf")  # when a probe without looks decides
        self.wall, self.cpu, self.lost = _Stat(), _Stat(), _Stat()  # on threads; lost: w - c
        self.here = _Stat()  # seconds a task in the calling thread
        self.fresh = 0.0  # seconds measured where it is now
        self.pickling, self.nbytes = None, _Stat()
        self.cores = 1.0  # the cores a task keeps busy by itself, alone (its own threads)


class Router:
    """The loop's answer to "where does a task of this kind go now?" (see module doc)."""

    def __init__(self, workers, fixed, counts, verbose=0):
        self.workers, self.fixed, self.verbose = workers, fixed, verbose
        # A fixed place measures nothing and decides nothing.
        self.kinds = {} if fixed is not None else {
            k: _Kind(n, _KNOWN.get(k)) for k, n in counts.items() if k is not None}
        self.tick_seconds = sys.getswitchinterval()
        self.sample = SAMPLE_SWITCHES * self.tick_seconds
        self.next_judging = time.perf_counter() + self.sample
        self.step = self.sample
        self.warm = 0
        self.zygote = False  # a ready interpreter forks workers in milliseconds
        self.no_processes = None  # why worker processes cannot be used, if they cannot
        self.crashed_once = False
        self.threads = None  # the loop's threads, once started
        self.leaves_threads = set()  # kinds whose tasks go elsewhere now
        self._moved = False

    # -- what the loop asks --------------------------------------------------------

    def places(self, kind):
        """Where a task of ``kind`` may go now, best first; () to wait."""
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
            return () if state.out else ("threads",)
        if state.place == "processes" and self.warm == 0 and state.came_from:
            # It goes on where it was while workers start, leaving them a core.
            if state.out >= max(self.workers - 1, 1):
                return ()
            places = ("processes", state.came_from)
        else:
            places = (state.place,)
        if "here" in places and self.threads is not None and kind in self.threads.running_kinds():
            # It left the threads for the GIL: not beside their last tasks.
            places = tuple(p for p in places if p != "here")
        return places

    def moved(self):
        """Whether a kind changed places since the last call."""
        moved, self._moved = self._moved, False
        return moved

    def wants_processes(self):
        """Whether a kind is placed in worker processes (their start can begin)."""
        return self.no_processes is None and any(
            s.place == "processes" for s in self.kinds.values())

    def tick(self):
        """Seconds to the loop's next look at the GIL, or None: while probes run alone.

        At random times (looks one switch interval after each probe task
        starts would all see the same moment of every task), in whole
        milliseconds, the unit of poll(2): a wait it rounds up would look late.
        """
        if (self.threads is not None and any(s.probing and s.out for s in self.kinds.values())
                and self._probes_alone() is not None):
            return max(round(self.tick_seconds * _RANDOM.uniform(0.5, 1.5), 3), 1e-3)
        return None

    def next_look(self):
        """When the loop should wake to let the rule judge running tasks."""
        if self.fixed is not None or self.crashed_once or self.threads is None:
            return float("inf")
        return min([self.next_judging, *(s.probe_until for s in self.kinds.values())])

    def measures(self, kind):
        """Whether the rule wants the sizes of this kind's results."""
        return self.fixed is None and kind in self.kinds

    def knows_sending(self, kind):
        return self.kinds[kind].pickling is not None

    def remember(self):
        """Keep where each kind ended for the next search of this process."""
        if self.fixed is None and not self.crashed_once:
            for kind, state in self.kinds.items():
                if not state.pinned and not state.probing:
                    _KNOWN[kind] = state.place

    # -- what the loop tells -------------------------------------------------------

    def started(self, kind):
        state = self.kinds.get(kind)
        if state is not None:
            state.left -= 1
            state.out += 1
            if state.probing:
                state.probe_until = time.perf_counter() + self.sample

    def ended(self, kind):
        """A task of ``kind`` handed out has ended, whatever the outcome."""
        state = self.kinds.get(kind)
        if state is not None:
            state.out -= 1

    def sending(self, kind, seconds):
        """This thread took ``seconds`` to pickle a task of ``kind`` and its inputs."""
        self.kinds[kind].pickling = seconds

    def finished(self, kind, place, wall, cpu, nbytes=None, cores=None):
        """A task of ``kind`` ended well in ``place``, returning ``nbytes`` of data, having
        kept ``cores`` busy (this process's CPU time over its wall time), if it ran
        alone on the threads."""
        state = self.kinds.get(kind)
        if state is None or self.fixed is not None:
            return
        if nbytes is not None:
            state.nbytes.add(nbytes)
        if cores is not None:
            state.cores = max(cores, 1.0)
        if state.probing:
            state.probe.append(wall)
            state.probe_until = float("inf")
            self._probe(kind, state, 0.0)
            return
        if place == "threads":
            state.wall.add(wall)
            state.cpu.add(cpu)
            state.lost.add(wall - cpu)
        elif place == "here":
            state.here.add(wall)
        if place == state.place:
            state.fresh += wall
        self._judge(kind, state, ())

    def looked(self, late, running):
        """The loop woke ``late`` seconds after the tick it asked for, while tasks ran on
        the threads: ``running`` is (kind, seconds it had run) of each."""
        if not all(self.kinds.get(kind) and self.kinds[kind].probing for kind, _ in running):
            return  # whose GIL would it have seen?
        for kind, wall in running:
            state = self.kinds[kind]
            # A class's first task also pays its imports, holding the GIL: its
            # first sample says nothing of the others.
            if state.probe or wall >= self.sample:
                state.looks += 1
                state.held += late > LATE_SWITCHES * self.tick_seconds
                self._probe(kind, state, wall)

    def look(self, now):
        """Decide probes without looks, and judge kinds from their running tasks too."""
        if now < self.next_look():
            return
        running = self.threads.running()
        for kind, state in self.kinds.items():
            if state.probing and now >= state.probe_until:
                state.probe_until = now + self.sample
                for k, wall, _ in running:
                    if k == kind:
                        self._probe(kind, state, wall)
        if now >= self.next_judging:
            self.step *= 2  # each look takes the GIL from the threads: a few, spaced out
            self.next_judging = now + self.step
            for kind, state in self.kinds.items():
                self._judge(kind, state, [(w, c) for k, w, c in running if k == kind])

    def warm_workers(self, ready):
        if ready and not self.warm and self.leaves_threads:
            self._moved = True  # tasks handed ahead to threads go to the workers instead
        self.warm = ready

    def zygote_started(self, seconds):
        self.zygote = True
        if seconds is not None:
            _STARTS.append(seconds)

    def crashed(self):
        self.crashed_once = True
        self.leaves_threads = set(self.kinds)
        self._moved = True

    def unavailable(self, kind, place, error):
        """Tasks of ``kind`` cannot run in ``place``: raises if the place is fixed."""
        if self.fixed == place or (self.crashed_once and place == "processes"):
            raise error
        state = self.kinds.get(kind)
        if state is not None:
            state.pinned = "threads"
            self._place(kind, state, "threads", f"stays in this process: {error}")

    def broken(self, error):
        """Worker processes cannot start at all: raises unless threads can do the work."""
        if self.fixed == "processes" or self.crashed_once:
            raise error
        self.no_processes = error
        for kind, state in self.kinds.items():
            if state.place == "processes":
                self._place(kind, state, "threads", f"no worker process: {error}")

    # -- the rule ------------------------------------------------------------------

    def _probes_alone(self):
        """The kinds running on threads, if every one of them is probing."""
        kinds = self.threads.running_kinds()
        if all(k in self.kinds and self.kinds[k].probing for k in kinds):
            return kinds
        return None

    def _probe(self, kind, state, running):
        """Decide a probing kind, if what it measured can (``running``: seconds a task
        running now has run)."""
        n, r, probed = self.workers, state.left, len(state.probe)
        # A running task's time so far bounds its own time from below only.  Some
        # call among the first pays a class's imports and set-up: the smaller of
        # two tasks, the median of more (tasks start in random order, so they are
        # a sample of the kind: see ``local``).
        if probed:
            a = min(state.probe) if probed <= 2 else statistics.median_low(state.probe)
        else:
            a = running
        if r * a * (1 - 1 / n) <= self.sample:
            if probed >= 2 or r == 0:  # the first call may have paid imports
                self._decided(kind, state, "here", f"{r} tasks of {a:.4f} s could gain at "
                              f"most {r * a * (1 - 1 / n):.2f} s from {n} workers")
            return
        share = (state.held + 1) / (state.looks + 2)  # one more look each way: never certain
        error = (share * (1 - share) / (state.looks + 2)) ** 0.5
        # Seconds probed, past the first task's first sample (see ``looked``).
        seconds = (sum(state.probe[1:]) + running if probed
                   else running - self.sample)
        short = probed and a < self.tick_seconds
        if not short and abs(share - 1 / n) <= 2 * error and seconds < self.sample:
            return  # not settled yet
        g = state.held / state.looks if state.looks else 0.0
        held = f"the GIL was held at {state.held} of {state.looks} looks"
        if not short and g * n < 1:
            self._decided(kind, state, "threads", held)
            return
        if probed < 2 and not running:
            return  # its one task may have paid the imports: the next one tells
        here, away = r * a, self._on_processes(state, a, r, a, 1.0)
        why = "tasks shorter than a switch interval" if short else held
        self._decided(kind, state, "processes" if here - away > a else "here",
                      f"{why}; expected here {here:.2f} s, processes {away:.2f} s for {r} tasks")

    def _decided(self, kind, state, place, why):
        state.probing, state.probe_until = False, float("inf")
        cores = self.threads.lone_cores(kind) if self.threads is not None else None
        if cores is not None:  # its probe task, still running alone
            state.cores = max(cores, state.cores)
        if place == "threads":
            state.fresh = 0.0
            if self.verbose >= 1:
                _say(f"{kind!r} fans out to {self.workers} threads: {why}")
        else:
            state.place = "here"  # where it goes on while workers start
            self._place(kind, state, place, why)

    def _on_processes(self, state, a, r, now, busy):
        """Expected seconds of ``r`` tasks of ``a`` s on processes, the kind going on at
        ``now`` s a task on ``busy`` cores until workers are ready."""
        if self.no_processes is not None:
            return float("inf")
        a *= state.cores  # a task that keeps c cores busy alone takes c of the N workers'
        send = 2 * (state.pickling or 0.0)
        if state.nbytes.n:
            send += state.nbytes.mean * seconds_per_byte()
        late = 0.0
        if not self.zygote and self.warm < self.workers:
            late = _STARTS[-1] if _STARTS else START_SECONDS_PRIOR
        # The workers' imports take a core from the place the kind is in.
        busy = min(max(busy, 1.0), self.workers)
        slowed = max(busy + 1 - self.workers, 0.0) / busy
        meanwhile = late / max(now, 1e-9) * (1 - slowed)
        return late + max(r - meanwhile, 0.0) * max((a + send) / self.workers, send / 2)

    def _judge(self, kind, state, running):
        """Move a kind that runs where it is expected to take longer (see module doc)."""
        n, r = self.workers, state.left
        if r <= 0 or state.pinned or state.probing or state.place == "processes":
            return
        if state.fresh + sum(w for w, _ in running) < self.sample * (
                n if state.place == "threads" else 1):
            return  # not a sample where it is yet
        if state.place == "here":
            if state.here.n < 2:
                return
            a = state.here.mean
            times = {"here": r * a}
            now, busy, task, noise = a, 1.0, a, 2 * state.here.error * r
        else:
            if state.wall.n:
                w, c = state.wall.mean, state.cpu.mean
                noise = 2 * state.lost.error * r / n
            elif running:  # running tasks only: bounds from below, may move it, not keep it
                c = max(c for _, c in running)
                w = c * sum(w for w, _ in running) / max(sum(c for _, c in running), 1e-9)
                noise = 0.0
            else:
                return
            busy = n * c / max(w, 1e-9)  # the cores the threads used together
            # Time off a core is waiting for the GIL while the others are busy,
            # and the task's own waiting (sleep, I/O) while they are not.
            a = c + (w - c) * (1 - min(busy, 1.0))
            times = {"threads": r * w / n, "here": r * a}
            now = task = w / n
        times["processes"] = self._on_processes(state, a, r, now, busy)
        best = min(times, key=times.get)
        if best == state.place or (not state.wall.n and state.place == "threads"
                                   and best != "processes"):
            return
        if times[state.place] - times[best] <= max(task, noise, self.sample):
            return  # within noise, under the tasks' granularity, or not worth a sample
        self._place(kind, state, best, "expected " + ", ".join(
            f"{p} {t:.2f} s" for p, t in times.items()) + f" for {r} tasks")

    def _place(self, kind, state, place, why):
        state.came_from, state.place = state.place, place
        state.fresh = 0.0
        self._moved = True
        if place == "threads":
            self.leaves_threads.discard(kind)
        else:
            self.leaves_threads.add(kind)
        if self.verbose >= 1:
            _say(f"{kind!r} -> {place}: {why}")


def _say(decision):
    # On stderr: what a search prints on stdout stays scikit-learn's, line for line.
    try:
        print(f"[dklearn] {decision}", file=sys.stderr, flush=True)
    except (AttributeError, OSError, ValueError):  # no stderr (None, closed): nowhere to say it
        pass
