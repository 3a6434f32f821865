"""Executors: local processes, simulated runs, Slurm."""
