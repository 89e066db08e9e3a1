#!/bin/sh
# Packs what amif-core needs and the GPU machine's image lacks (the device tool's KINDS.md lists what it holds:
# torch, numpy, scipy, pillow, tqdm, pytest, ...) into .whl/gpu-site.tar.xz, for benchmarks/gpu_check.py's one
# device call (its docstring gives the call). The wheels alone (62 MiB, SimpleITK 50 of it) and the working tree
# pass the device tool's 64 MiB carry limit; unpacked and xz-compressed they take about 36 MiB.
# Run here, in the repository, where pip reaches the package index; installs nothing here.
set -eu
cd "$(dirname "$0")/.."
# The versions this project's tests pass with; CPython 3.12 on x86-64, as on the GPU machine.
PACKAGES="ptwt==1.0.1 PyWavelets==1.9.0 SimpleITK==2.5.7 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 pydicom==3.0.2"
TARGET="--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_28_x86_64
 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps $TARGET -d "$work/wheels" $PACKAGES
python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" $TARGET "$work"/wheels/*.whl
mkdir -p .whl
tar -C "$work/site" -cf - . | xz -6 > .whl/gpu-site.tar.xz.part
mv .whl/gpu-site.tar.xz.part .whl/gpu-site.tar.xz
ls -l .whl/gpu-site.tar.xz
