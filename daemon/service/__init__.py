"""The service: ingest -> refresh intensity -> plan & dispatch -> reconcile.

:meth:`Service.tick` runs one round at ``now``; the APScheduler loop fires the public steps on
their own intervals with the wall clock, replay calls ``tick`` with a simulated clock. Nothing
here reads the clock or sleeps, but for the live daemon's ``Service.launch_clock`` (a round's
launches are stamped when they happen, after its planning). Every step holds one lock, so a
loop that fires steps from several threads still runs them one at a time.

Dispatch is write-ahead (:mod:`daemon.service.dispatch`): the ``running`` transitions and run
rows of a round's dispatches are committed (one transaction) before any executor starts
anything, and the executors' handles after (one transaction). A daemon killed in between finds
runs without a handle on restart and asks their executors (``adopt`` with an empty token)
whether those jobs started; so a job never starts twice. The ends a reconcile observes are
committed together too (:mod:`daemon.endings.finishing`).

A job planned for later on a :class:`~daemon.executors.base.Reserving` executor (Slurm) is
handed to it at once, held until its planned start, with a run row (same write-ahead rule) whose
token says where it is while the job is ``planned``; a new plan moves it, "start now" releases
it, and a job cancelled, expired, unplanned or planned elsewhere is withdrawn. A
:class:`~daemon.executors.base.CapacityAware` executor corrects the planner's view of its GPUs
every round (down nodes, GPUs others hold). A region whose
:class:`~daemon.executors.base.Discovering` executor could not ask for its GPUs (Slurm down
when the daemon started) is asked again each planning round, as often as the executor's outage
allows; its GPUs join the inventory once found, and meanwhile the jobs only it could run wait
``queued`` and ``health.json`` names it (``region:<name>``).

Modules, one concept each, all over the one :class:`Service`'s state (its public attributes,
or the parts it hands a step, never its private ones but where ``tests/daemon/service/
test_reach.py`` lists them) and under its lock:

- ``core.py``: :class:`Service` (its parts, start/reload/close, the steps) and
  :class:`TickReport`;
- ``checkpointing.py``: the recalibration checkpoint moved on while the service runs;
- ``memory.py``: what the planning rounds keep between them (forecasts, the waiting jobs' specs
  and decisions, busy GPUs), part of it taken over at a reload;
- ``plan_round.py``: a planning round (settle, plan, record, hold or dispatch: the per-job path);
- ``reconcile.py``: the reconcile step (cancels forwarded, ends recorded, then what follows);
- ``refresh.py``: the intensity refresh of every zone;
- ``unstarted.py``: jobs that end (cancelled, expired, failed) or are queued again unstarted;
- ``succession.py``: what a start takes up from the daemon before (its runs adopted, the
  learned factors, totals and batteries; a reload's are taken over by
  :meth:`Service.take_over_runs`);
- ``gpus.py``: GPUs lost (their jobs' ends and stops), discovered late, departed at a reload;
- ``problems.py``: what ``health.json`` says of the executors, sites, unfollowed jobs and
  undiscovered regions.
"""

from daemon.service.core import Service, TickReport

__all__ = ["Service", "TickReport"]
