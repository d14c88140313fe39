"""Data-parallel training over processes, on MPI (mpi4py) between CPUs and machines, NCCL between GPUs.

``mpiexec -n N python train.py`` starts N copies of a training script; each holds a full replica of the model,
loads its own shard of every batch, and after each backward the replicas average their gradients, so all of them
take the same step. Install with ``pip install 'tinydl[distributed]'`` (mpi4py and MPICH, ``mpiexec`` included).

::

    import tinydl.distributed as dist

    model = dist.DistributedDataParallel(Net())
    sampler = dist.DistributedSampler(train_set, shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=64 // dist.world_size(), sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for images, labels in loader:
            ...                                   # the usual loop: loss.backward() averages the gradients
        dist.save(state, "last.tdl")              # rank 0 writes, the others wait
        if dist.is_main():
            print(...)

docs/distributed.md explains how it works and why the averaged gradients equal one process's on the whole batch.
"""
from .checkpoint import load, save
from .collectives import all_gather, all_reduce, broadcast
from .ddp import DistributedDataParallel
from .sampler import DistributedSampler
from .world import INSTALL_HINT, barrier, init, is_main, local_rank, rank, world_size

__all__ = ["init", "rank", "world_size", "local_rank", "is_main", "barrier", "all_reduce", "broadcast", "all_gather",
           "DistributedDataParallel", "DistributedSampler", "save", "load", "INSTALL_HINT"]
