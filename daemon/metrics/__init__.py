"""Metrics: what the service reports (:mod:`.sink`, a protocol and a sink that drops everything)
and the Prometheus endpoint that implements it (:mod:`.prometheus`).
"""
