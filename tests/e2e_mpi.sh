#!/bin/sh
# Data-parallel training under mpirun -np 2 against the one-process run
# (tests/check_mpi.py). Needs the MPI build (make check makes build-mpi/
# where mpicc exists); skipped, and said so, without it.
MPI_BUILD=${MPI_BUILD:-build-mpi}
if [ ! -x "$MPI_BUILD/onnx-sfp" ] || ! command -v mpirun >/dev/null 2>&1; then
    echo "skip e2e_mpi: no MPI build ($MPI_BUILD/onnx-sfp) or no mpirun (apt-get install libopenmpi-dev openmpi-bin)"
    exit 0
fi
MPI_BUILD=$MPI_BUILD exec /usr/bin/python3 tests/check_mpi.py
