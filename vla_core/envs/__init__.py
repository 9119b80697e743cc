"""Closed-loop evaluation: the env contract (`vla.envs` plugins), one rollout loop for any
env and any policy (with action chunking), success statistics, videos, and demonstration
data from scripted experts.

Modules: `spec` (EnvSpec), `make` (make_env), `policies` (RolloutPolicy, RandomPolicy),
`rollout` (run_episode), `results` (Wilson intervals, tables), `video` (MP4/GIF).
Importing this package is light; numpy and torch load with the modules that need them.
"""
