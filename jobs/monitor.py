"""Entrypoint for ``ray job submit``: check captured traffic for drift, then alert or retrain (``mlops-ray monitor``).

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/monitor.py --config configs/quickstart.yaml

The job ends with the command's exit code: 0 no drift, 3 drift, 4 too little traffic
(Ray reports a non-zero exit as FAILED, so a scheduler sees drift without reading logs).
With ``monitor.on_drift: retrain`` it submits ``jobs/pipeline.py`` as a new job from the
same uploaded working directory.
"""

from __future__ import annotations

from common import parser, run


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--model", help="name@alias or name/version; default: the config's model @champion")
    arguments.add_argument("--since", help="window start, ISO 8601; default: monitor.window_hours back")
    arguments.add_argument("--until", help="window end, ISO 8601; default: now")
    args = arguments.parse_args()
    extra = [f"--{name}={value}" for name in ("model", "since", "until") if (value := getattr(args, name))]
    run(["monitor"], args, *extra)


if __name__ == "__main__":
    main()
