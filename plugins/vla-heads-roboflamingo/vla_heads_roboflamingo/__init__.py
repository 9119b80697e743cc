"""vla-heads-roboflamingo: RoboFlamingo's policy heads (robot_flamingo/models/action_head.py).

Components (entry points, imported only when a config names them):
    vla.heads  FCDecoder             per-frame MLP (no memory): the "MLP" head
               DeterministicDecoder  an LSTM over the window of frames (RoboFlamingo's best)
               GPTDecoder            a GPT-2 decoder over the window of frames

All three read max-pooled per-frame backbone features over a window (`window_size`, default
8), predict the arm action as a chunk and a binary gripper with its own BCE loss, and keep
their window (or recurrent state) between online calls until `reset()`. See docs/roboflamingo.md.

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""

__version__ = "0.1.0"
