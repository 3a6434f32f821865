"""Carbon intensity as the daemon gets it: the providers the service plans with
(:mod:`.providers`: the fallback chain's protocol, static and embedded signals, per-zone
series) and the chain built from the settings, the daemon's and the CLI's one wiring
(:mod:`.signals`).
"""
