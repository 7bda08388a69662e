"""The daemon: job files → APScheduler, catch-up of missed runs, one daemon per database.

- Each job runs at its times in the office's time zone, one run of a job at a time
  (``max_instances=1``, ``coalesce=True``; across processes a per-job lock, so ``run-job`` by hand
  never overlaps the daemon's run of the same job).
- On start, a job whose scheduled time passed while no daemon ran (after its last run, recorded in
  the database) runs **once**, at once, if that time is within the job's grace time.
- One daemon per database: a file lock beside the SQLite file, ``pg_try_advisory_lock`` on
  PostgreSQL. A second daemon exits at once with a message. Both locks die with the process, so a
  ``kill -9`` never leaves a stale lock.
- SIGTERM/SIGINT stop the scheduler: a running poll is cut short and its run closed as interrupted
  (中断), other running jobs get ``STOP_WAIT`` seconds to finish, then the process exits anyway; every
  job's writes are transactions, so even a second signal, which exits at once, leaves nothing
  half-written.
- One log line per job run on stderr, with its outcome.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from channelwatch.daemon.actions import close_interrupted, execute
from channelwatch.daemon.jobs import Job, load_jobs, make_trigger, missed_fire
from channelwatch.daemon.locks import sqlite_path, try_lock
from channelwatch.dates import to_office
from channelwatch.errors import UserError
from channelwatch.instance.config import Instance
from channelwatch.store import jobstate, open_store

log = logging.getLogger(__name__)

STOP_WAIT = 7.0  # seconds the running jobs get after SIGTERM; the daemon is gone within 10 s


def _prepare_inboxes(instance: Instance, jobs: list[Job]) -> None:
    """``inbox/<channel id>/`` for every channel of every inbox job, so staff see where to drop exports."""
    from channelwatch.ingest.inbox import prepare_inbox

    channel_ids = [c.id for c in instance.config.channels]
    for job in jobs:
        if job.action == "import-inbox":
            for problem in prepare_inbox(instance.path(job.spec.path), channel_ids):
                log.warning("%s", problem)


def run_daemon(instance: Instance, *, ready: Callable[[], None] | None = None) -> None:
    """Run the instance's jobs until SIGTERM or SIGINT."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    jobs = load_jobs(instance)  # a bad job file stops here, naming the file and key
    if not jobs:
        raise UserError(f"{instance.jobs_dir} 下没有任务文件（*.toml），守护进程无事可做")
    opened = open_store(instance)
    daemon_lock = try_lock(opened, "daemon")
    if daemon_lock is None:
        opened.dispose()
        where = sqlite_path(opened)
        raise UserError(
            "另一个 channelwatch 守护进程已在使用这个数据库"
            + (f"（{where}）" if where else "")
            + "，本进程退出。每个数据库只能运行一个守护进程。"
        )
    stop = threading.Event()
    _prepare_inboxes(instance, jobs)
    try:
        zone = instance.timezone
        now = datetime.now(UTC)
        jobstate.register_jobs(opened.engine, opened.office_id, [j.id for j in jobs], now)
        close_interrupted(opened, jobs)
        states = jobstate.job_states(opened.engine, opened.office_id)
        catch_up: dict[str, datetime] = {}
        catch_lock = threading.Lock()

        def run(job: Job) -> None:
            with catch_lock:
                missed = catch_up.pop(job.id, None)
            if stop.is_set():
                return  # a run the scheduler started as the daemon was stopping
            if missed is not None:
                execute(opened, job, trigger="catch-up", scheduled_for=missed, stop=stop)
            else:
                execute(opened, job, trigger="schedule", stop=stop)

        scheduler = BackgroundScheduler(
            timezone=ZoneInfo(zone),
            executors={"default": ThreadPoolExecutor(max_workers=max(2, min(8, len(jobs))))},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        for job in jobs:
            state = states[job.id]
            reference = state.last_fire or state.registered_at
            trigger = make_trigger(job, zone, start=reference if job.spec.every else None)
            missed = missed_fire(job, zone, reference, now)
            options: dict[str, Any] = {}
            if missed is not None:
                catch_up[job.id] = missed
                options["next_run_time"] = datetime.now(ZoneInfo(zone))
                log.info("job %s missed its run at %s: catching up once now", job.id, to_office(missed, zone))
            scheduler.add_job(
                run,
                trigger,
                args=[job],
                id=job.id,
                name=job.id,
                misfire_grace_time=max(1, int(job.grace_seconds(zone))),
                **options,
            )

        first_signal = True

        def on_signal(signum: int, _frame: Any) -> None:
            nonlocal first_signal
            if first_signal:
                first_signal = False
                log.info("received %s: stopping after running jobs finish", signal.Signals(signum).name)
                stop.set()
            else:
                log.warning("second %s: exiting at once (open transactions roll back)", signal.Signals(signum).name)
                os._exit(1)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        scheduler.start()
        log.info(
            "daemon started (pid %d, %d jobs, %s): %s",
            os.getpid(),
            len(jobs),
            daemon_lock.description,
            ", ".join(f"{j.id} {j.schedule_text}" for j in jobs),
        )
        if ready is not None:
            ready()
        while not stop.wait(1.0):
            pass
        # Polls see ``stop`` and close their runs as interrupted within a second; other jobs are short.
        # A job that still runs after STOP_WAIT (an import of a huge file) is left to the next start,
        # which closes its run as interrupted: the promise is to stop within 10 s.
        stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        stopper.start()
        stopper.join(STOP_WAIT)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if stopper.is_alive():
            # Their transactions roll back with the process; the next start closes their runs as interrupted.
            log.warning("jobs still running %.0f s after the stop signal: exiting without them", STOP_WAIT)
            logging.shutdown()
            os._exit(0)
        log.info("daemon stopped")
    finally:
        daemon_lock.release()
        opened.dispose()
