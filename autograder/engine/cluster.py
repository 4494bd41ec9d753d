"""The Dask cluster that grades: the settings of a batch, the client of its cluster, and the workers' versions.

``grading`` (the workbook's notebooks) and ``lecture`` (the lecture's
format) both grade on it, one task per student: ``cluster_client`` connects
to the cluster behind ``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``, or
starts an embedded ``LocalCluster`` of single-threaded worker processes, and
``check_worker_versions`` refuses workers that would grade differently.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass

from .errors import GradingError
from .versions import version_conflicts, versions

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_SECONDS = 20.0  # to reach a --scheduler before giving up


@dataclass(frozen=True)
class ClusterSettings:
    """Where a batch runs; each name is its command-line option's."""

    jobs: int = os.cpu_count() or 1  # --jobs: worker processes of the embedded cluster
    scheduler: str | None = None  # --scheduler: a Dask scheduler's address; None: DASK_SCHEDULER_ADDRESS or embedded
    tries: int = 3  # a student whose grading kills the worker this many times is recorded as failed


@contextlib.contextmanager
def cluster_client(settings: ClusterSettings, progress=print):
    """A Dask client of the cluster to grade on: ``settings.scheduler``, the environment's, or an embedded one."""
    import dask
    from distributed import Client, LocalCluster

    address = settings.scheduler or os.environ.get(SCHEDULER_VARIABLE)
    # Workers start sandboxes and a fork server: a daemonic process may not have
    # children, so the embedded cluster's workers are not daemonic.
    config = {"distributed.worker.daemon": False,
              "distributed.scheduler.allowed-failures": max(0, settings.tries - 1),
              "distributed.comm.timeouts.connect": f"{CONNECT_SECONDS:g}s",
              "distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
              "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False,
              "distributed.admin.system-monitor.gil.enabled": False}
    with dask.config.set(config), contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout=CONNECT_SECONDS, set_as_default=False))
            except (OSError, TimeoutError) as err:
                raise GradingError(f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS:g} s "
                                   f"({type(err).__name__}: {err}); nothing was written") from None
            progress(f"grading on the Dask cluster at {address} "
                     f"({len(client.scheduler_info(n_workers=-1).get('workers', {}))} workers now)")
        else:
            # The scheduler's HTTP server always runs (on loopback, a free port); it
            # serves the dashboard only when bokeh is installed.
            cluster = stack.enter_context(LocalCluster(
                n_workers=max(1, settings.jobs), threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", memory_limit=0, silence_logs=40))
            client = stack.enter_context(Client(cluster, set_as_default=False))
            progress(f"grading on an embedded Dask cluster of {settings.jobs} worker processes")
        link = _dashboard(client) if address or importlib.util.find_spec("bokeh") else None
        if link:
            progress(f"dashboard: {link}")
        yield client


def _dashboard(client) -> str | None:
    """The scheduler's dashboard, if it runs one (it needs bokeh on the scheduler)."""
    from urllib.parse import urlparse

    try:
        port = client.scheduler_info().get("services", {}).get("dashboard")
    except Exception:  # an old or unusual scheduler: no dashboard to show
        return None
    host = urlparse(client.scheduler.address).hostname if port else None
    return f"http://{host}:{port}/status" if host else None


def check_worker_versions(client, mine: dict[str, str]) -> None:
    """Refuse a cluster with a worker that grades with other code or another torch."""
    try:
        theirs = client.run(versions)
    except Exception as err:  # e.g. a worker without the package at all
        raise GradingError(f"the workers could not report their versions ({type(err).__name__}: {err}); "
                           "they need the installed package with its grading extra and the pinned torch") from None
    conflicts = [c for worker, found in sorted(theirs.items()) for c in version_conflicts(mine, found, f"worker {worker}")]
    if conflicts:
        raise GradingError("refusing to grade with workers of other versions: " + "; ".join(conflicts))
