"""Entrypoint for ``ray job submit``: deploy the endpoint into the cluster and return (``mlops-ray serve --detach``).

From the repository root; the application keeps running after the job ends:

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/deploy.py --config configs/quickstart.yaml
"""

from __future__ import annotations

from common import parser, run


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--model", help="name@alias or name/version; default: the config's model @champion")
    arguments.add_argument("--canary", type=float, help="percent of requests answered by @challenger")
    args = arguments.parse_args()
    extra = ["--detach"] + (["--model", args.model] if args.model else [])
    extra += ["--canary", str(args.canary)] if args.canary is not None else []
    run(["serve"], args, *extra)


if __name__ == "__main__":
    main()
