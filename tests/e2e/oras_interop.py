"""The other side of the registry interop test: oras (an OCI artifact client of the ecosystem)
pulls a component wflow pushed, and pushes one in the wasm artifact layout for wflow to pull.

    python3 oras_interop.py pull HOST REPO:TAG OUTDIR    -> prints the pulled files as JSON
    python3 oras_interop.py push HOST REPO:TAG FILE.wasm
"""

import datetime
import hashlib
import json
import os
import sys

import oras.client


def main() -> None:
    mode, host, reference, path = sys.argv[1:5]
    client = oras.client.OrasClient(hostname=host, insecure=True)
    target = f"{host}/{reference}"
    if mode == "pull":
        files = client.pull(target=target, outdir=path)
        print(json.dumps(files))
        return
    folder, name = os.path.split(os.path.abspath(path))
    os.chdir(folder)
    with open(name, "rb") as wasm:
        digest = "sha256:" + hashlib.sha256(wasm.read()).hexdigest()
    config = {
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "author": None,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [digest],
        "component": {"exports": [], "imports": [], "target": None},
    }
    with open("config.json", "w") as out:
        json.dump(config, out)
    response = client.push(
        target=target,
        files=[f"{name}:application/wasm"],
        manifest_config="config.json:application/vnd.wasm.config.v0+json",
    )
    response.raise_for_status()


if __name__ == "__main__":
    main()
