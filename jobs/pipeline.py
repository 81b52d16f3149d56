"""Entrypoint for ``ray job submit``: the whole chain (data -> train/sweep -> gate -> serve -> predict).

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/pipeline.py --config configs/quickstart.yaml

Inside a Ray job ``RAY_ADDRESS`` is set, so the pipeline joins the cluster instead of
starting an embedded Ray.
"""

from __future__ import annotations

from common import parser, run


def main() -> None:
    run(["run"], parser(__doc__.splitlines()[0]).parse_args())


if __name__ == "__main__":
    main()
