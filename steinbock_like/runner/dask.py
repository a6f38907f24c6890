"""DaskExecutor: the runner's jobs on a dask.distributed cluster.

The client (the command) submits one dask task per job, no more at a time than
the cluster has threads (so that no job queues behind a busy worker while another
worker idles), and more as workers join; a cluster that scales with its queue
(one started through dask-jobqueue, or an existing one given as adaptive) gets
them all at once, since only a queue makes it grow; workers run the job
with :func:`~steinbock_like.runner.executors.execute_job`, so results and
failures come back per image and outputs are written by the workers themselves
(atomically, to the shared data directory). The command's task is sent with
every job but set up only once per worker process: the first job a worker runs
keeps its copy and calls ``setup()``; later jobs of the same run reuse it.

A worker killed in the middle of a job (out of memory, kill -9, a pre-empted
node) is dask's business: the scheduler reruns the job on another worker (up to
``distributed.scheduler.allowed-failures`` times, then the image fails). Since
outputs are renamed into place only when complete, the rerun writes the same
files an undisturbed run would. A lost scheduler stops the command with one
line; ``--resume`` then completes the batch.

Clusters: an existing one (``scheduler`` = its address), a local one started
for the command (``cluster="local:N"``), or one started through dask-jobqueue
(``cluster="slurm"`` etc. with a configuration file, see ``docs/cluster.md``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.runner.executors import execute_job, remove_outputs
from steinbock_like.runner.jobs import Job, JobResult

logger = logging.getLogger("steinbock_like.runner")

#: Environment variable naming a scheduler address (like ``--scheduler``).
SCHEDULER_ENV = "STEINBOCK_LIKE_SCHEDULER"

#: dask-jobqueue cluster classes by the name ``--cluster`` takes.
JOBQUEUE_CLUSTERS = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
    "oar": "OARCluster",
    "moab": "MoabCluster",
}

# How long to wait for a scheduler to answer, and for a started cluster's first worker.
CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 600
# How often to look whether the cluster has grown while no job finishes (seconds).
GROWTH_CHECK_S = 1.0


class DaskExecutor:
    """Runs jobs on a dask.distributed cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``).
    cluster : str, optional
        Start a cluster for this command instead: ``"local:N"`` (N worker
        processes on this machine) or a dask-jobqueue kind (``"slurm"``, ``"pbs"``,
        ...) configured by ``cluster_config``.
    cluster_config : dict, optional
        Keyword arguments of the dask-jobqueue cluster class, plus ``jobs`` (how
        many batch jobs to start, default 1) or ``maximum_jobs`` (adaptive).
    adaptive : bool
        The cluster at ``scheduler`` scales with its queue (``adapt()``): send it
        every job at once (otherwise it would never see a queue to grow on).
    """

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        cluster: str | None = None,
        cluster_config: dict[str, Any] | None = None,
        adaptive: bool = False,
    ):
        if (scheduler is None) == (cluster is None):
            raise SteinbockLikeError("give either a dask scheduler address or a cluster to start")
        self.scheduler = scheduler
        self.cluster = cluster
        self.cluster_config = dict(cluster_config or {})
        # Batch-system clusters (slurm, ...) start their workers one by one, maybe
        # minutes apart, and adaptive ones grow with the jobs waiting: they get every
        # job at once; an existing cluster or a local one has its workers already.
        self.all_at_once = adaptive or (
            cluster is not None and not cluster.strip().lower().startswith("local")
        )
        if cluster is not None:
            _parse_cluster(cluster)  # fail early on a bad name

    def describe(self) -> str:
        return (
            f"dask scheduler {self.scheduler}" if self.scheduler else f"dask cluster {self.cluster}"
        )

    def run(self, task: Callable, jobs: Sequence[Job]) -> Iterator[JobResult]:
        if not jobs:
            return
        from collections import deque

        from distributed import as_completed

        with self._client() as client:
            token = uuid.uuid4().hex
            # The workers may run in another directory: hand them absolute paths.
            waiting = deque(_absolute(job) for job in jobs)
            futures = {}
            completed = as_completed(loop=client.loop)

            def submit_more() -> None:
                # Only as many jobs as the cluster has threads: a job sent to a busy
                # worker waits there while another worker may run out of work (dask
                # gives a one-thread worker two tasks), costing up to a job at the end.
                if not waiting:
                    return
                try:
                    threads = len(waiting) if self.all_at_once else _cluster_threads(client)
                except (OSError, TimeoutError) as error:  # CommClosedError is an OSError
                    raise _lost_connection(self.describe(), error) from error
                slots = max(1, threads)
                while waiting and len(futures) < slots:
                    job = waiting.popleft()
                    future = client.submit(
                        run_on_worker,
                        token,
                        task,
                        job,
                        key=f"{_key_safe(job.name)}-{token}",
                        pure=False,
                        retries=0,
                    )
                    futures[future] = job
                    completed.add(future)

            try:
                submit_more()
                while futures:
                    # as_completed's iterator, plus a look at the cluster's size every
                    # GROWTH_CHECK_S: workers that joined get jobs without waiting for
                    # one to finish (the queue is filled before the notification)
                    with completed.thread_condition:
                        if not completed.has_ready():
                            completed.thread_condition.wait(timeout=GROWTH_CHECK_S)
                    if not completed.has_ready():
                        submit_more()
                        continue
                    for future in completed.next_batch(block=False):
                        job = futures.pop(future)
                        result = _collect(future, job, self.describe())
                        submit_more()  # before reporting: keep the workers busy
                        if result.status == "failed":
                            # also what a killed attempt may have left before the failure
                            remove_outputs(job)
                        yield result
            finally:
                for future in futures:
                    future.cancel()

    @contextlib.contextmanager
    def _client(self):
        from distributed import Client

        cluster = None
        # dask logs a lost connection with tracebacks; the command says it in one line
        levels = {} if logger.isEnabledFor(logging.DEBUG) else _silence("distributed")
        try:
            if self.scheduler is not None:
                try:
                    client = Client(self.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
                except (OSError, TimeoutError) as error:
                    raise SteinbockLikeError(
                        f"cannot reach the dask scheduler at {self.scheduler} ({error})"
                    ) from error
            else:
                cluster = _start_cluster(self.cluster, self.cluster_config)
                client = Client(cluster, set_as_default=False)
            try:
                _wait_for_workers(client)
                logger.info("running on %s (dashboard %s)", self.describe(), client.dashboard_link)
                yield client
            finally:
                with contextlib.suppress(Exception):
                    client.close(timeout=10)
        finally:
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _silence(prefix: str) -> dict[str, int]:
    """Set the loggers ``prefix`` and ``prefix.*`` to CRITICAL; return their levels."""
    names = [prefix] + [
        name for name in logging.root.manager.loggerDict if name.startswith(prefix + ".")
    ]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return levels


def _cluster_threads(client) -> int:
    """Threads of all the cluster's workers now (one call to the scheduler)."""
    # not scheduler_info(): it describes the first five workers only
    return sum(int(count) for count in client.nthreads().values())


