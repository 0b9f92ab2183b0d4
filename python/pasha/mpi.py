"""MpiContext: one map across the ranks of an MPI job (many nodes), each rank running its part on a
local context of its own, with mpi4py's communicator. pasha's C++ MpiContext underneath.

    from mpi4py import MPI
    import pasha as psh

    ctx = psh.MpiContext(psh.ThreadContext(8))          # on every rank (mpirun, srun)
    out = ctx.alloc(shape=len(data), dtype=np.float64)
    ctx.map(kernel, data)                                # every rank
    # out is whole on every rank here

SPMD, as MPI code is: every rank makes its MpiContext, allocates its arrays and calls map in the same
order, with the same collection (these are collective; ranks that disagree get ValueError). The
collection is split across ranks, then across each rank's local workers; indices and worker ids are
global, ``num_workers`` is the total. Arrays from ``alloc`` are shared by the ranks of a node and,
when map returns, whole on every rank: per-worker arrays, and arrays whose first axis has the map's
length (index-aligned outputs); others stay as each node wrote them. A kernel that raises on any
rank raises on every rank: the same exception on the rank that ran it, pasha.WorkerError naming it
elsewhere (the exception itself on every rank when the local workers are processes: a worker process's
failure travels with its description). Ctrl-C (SIGINT) on any rank stops every rank's workers at their
next look (within about a second): KeyboardInterrupt on that rank, pasha.WorkerError naming it on the
others.

Arrays may be dropped in any order on any rank (their memory is freed at a later map or alloc once
every rank of the node has dropped them); contexts live until exit, when pasha frees what is left, in
the order it was made, before MPI finalises.
"""

from __future__ import annotations

import atexit
from typing import Any, Optional

from . import _pasha
from .context import _EngineContext

try:
    from mpi4py import MPI
except ImportError as error:  # pragma: no cover - mpi4py is installed where MPI is used
    raise ImportError('pasha.MpiContext needs mpi4py (Debian: python3-mpi4py)') from error

__all__ = ['MpiContext']

# Registered after mpi4py was imported, so it runs before mpi4py finalises MPI: contexts and arrays
# still alive then go collectively, in the order they were made, not in the order the interpreter
# happens to drop them on each rank.
atexit.register(_pasha.mpi_release_all)

# Every MPI engine made, kept until exit: the garbage collector drops objects in no order the ranks
# agree on, and a context's end is collective. (Arrays may go at any time: their memory is freed at a
# later map or alloc, once every rank of the node has dropped them.)
_ENGINES: list = []


class MpiContext(_EngineContext):
    """A context whose workers are every rank's `local_context` workers (a SerialContext,
    ThreadContext or ProcessContext, not used by itself afterwards), on `comm` (an mpi4py
    communicator; default ``MPI.COMM_WORLD``). Collective over `comm`."""

    def __init__(self, local_context: _EngineContext, comm: Optional[Any] = None):
        if isinstance(local_context, MpiContext) or not isinstance(local_context, _EngineContext):
            raise TypeError(f'pasha.MpiContext: the local context must be a SerialContext, ThreadContext or '
                            f'ProcessContext, not {local_context!r}')
        comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(comm, MPI.Comm) or comm == MPI.COMM_NULL:
            raise TypeError(f'pasha.MpiContext: comm must be an mpi4py communicator, not {comm!r}')
        self._workers_are_processes = local_context._workers_are_processes
        super().__init__(_pasha.mpi(local_context._engine, comm.py2f()))
        _ENGINES.append(self._engine)
        self.local_context = local_context
        self.comm = comm

    def __repr__(self) -> str:
        return (f'<MpiContext rank {self.rank} of {self.num_ranks} ({self.num_nodes} node'
                f'{"s" if self.num_nodes != 1 else ""}), {self.num_workers} workers over {self.local_context!r}>')

    @property
    def rank(self) -> int:
        return self._engine.rank

    @property
    def num_ranks(self) -> int:
        return self._engine.num_ranks

    @property
    def num_nodes(self) -> int:
        return self._engine.num_nodes

    @property
    def first_worker(self) -> int:
        """The global id of this rank's first local worker."""
        return self._engine.first_worker
