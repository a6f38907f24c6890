"""The batch runner every per-image command shares.

A command builds one :class:`Job` per image (its input and output files) and a
picklable task (a callable taking a job). :func:`run_batch` then applies the
overwrite/resume policy, runs the jobs on an executor, shows progress, keeps
going when one image fails, and writes ``run_metadata.json`` into every output
directory.

Executors are pluggable: anything with ``run(task, jobs) -> iterator of
JobResult`` works, so a distributed executor (dask, SLURM arrays) can be added
without touching the commands.

What the runner guarantees, whoever the executor:

- nothing is computed before the outputs are known to be writable (directories
  creatable and writable, file names the file system accepts);
- existing outputs are refused unless ``--overwrite``; ``--resume`` skips finished,
  readable outputs and refuses when they were made with other settings;
- a failed image leaves none of its outputs behind;
- ``run_metadata.json`` is rewritten as images finish, so an interrupted run keeps
  its record; per-image figures of skipped images are carried over from it, and
  per-run tables (:class:`RunTable`) are assembled from all of them.

\b
jobs.py       Job, JobResult, BatchSummary; jobs_for / named_files build one job per image
executors.py  LocalExecutor (in-process or a process pool), ExternalToolExecutor
dask.py       DaskExecutor: the jobs on a dask.distributed cluster (--scheduler, --cluster)
policy.py     overwrite/resume, same settings on resume, writability, stale temp files
metadata.py   run_metadata.json, written as images finish
batch.py      run_batch and the per-run tables
"""

from steinbock_like.runner.batch import run_batch, write_run_table
from steinbock_like.runner.executors import (
    ExternalToolExecutor,
    LocalExecutor,
    execute_job,
    threads_per_worker,
)
from steinbock_like.runner.jobs import (
    BatchSummary,
    Executor,
    Job,
    JobResult,
    Task,
    jobs_for,
    named_files,
)
from steinbock_like.runner.metadata import package_versions, read_previous_metadata
from steinbock_like.runner.policy import (
    RunTable,
    check_jobs,
    check_outputs,
    check_same_settings,
    check_single_output,
    check_writable,
    remove_stale_temp_files,
)

__all__ = [
    "BatchSummary",
    "Executor",
    "ExternalToolExecutor",
    "Job",
    "JobResult",
    "LocalExecutor",
    "RunTable",
    "Task",
    "check_jobs",
    "check_outputs",
    "check_same_settings",
    "check_single_output",
    "check_writable",
    "execute_job",
    "jobs_for",
    "named_files",
    "package_versions",
    "read_previous_metadata",
    "remove_stale_temp_files",
    "run_batch",
    "threads_per_worker",
    "write_run_table",
]
