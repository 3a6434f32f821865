"""What runs the service live and tells its supervisors how it is doing: the loop that fires
its steps (:mod:`.loop`, the only APScheduler user), the planner's warm-up before the first
plan (:mod:`.warmup`), systemd's notify protocol and watchdog (:mod:`.sdnotify`,
:mod:`.watchdog`), and ``health.json`` for ``carbond doctor`` (:mod:`.health`).
"""
