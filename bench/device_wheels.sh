#!/usr/bin/env bash
# Downloads, into .whl/ (git-ignored), the packages vmae2 imports that the lent
# accelerator's image lacks (its python3 is 3.12 with jax, flax, optax, orbax,
# chex, tensorstore, pillow, absl: see ../.library/device/KINDS.md). ~40 MB; carry
# `.whl` with the run (bench/device_check.py's docstring has the command).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for pkg in grain==0.2.18 array-record==0.8.6 av==18.1.0 ml-collections==1.1.0 portpicker==1.6.0 tensorboardX==2.6.5; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$pkg"
done
ls -la .whl
