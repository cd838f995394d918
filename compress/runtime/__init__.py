"""compress.runtime: what runs on the device, at the bottom of compress's import graph.

Standard library + numpy, onnxruntime or tensorrt (imported lazily, only when a runner needs
them); no torch, nothing else of compress. It must run on the Pythons Jetsons really have:
JetPack 4.6 (Nano, TX2) ships Python 3.6, JetPack 5 ships 3.8, JetPack 6 ships 3.10 — so no
``from __future__ import annotations``, no dataclasses, typing-module annotations
(``tests/deploy/test_runtime_package.py`` checks the minimum version with vermin).

Modules, one idea each::

    errors      AgentError, the one error type
    timing      time_calls, percentile, summarize
    shell       read a file / run a command, None on failure
    cuda        libcudart through ctypes; gpu_identity
    machine     environment(): CPU, GPU, versions, Jetson power mode and clocks; peak memory
    tegrastats  Jetson power rails and load, sampled in the background
    runners     the Runner contract, the runner registry (make_runner), onnxruntime, tensorrt
    engines     TensorRT feature detection, build recipe, builds, sidecars, on-device cache
    profile     latency / accuracy / memory of one runner
    cli         the device-side command line (``python3 agent.pyz profile ...``)

``compress profile --target ssh://…`` ships this package to the device as one zipapp
(`compress.deploy.zipapp`), so the device receives a single file and the code exists once.
"""

#: Version of the runtime's JSON output and engine sidecars.
RUNTIME_VERSION = 1