def _collect(future, job: Job, where: str) -> JobResult:
    """The job's result, or a failed result / a one-line error for what dask reports."""
    from distributed import CancelledError
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return JobResult(
            job.name,
            "failed",
            error="the dask workers running this image died repeatedly (out of memory?)",
        )
    except (CancelledError, OSError, TimeoutError) as error:
        raise _lost_connection(where, error) from error
    except Exception as error:  # the job function itself never raises: dask failed
        from steinbock_like.errors import describe_error

        return JobResult(job.name, "failed", error=f"dask: {describe_error(error)}")


def _lost_connection(where: str, error: BaseException) -> SteinbockLikeError:
    return SteinbockLikeError(
        f"lost the connection to the {where} ({type(error).__name__}); "
        "rerun with --resume to finish the batch"
    )


def _absolute(job: Job) -> Job:
    return replace(
        job,
        inputs={k: Path(p).absolute() for k, p in job.inputs.items()},
        outputs={k: Path(p).absolute() for k, p in job.outputs.items()},
    )


def _key_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]


def _wait_for_workers(client, timeout: float = WORKER_WAIT_S) -> None:
    """Wait until the cluster has a worker (a batch system may take a while)."""
    start = time.monotonic()
    while True:
        try:
            workers = client.scheduler_info(n_workers=-1).get("workers", {})
        except TypeError:  # older distributed
            workers = client.scheduler_info().get("workers", {})
        if workers:
            return
        if time.monotonic() - start > timeout:
            raise SteinbockLikeError(f"no dask worker joined within {timeout:.0f} s")
        time.sleep(0.5)


