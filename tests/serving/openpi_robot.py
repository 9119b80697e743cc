"""Runs in the openpi-client venv (numpy < 2, no vla): the robot side of the acceptance test.

    python openpi_robot.py PORT IN.npz OUT_DIR
Reads observations from IN.npz (obs<i>/<key>), sends each with noise through
openpi_client.websocket_client_policy.WebsocketClientPolicy, writes OUT_DIR/actions<i>.npy
and OUT_DIR/metadata.txt.
"""

import sys
from pathlib import Path

import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, source, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
client = WebsocketClientPolicy(host="127.0.0.1", port=port)
metadata = client.get_server_metadata()
(out / "metadata.txt").write_text(repr(sorted(metadata)) + "\n" + repr(metadata["cameras"]))
with np.load(source, allow_pickle=False) as archive:
    count = len({name.split("/")[0] for name in archive.files})
    for i in range(count):
        obs = {name.split("/", 1)[1]: archive[name] for name in archive.files if name.startswith(f"obs{i}/")}
        obs["prompt"] = str(obs["prompt"])
        reply = client.infer(obs)
        assert reply["actions"].dtype == np.float32 and reply["server_timing"]["infer_ms"] > 0
        np.save(out / f"actions{i}.npy", reply["actions"])
print("numpy", np.__version__)
