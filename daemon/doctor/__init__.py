"""``carbond doctor``'s checks: the checks themselves, each one pass/fail/skip line
(:mod:`.checks`), the running daemon's health file and its disk (:mod:`.running_daemon`), the
job wrapper and the job limits it would set (:mod:`.wrapper`; a POSIX ACL its mode does not
speak for: :mod:`.acl`), and what ``carbond run`` sets up
beside the state dir: the metrics port, the intensity cache directory, a Slurm region's
partition (:mod:`.service`), the queue files (:mod:`.queue_check`) and users' spool files in
``queue.d`` (:mod:`.spool`).
"""
