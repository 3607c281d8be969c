"""`lstmkit train`'s processes: --processes N on this machine, or --coordinator, --num-processes
and --process-id to join a run across hosts (`lstmkit.nn.parallel` on `jax.distributed`).

With --processes N the command starts N - 1 copies of itself on 127.0.0.1 (a free port for the
coordination) and is process 0. A watchdog ends the run in bounded time when a process dies: the
parent stops when a child exits with an error, a child stops when its parent is gone; across
hosts JAX's heartbeat does it (`lstmkit.nn.parallel.HEARTBEAT_SECONDS`). Each says so in one
line on stderr and exits non-zero, never hangs in a collective.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import click

from lstmkit.errors import LstmkitError

PARENT_ENV = "LSTMKIT_PARENT_PID"  # set in the children --processes starts: they watch that process
POLL_SECONDS = 0.5
_children: list[subprocess.Popen] = []


def process_options(f):
    """The flags that make `train` data-parallel."""
    options = [
        click.option(
            "--processes",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="train data-parallel in this many processes on this machine; each takes --batch-size / N rows of every batch",
        ),
        click.option(
            "--coordinator",
            default=None,
            metavar="HOST:PORT",
            help="across hosts: process 0's address, where it serves the coordination (with --num-processes and --process-id)",
        ),
        click.option(
            "--num-processes", type=click.IntRange(min=1), default=None, help="across hosts: how many processes in all"
        ),
        click.option(
            "--process-id", type=click.IntRange(min=0), default=None, help="across hosts: this one's number, 0 to N - 1"
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def start_processes(processes, coordinator, num_processes, process_id, batch_size):
    """Join or start the processes of a data-parallel run; nothing for a run of one. Returns True
    when the run has several processes (each takes batch_size / processes rows of a batch)."""
    from lstmkit.nn import parallel

    joining = coordinator is not None or num_processes is not None or process_id is not None
    if processes > 1 and joining:
        raise LstmkitError(
            "--processes starts every process on this machine, --coordinator/--num-processes/--process-id join a "
            "run across hosts; give one or the other"
        )
    if processes > 1:
        if batch_size % processes:
            raise LstmkitError(
                f"--batch-size {batch_size} does not split evenly over {processes} processes; use a multiple of {processes}"
            )
        coordinator = f"127.0.0.1:{_free_port()}"
        for index in range(1, processes):
            _children.append(_start_child(coordinator, processes, index))
        threading.Thread(target=_watch_children, daemon=True).start()
        parallel.initialize(coordinator, processes, 0)
        parallel.watch_peers(lambda message: stop(message, 1))
        return True
    if joining or _launcher_detected():
        if os.environ.get(PARENT_ENV):
            threading.Thread(target=_watch_parent, args=(int(os.environ[PARENT_ENV]),), daemon=True).start()
        parallel.initialize(coordinator, num_processes, process_id)
        parallel.watch_peers(lambda message: stop(message, 1))
        return True
    return False


def _launcher_detected():
    """True under Slurm or Open MPI with more than one task, which JAX reads the rest from."""
    size = os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or "1"
    return size.isdigit() and int(size) > 1


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_arguments(argv):
    """This command's arguments without --processes (the children join instead)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return out


def _start_child(coordinator, processes, index):
    """Process `index`: this command again, joined to the coordinator; its stdout is dropped
    (process 0 reports), its stderr is this one's."""
    command = [sys.executable, "-m", "lstmkit.cli", *_child_arguments(sys.argv[1:])]
    command += ["--coordinator", coordinator, "--num-processes", str(processes), "--process-id", str(index)]
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def _watch_children():
    """Stop the run when a child exits with an error (not Ctrl-C, which this process handles too)."""
    from lstmkit.nn.parallel import FINISHED

    while not FINISHED.is_set():
        for index, child in enumerate(_children, start=1):
            status = child.poll()
            if status not in (None, 0, 130, -signal.SIGINT):
                stop(f"process {index} of {len(_children) + 1} exited with status {status}; stopping the run", 1)
        time.sleep(POLL_SECONDS)


def _watch_parent(parent_pid):
    """Stop this child when the process that started it is gone."""
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    stop("process 0 of the run is gone; stopping this process", 1)


def stop(message, status):
    """Say why in one line (if message), end the children and leave at once: a peer may never answer again."""
    for child in _children:
        with contextlib.suppress(OSError):
            child.kill()
    sys.stdout.flush()
    if message:
        print(f"\nError: {message}", file=sys.stderr, flush=True)  # on its own line, after any progress bar
    os._exit(status)


@atexit.register
def _end_children():
    """Children still running when process 0 leaves are stopped, after a grace period."""
    deadline = time.monotonic() + 30
    for child in _children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        if child.poll() is None:
            child.kill()


def run_as_one_of_several(train, config, data, out, quiet, **options):
    """`train` in one process of several: process 0 reports, the others are silent; a mistake or
    a lost peer ends this process with one line (exit status 2 or 1) and stops the children."""
    import jax

    from lstmkit.nn import parallel

    writer = parallel.is_writer()
    if not writer:  # Ctrl-C reaches every process here; process 0 alone says how to resume
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    try:
        with contextlib.redirect_stdout(sys.stdout if writer else open(os.devnull, "w")):
            train(config, data, out, quiet or not writer, **options)
        parallel.finish()
    except SystemExit as e:  # Ctrl-C, its hint printed: leave now, not in JAX's goodbye to peers that are gone
        stop(None, e.code if isinstance(e.code, int) else 1)
    except LstmkitError as e:
        stop(str(e), 2)
    except jax.errors.JaxRuntimeError as e:
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        stop(f"the run lost a process ({first.strip()[:200]}); stopping", 1)
