"""The numeric environment: one place that pins the floating-point kernels of this process.

Float32 and float64 results depend on which SIMD kernels compute them, and every layer we use
picks its kernels from the CPU it finds: PyTorch's ATen (AVX2 or AVX-512 builds of each
operator), oneDNN, MKL (matmul and LAPACK inside torch), numpy's own SIMD loops, and the
OpenBLAS numpy links (matmul, QR and SVD of the metrics). A freeze made on an AVX2 machine
differs from a re-run on an AVX-512 machine in the last bits, so every layer is capped at one
level that every x86-64 machine since 2013 has: AVX2 with FMA ("x86-64-v3").

``pin()`` must run before torch or numpy is imported (each reads its variables when it loads or
first dispatches). The CLI calls it first thing, so do the processes it starts (the claims
audit's second process, the figure workers, the preview's builds) and the test suite's
conftest. It only sets environment variables, so it costs nothing and imports nothing.

Each pin and the measurement that chose it (main experiment and a 24-seed slice of the audit on
an AMD EPYC with AVX-512, against a freeze made on an AVX2 machine):

  ATEN_CPU_CAPABILITY=avx2       ATen's operator kernels. Unpinned, 9 of 17 arrays of the main
                                 experiment differ from the AVX2 freeze; with it, none.
  MKL_CBWR=COMPATIBLE            MKL's Conditional Numerical Reproducibility: one code path on
                                 every Intel and AMD CPU. MKL_CBWR=AVX2 only holds on Intel
                                 (MKL takes other paths on AMD); COMPATIBLE changes our bits
                                 here, which is the point: it takes the CPU out of MKL's choice.
  MKL_DYNAMIC=FALSE              MKL may not change its thread count behind our back (CNR
                                 needs a fixed count).
  ONEDNN_MAX_CPU_ISA=AVX2        oneDNN's JIT kernels (convolutions, some matmuls). No effect on
                                 today's experiments; capped so a new kind cannot bring the CPU
                                 back in.
  NPY_DISABLE_CPU_FEATURES=...   numpy's AVX-512 loops (reductions, transcendental functions).
                                 The same arrays give different metrics with and without it.
  OPENBLAS_CORETYPE=Haswell      OpenBLAS's kernels (numpy's matmul, QR, SVD). Forced to
                                 SkylakeX (what an Intel AVX-512 machine picks) the metrics
                                 differ. A value the machine already sets is respected: it is
                                 set where OpenBLAS misreads the CPU, and overriding it can pick
                                 kernels the CPU cannot run; the pins then do not hold.
  OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS = 1
                                 one thread per library: reductions split over threads add in
                                 an order that depends on the count. (Experiments set torch's
                                 own count from their settings.)

Where the pins cannot hold (not x86-64, a CPU without AVX2 and FMA, a preset OPENBLAS_CORETYPE,
torch or numpy loaded before the pins, or the opt-out ``LORA_SITE_NUMERICS=native``) results
may differ from the freeze in the last bits; the stages then keep the committed bytes when a
re-run matches them within verify's tolerance (see freeze.settle).

Standard library only.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any, MutableMapping

ENV_MODE = "LORA_SITE_NUMERICS"          # "pinned" (default) or "native"
MODES = ("pinned", "native")
# Bump when a pin changes: the pins are part of every result's cache key.
PROFILE = "x86-64-v3/1"
# numpy 2.4's dispatch targets above AVX2 (numpy is pinned in requirements.lock; a name this
# numpy does not know is ignored with an ImportWarning, never an error).
NUMPY_ABOVE_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR"


@dataclass(frozen=True)
class Pin:
    var: str
    value: str
    needs_avx2: bool = False      # only set on a CPU that can run it (else: illegal instruction)
    respect_preset: bool = False  # a value the machine already sets wins


PINS: tuple[Pin, ...] = (
    Pin("ATEN_CPU_CAPABILITY", "avx2", needs_avx2=True),
    Pin("MKL_CBWR", "COMPATIBLE"),
    Pin("MKL_DYNAMIC", "FALSE"),
    Pin("ONEDNN_MAX_CPU_ISA", "AVX2"),
    Pin("NPY_DISABLE_CPU_FEATURES", NUMPY_ABOVE_AVX2),
    Pin("OPENBLAS_CORETYPE", "Haswell", needs_avx2=True, respect_preset=True),
    Pin("OMP_NUM_THREADS", "1"),
    Pin("MKL_NUM_THREADS", "1"),
    Pin("OPENBLAS_NUM_THREADS", "1"),
)
PIN_VARS = tuple(p.var for p in PINS)
# Libraries that read the pins when they load: pinning after them changes nothing.
LOADED_TOO_EARLY = ("torch", "numpy")


@dataclass(frozen=True)
class NumericEnv:
    """What pin() decided: the mode, whether the pins hold, and what it set."""

    mode: str
    holds: bool
    why_not: tuple[str, ...] = ()
    applied: dict[str, str] = field(default_factory=dict)   # variable -> value now in force

    def key(self) -> dict[str, Any] | str:
        """What keys results: the pins requested, never the machine (a freeze made on one
        machine stays valid on another)."""
        if self.mode == "native":
            return "native"
        return {"profile": PROFILE, **{p.var: p.value for p in PINS}}

    def describe(self) -> str:
        if self.mode == "native":
            return "native (LORA_SITE_NUMERICS=native: no pins)"
        if self.holds:
            return f"pinned {PROFILE}"
        return f"pinned {PROFILE}, not holding: {'; '.join(self.why_not)}"


_state: NumericEnv | None = None


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags as Linux reports them ('avx2', 'fma', 'avx512f', ...); empty
    where /proc/cpuinfo is unreadable."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def decide(environ: MutableMapping[str, str], *, machine: str, flags: set[str],
           loaded: tuple[str, ...] = ()) -> NumericEnv:
    """Set the pins in ``environ`` and say whether they hold. Pure apart from ``environ``."""
    mode = (environ.get(ENV_MODE) or "pinned").strip().lower()
    if mode not in MODES:
        from .errors import ConfigError

        raise ConfigError(f"{ENV_MODE}={environ.get(ENV_MODE)!r} is not a numerics mode",
                          field=ENV_MODE, hint="use pinned (the default) or native")
    if mode == "native":
        return NumericEnv("native", holds=False, why_not=("the opt-out LORA_SITE_NUMERICS=native",))
    why_not: list[str] = []
    x86 = machine.lower() in ("x86_64", "amd64")
    avx2 = x86 and {"avx2", "fma"} <= flags
    if not x86:
        why_not.append(f"{machine} is not x86-64")
    elif not avx2:
        why_not.append("this CPU lacks AVX2 or FMA")
    applied: dict[str, str] = {}
    for pin in PINS:
        if pin.needs_avx2 and not avx2:
            continue
        preset = environ.get(pin.var)
        if pin.respect_preset and preset not in (None, "", pin.value):
            why_not.append(f"{pin.var}={preset} is set by the environment")
            applied[pin.var] = preset
            continue
        environ[pin.var] = pin.value
        applied[pin.var] = pin.value
    if loaded:
        why_not.append(f"{' and '.join(loaded)} loaded before the pins were set")
    return NumericEnv("pinned", holds=not why_not, why_not=tuple(why_not), applied=applied)


def pin() -> NumericEnv:
    """Pin this process's numeric environment (idempotent) and return what holds. Call it
    before torch or numpy is imported; child processes inherit the variables."""
    global _state
    if _state is None:
        loaded = tuple(m for m in LOADED_TOO_EARLY if m in sys.modules)
        _state = decide(os.environ, machine=platform.machine(), flags=cpu_flags(),
                        loaded=loaded)
    return _state


def current() -> NumericEnv:
    """The pins of this process; pinned now if nothing did it first (a library user who
    imported numpy before us gets an honest 'not holding')."""
    return _state if _state is not None else pin()


def key() -> dict[str, Any] | str:
    """The numeric environment as it enters cache keys (no machine facts)."""
    return current().key()


def in_use() -> dict[str, Any]:
    """What the loaded libraries actually use, for provenance: the same on every x86-64
    machine where the pins hold, so a result made on one is byte-identical on another. Asks
    only libraries already imported (never imports torch or numpy itself)."""
    env = current()
    out: dict[str, Any] = {"mode": env.mode, "profile": PROFILE if env.mode == "pinned" else None,
                           "holds": env.holds, "arch": platform.machine(),
                           "env": {v: os.environ.get(v) for v in PIN_VARS}}
    if env.why_not:
        out["why_not"] = list(env.why_not)
    torch = sys.modules.get("torch")
    if torch is not None:
        out["aten_capability"] = torch.backends.cpu.get_cpu_capability()
        out["torch_threads"] = torch.get_num_threads()
    if "numpy" in sys.modules:
        out["numpy_simd"] = _numpy_dispatch()
        out["openblas_core"] = _openblas_core()
    return out


def _numpy_dispatch() -> str | None:
    """The highest of numpy's dispatch targets this process runs (X86_V3 when pinned)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:                 # another numpy layout: say nothing rather than guess
        return None
    enabled = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    return enabled[-1] if enabled else "baseline"


def _openblas_core() -> str | None:
    """The kernel family OpenBLAS chose (its own answer, read through ctypes)."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower()
                           and line.split()[-1].startswith("/")})
    except OSError:
        return None
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                value = fn()
                return value.decode("ascii", "replace").strip() if value else None
    return None


def reset_for_tests() -> None:
    """Forget the decision (tests of decide() through pin())."""
    global _state
    _state = None
