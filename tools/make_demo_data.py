"""Write the synthetic demo data set (bright spheres in noise, MSD layout) used by `experiment=quickstart`.

Usage: python tools/make_demo_data.py [OUT_DIR] [--n-train 8] [--n-val 4] [--size 48] [--seed 0]
"""

from __future__ import annotations

import argparse

from clara_hydra.runtime.demo import make_demo_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="data/demo")
    parser.add_argument("--n-train", type=int, default=8)
    parser.add_argument("--n-val", type=int, default=4)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = make_demo_data(args.out_dir, n_train=args.n_train, n_val=args.n_val, size=args.size, seed=args.seed)
    print(f"demo data in {root}")


if __name__ == "__main__":
    main()