def _parse_cluster(spec: str) -> tuple[str, int | None]:
    kind, _, count = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "local":
        try:
            number = int(count) if count else 1
        except ValueError:
            number = 0
        if number < 1:
            raise SteinbockLikeError(f"--cluster local:N needs a positive N, got {spec!r}")
        return kind, number
    if kind in JOBQUEUE_CLUSTERS and not count:
        return kind, None
    raise SteinbockLikeError(
        f"--cluster {spec!r}: expected local:N or one of {', '.join(JOBQUEUE_CLUSTERS)}"
    )


def _start_cluster(spec: str, config: dict[str, Any]):
    kind, number = _parse_cluster(spec)
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=number,
            threads_per_worker=1,
            processes=True,
            dashboard_address=config.get("dashboard_address", ":0"),
        )
    try:
        import dask_jobqueue
    except ImportError as error:
        raise SteinbockLikeError(
            f"--cluster {kind} needs dask-jobqueue: pip install 'steinbock-like[cluster]'"
        ) from error
    options = dict(config)
    jobs = int(options.pop("jobs", 1))
    maximum = options.pop("maximum_jobs", None)
    cluster = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[kind])(**options)
    if maximum:
        cluster.adapt(minimum_jobs=0, maximum_jobs=int(maximum))
    else:
        cluster.scale(jobs=jobs)
    return cluster


# -- on the workers ------------------------------------------------------------------

_worker_tasks: dict[str, Callable] = {}
_worker_lock = threading.Lock()
_KEEP_TASKS = 4  # tasks of recent runs kept per worker (models stay loaded between runs)


def run_on_worker(token: str, task: Callable, job: Job) -> JobResult:
    """Run one job on a dask worker with the worker's copy of the run's task.

    The first job of run ``token`` on this worker process keeps its ``task`` and
    calls its ``setup()``; later jobs of the run use that copy.
    """
    with _worker_lock:
        kept = _worker_tasks.get(token)
        if kept is None:
            setup = getattr(task, "setup", None)
            if callable(setup):
                try:
                    setup()
                except Exception as error:
                    return _setup_failed(job, error)
            while len(_worker_tasks) >= _KEEP_TASKS:
                _worker_tasks.pop(next(iter(_worker_tasks)))
            _worker_tasks[token] = kept = task
    return execute_job(kept, job)


def worker_task(token: str) -> Callable | None:
    """The task of run ``token`` kept by this worker process, if any."""
    return _worker_tasks.get(token)


def _setup_failed(job: Job, error: Exception) -> JobResult:
    import traceback

    from steinbock_like.errors import describe_error

    message = str(error) if isinstance(error, SteinbockLikeError) else describe_error(error)
    return JobResult(
        job.name,
        "failed",
        error=f"worker setup failed: {message}",
        traceback=traceback.format_exc(),
    )


def executor_from_options(
    scheduler: str | None,
    cluster: str | None,
    cluster_config: dict[str, Any] | None,
    adaptive: bool = False,
) -> DaskExecutor | None:
    """The dask executor the options ask for, or None for the local one."""
    if adaptive and not scheduler:
        raise SteinbockLikeError(
            "--adaptive is for a running cluster given by --scheduler "
            "(clusters started by --cluster slurm etc. get every image at once anyway)"
        )
    if cluster is not None:
        if scheduler is not None:
            raise SteinbockLikeError("give --scheduler or --cluster, not both")
        return DaskExecutor(cluster=cluster, cluster_config=cluster_config)
    if scheduler:
        return DaskExecutor(scheduler, adaptive=adaptive)
    return None
