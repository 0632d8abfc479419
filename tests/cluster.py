"""A real dask.distributed cluster for tests: `dask scheduler` and `dask worker` processes.

Everything listens on 127.0.0.1, on ports chosen free at start; the processes
are stopped (and, if need be, killed) when the context exits.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self, address, scheduler, workers):
        self.address = address
        self.scheduler = scheduler
        self.workers = workers

    def kill_worker(self, index=0):
        """SIGKILL one worker process: no goodbye to the scheduler."""
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait(timeout=30)


def _dask(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "dask", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def _stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@contextmanager
def dask_cluster(n_workers=2, nanny=False, env=None, timeout=60):
    """Yield a Cluster with ``n_workers`` single-threaded workers, then stop it."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _dask("scheduler", "--host", "127.0.0.1", "--port", str(port),
                      "--no-dashboard", env=env)
    workers = []
    try:
        for _ in range(n_workers):
            workers.append(_dask(
                "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                "--no-dashboard", "--nanny" if nanny else "--no-nanny", env=env,
            ))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(address, timeout=5, set_as_default=False) as client:
                    client.wait_for_workers(n_workers, timeout=max(deadline - time.monotonic(), 1))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield Cluster(address, scheduler, workers)
    finally:
        for proc in workers:
            _stop(proc)
        _stop(scheduler)
