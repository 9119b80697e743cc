"""Data: the sample schema, LeRobot-format datasets (reader and writer), embodiment specs,
normalisation statistics and the processor that turns raw observations into model inputs.

This package's `__init__` imports nothing (light code such as `vla list-components` may
import it); use the submodules:

    vla_core.data.schema            batch keys and shapes, `collate`
    vla_core.data.embodiment        `EmbodimentSpec`: dataset keys -> model inputs
    vla_core.data.lerobot_dataset   `LeRobotDataset` (group vla.datasets), LeRobot v2.1 / v3.0
    vla_core.data.lerobot_writer    `LeRobotWriter`, writes LeRobot v3.0
    vla_core.data.stats             streaming statistics, `DatasetStatistics` (dataset_statistics.json)
    vla_core.data.processor         `VLAProcessor` (group vla.processors)
"""
