"""The device-side command line: ``profile``, ``build-engine``, ``env``; JSON on stdout or --json.

Run as ``python3 agent.pyz profile MODEL ...`` (the zipapp `compress profile --target ssh://`
ships) or ``python -m compress.runtime ...`` where compress is installed.
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

from compress.runtime.engines import atomic_write, build_cached
from compress.runtime.errors import AgentError
from compress.runtime.machine import environment
from compress.runtime.profile import profile


def _ints(text: str) -> List[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: ``profile``, ``build-engine`` or ``env``; JSON on stdout or to --json."""
    ap = argparse.ArgumentParser(prog="agent.pyz", description="compress device agent")
    sub = ap.add_subparsers(dest="cmd")
    sub.required = True  # add_subparsers(required=...) is Python 3.7+
    p = sub.add_parser("profile", help="time a model and measure its accuracy")
    p.add_argument("model")
    p.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "tensorrt"])
    p.add_argument("--batches", default="1")
    p.add_argument("--eval", dest="eval_path")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--duration", type=float, default=0.0)
    p.add_argument("--providers", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--input-shape", default=None)
    p.add_argument(
        "--build", default=None, help="build a TensorRT engine from this ONNX first: PRECISION"
    )
    p.add_argument("--batch-profile", default="1:32:64")
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/compress-agent"))
    p.add_argument("--json", dest="json_path")
    b = sub.add_parser("build-engine", help="build (or reuse) a TensorRT engine for an ONNX file")
    b.add_argument("onnx")
    b.add_argument("--precision", default="fp16")
    b.add_argument("--batch", default="1:32:64")
    b.add_argument("--input-shape", required=True)
    b.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/compress-agent"))
    b.add_argument("--json", dest="json_path")
    e = sub.add_parser("env", help="describe this machine")
    e.add_argument("--json", dest="json_path")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "env":
            out: Dict[str, Any] = environment()
        elif args.cmd == "build-engine":
            plan = build_cached(
                args.onnx,
                args.precision,
                tuple(_ints(args.batch.replace(":", ","))),
                _ints(args.input_shape),
                args.cache_dir,
                log=lambda m: print(m, file=sys.stderr),
            )
            out = {"engine": plan}
        else:
            model = args.model
            shape = _ints(args.input_shape) if args.input_shape else None
            if args.build:
                if shape is None:
                    raise AgentError("--build needs --input-shape C,H,W")
                model = build_cached(
                    model,
                    args.build,
                    tuple(_ints(args.batch_profile.replace(":", ","))),
                    shape,
                    args.cache_dir,
                    log=lambda m: print(m, file=sys.stderr),
                )
            out = profile(
                model,
                args.runtime,
                _ints(args.batches),
                eval_path=args.eval_path,
                warmup=args.warmup,
                iters=args.iters,
                duration=args.duration,
                providers=args.providers.split(",") if args.providers else None,
                threads=args.threads,
                input_shape=shape,
            )
    except AgentError as exc:
        print(json.dumps({"error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json_path:
        from compress.runtime.reports import REPORT_KEY, refusal

        problem = refusal(args.json_path)
        if problem:
            print(json.dumps({"error": problem}))
            print("error: " + problem, file=sys.stderr)
            return 2
        out = dict(out, **{REPORT_KEY: "compress device runtime"})
    text = json.dumps(out, indent=2, default=str)
    if args.json_path:
        atomic_write(args.json_path, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
