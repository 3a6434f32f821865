"""Measured outcomes for the service: GPU energy per job, realised intensity, the outcome row.

The service calls :meth:`JobMeasurement.started` after a job's launch, :meth:`observe` on every
tick, :meth:`finished` when the job ends (its columns go into the ``outcomes`` row next to the
predicted ones) and :meth:`lost` on every tick (each lost GPU once, with its jobs to fail).

Only jobs on measured GPUs are measured: ``index_of`` maps a device id (``region/index``) to
the backend's device index — this node's ``local``-executor GPUs on NVML, or one simulated
device per ``simulated``-executor GPU on the simulated backend (:func:`start_measurement`);
other jobs keep NULL measured columns. Realised intensity is time-weighted over the run from the
series the service held at each tick (the signal it had), with the worst rung and largest age
seen. On the simulated backend a started job loads its GPUs at the utilisation of its raw
catalog estimate, so simulated measurements follow the (possibly mis-calibrated) hardware, not
the prediction.

A job metered here to its end teaches the recalibration factors (:attr:`JobMeasurement.learning`,
the service's :class:`~daemon.learning.factors.Learning`). Jobs this node does not meter (Slurm's)
get their measured energy from their executor (``sacct``) and teach the same factors once their end
is committed (:mod:`daemon.endings.finishing`), whether or not a measurement exists.
"""

from daemon.measurement.jobs import JobMeasurement
from daemon.measurement.start import start_measurement

__all__ = ["JobMeasurement", "start_measurement"]
