"""How runs end, as the service records them: the rules (:mod:`.rules`: final states, reasons,
the outcome row's predicted side, the "never started" answer; pure), the running jobs polled and
each end recorded exactly once (:mod:`.finishing`), and the cancels and stops sent to the
executors (:mod:`.stopping`).
"""
