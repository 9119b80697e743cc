"""Closed-loop evaluation: the env contract (`vla.envs` plugins), one rollout loop for any
env and any policy (with action chunking), success statistics, videos, and demonstration
data from scripted experts.

Modules: `spec` (EnvSpec), `make` (make_env), `policies` (RolloutPolicy, RandomPolicy),
`rollout` (run_episode), `evaluate` (tasks x seeds, videos), `results` (Wilson intervals),
`video` (MP4/GIF), `vla_policy` (a checkpoint as a rollout policy), `dataset_io` (env
observations <-> LeRobot features), `generate` (expert demonstrations -> LeRobot v3.0).
Importing this package is light; numpy and torch load with the modules that need them.
"""
