"""The run-now counterfactual's GPUs across planning rounds.

Each job's run-now counterfactual is recorded with its first decision that has one: where and
when ``run-now`` would have started it. In the run-now world that run then holds its GPUs
until it ends, so a job arriving in a later round cannot have them meanwhile. The policy
cannot know this from the real devices (the real runs are elsewhere, or later), so the daemon
keeps, per GPU, which jobs' recorded counterfactual runs hold it until when, and hands it to
the policy as :attr:`policies.Device.run_now_busy_until`, with the job holding it longest
(:attr:`~policies.Device.run_now_holder`: that job's own counterfactual, rebuilt each round
for its reason, does not wait for its own run; :mod:`policies.run_now_claims`).

A job's end can cut its counterfactual run short, where ``run-now`` running the same jobs
would have ended that run early too (:func:`ending_cut`, :func:`held_until`): a cancel its
owner asked for at T cancels the run-now copy at T (if it is running then; not yet started, it
never runs), and a job that failed on its own (an exit code or a signal) after running a share
of its predicted duration fails after the same share of its counterfactual run's (one whose
launch was refused as submitted, its command unable to start, at its copy's start: exit code
126, :class:`daemon.executors.errors.JobNotRunnableError`). A job that failed for another
reason (its GPU lost, its launch refused by carbond or the cluster), or that expired waiting,
keeps its counterfactual run whole: run-now would have run it. A job that succeeded after ``k``
times its predicted duration has its copy end after ``k`` times its own, shorter or longer:
the window its grams are priced over (:mod:`daemon.accounting.run_now_priced`), so the later
arrivals' counterfactuals find its GPUs free when that window ends. While a job runs past its
predicted end its copy holds as the run is turning out (:meth:`RunNowBusy.devices`): its
duration times the job's run so far, to the round after (as its own GPUs are held), over its
predicted duration, until the job ends and its end sets the copy's length: however it ended,
a job that ran ``k`` times its predicted duration, ``k`` above 1, has its copy run ``k`` times
its own (a failure of its own, after the same share of it; any other end, at least that long:
run-now would have run it), its owner's cancel still cutting it, never back to its predicted
end. A copy that
would start at or after its job's deadline holds nothing: ``run-now`` expires such a job
waiting (:func:`policies.run_now_claims.expires_unstarted`).

Kept in memory from the decisions recorded; a restart learns them again from the ledger
(:meth:`RunNowBusy.learn`), cut by the same rule: those of the jobs running, those of the jobs
that ended in the last :data:`ENDED_LOOKBACK_S` (their counterfactual run may outlast the
real one), those that expired or failed without running too, and those of the jobs still
waiting (planned in an earlier life, they may be outside this one's planning window for many
rounds while their copies hold GPUs); one query each, at the start only.
"""

from daemon.run_now_busy.cuts import Cut, ending_cut, held_until, run_end_cut, unstarted_cut
from daemon.run_now_busy.holds import ENDED_LOOKBACK_S, RunNowBusy

__all__ = [
    "ENDED_LOOKBACK_S",
    "Cut",
    "RunNowBusy",
    "ending_cut",
    "held_until",
    "run_end_cut",
    "unstarted_cut",
]
