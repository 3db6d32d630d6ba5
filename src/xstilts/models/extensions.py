"""xstilts' compiled CPU kernels (``models/csrc``), built with ``torch.utils.cpp_extension`` at first use.

Why built here rather than shipped: a wheel would pin one torch ABI; built against the installed
torch, a kernel needs only a C++ compiler (``scripts/setup.sh`` builds them once, about 30-40 s
each). Each build lives in its own folder named by the source text and the torch installation, so
two checkouts or environments never rebuild one another's. Without a compiler :func:`build` returns
None and the caller computes with PyTorch as before (its module says what that costs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

SOURCES = Path(__file__).parent / "csrc"
_LOCK = threading.Lock()


def build_directory(source: Path, name: str, flags: list[str] | None = None) -> Path:
    """Where ``source`` is built: one folder per source text and torch installation, with the source
    copied in. torch's build rules name the source's path and torch's header path, and it rebuilds
    whenever either differs from the last build in the folder: two checkouts, or two virtual
    environments (a symlinked one counts), sharing one folder would rebuild in turn. Extra compiler
    and linker ``flags`` enter the name too, so a change of flags never rebuilds over a build another
    process is loading."""
    text = source.read_bytes()
    installation = f"{torch.__version__} {os.path.dirname(torch.__file__)}" + "".join(f" {f}" for f in flags or [])
    installation = installation.encode()
    digest = hashlib.sha256(text + installation).hexdigest()[:12]
    from torch.utils.cpp_extension import get_default_build_root  # torch's own default (honours XDG_CACHE_HOME)

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    folder = root / f"{name}_{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / source.name
    if not copy.exists() or copy.read_bytes() != text:
        tmp = folder / f".{source.name}.{os.getpid()}"
        tmp.write_bytes(text)
        tmp.replace(copy)  # atomic: a concurrent build never reads half a file
    return folder


def build(source: Path, name: str, what: str, include_dirs: list[str] | None = None,
          ldflags: list[str] | None = None, openmp: bool = False) -> ModuleType | None:
    """The compiled module of ``source`` (built and cached at first use), or None where it cannot be
    built; ``what`` names the kernel in the one warning that says so.

    ``openmp``: compile and link with ``-fopenmp``, for a source with its own ``#pragma omp`` loops
    (the module then shares PyTorch's OpenMP runtime, the ``libgomp.so.1`` already loaded). Without
    it ``at::parallel_for``, a header template, runs every call on the calling thread; with it that
    template's lazy per-library initialisation resets a thread PyTorch had set to one thread (an
    evaluation worker's) to the process-wide count. So sources call ``at::parallel_for`` only where
    one thread is what they want (the attention kernel: evaluation runs one batch per thread)."""
    from torch.utils.cpp_extension import load

    omp = ["-fopenmp"] if openmp else []
    linker = [*(ldflags or []), *omp]
    with _LOCK:
        try:
            folder = build_directory(source, name, [*omp, *linker, *(include_dirs or [])])
            return load(name=folder.name, sources=[str(folder / source.name)], build_directory=str(folder),
                        extra_cflags=["-O3", *omp], extra_ldflags=linker, extra_include_paths=include_dirs,
                        verbose=False)
        except Exception as exc:  # no compiler / headers: the caller computes with PyTorch
            log.warning("xstilts: %s could not be built (%s); computing with PyTorch", what,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return None
