"""Entrypoint for ``ray job submit``: the quickstart chain on the cluster the job runs in.

    ray job submit --working-dir . -- python jobs/pipeline.py --config configs/quickstart.yaml

Only parses arguments; inside a Ray job ``RAY_ADDRESS`` is set, so the pipeline
joins the cluster instead of starting an embedded Ray. (Runtime environment and
the other stages' entrypoints arrive with the cluster work.)
"""

from __future__ import annotations

import argparse

from mlops_ray.cli import app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY.PATH=VALUE override")
    args = parser.parse_args()
    argv = ["run", args.config]
    for override in args.overrides:
        argv += ["--set", override]
    app(argv)


if __name__ == "__main__":
    main()
