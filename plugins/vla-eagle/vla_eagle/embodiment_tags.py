"""GR00T N1.5's embodiment tags and the projector index each one selects.

GR00T keeps one set of state-encoder / action-encoder / action-decoder weights per
embodiment (`max_num_embodiments` = 32); the tag a checkpoint was trained with picks the
set (Isaac-GR00T `gr00t/data/embodiment_tags.py` `EMBODIMENT_TAG_MAPPING`, read by
`gr00t/model/transforms.py` `GR00TTransform.get_embodiment_tag`). A fine-tuned
checkpoint uses `new_embodiment`, index 31.

Plain data, no torch: imported to validate configs.
"""

from __future__ import annotations

from collections.abc import Mapping

from vla_core.errors import ConfigError

#: Tag -> projector index in GR00T N1.5.
GR00T_N15_EMBODIMENT_TAGS: dict[str, int] = {
    "new_embodiment": 31,
    "oxe_droid": 17,
    "agibot_genie1": 26,
    "gr1": 24,
}
#: Older spellings (GR00T N1's `genie1_gripper`) -> the N1.5 tag.
TAG_ALIASES: dict[str, str] = {"genie1_gripper": "agibot_genie1"}


def embodiment_index(tag: str, extra_tags: Mapping[str, int] | None = None) -> int:
    """The projector index of `tag`; `extra_tags` adds or overrides tags (a fork's own robots)."""
    tags = {**GR00T_N15_EMBODIMENT_TAGS, **dict(extra_tags or {})}
    name = TAG_ALIASES.get(tag, tag) if tag not in tags else tag
    if name not in tags:
        raise ConfigError(
            f"is '{tag}', which GR00T N1.5 does not know (its tags: {', '.join(sorted(tags))}). Use the tag the "
            "checkpoint was trained with (fine-tuned checkpoints: new_embodiment), or give its projector index in "
            "embodiment_tags, e.g. {my_robot: 30}.",
            "processor.embodiment_tag",
        )
    return int(tags[name])
