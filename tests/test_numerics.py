"""The numeric pins (generator/numerics.py): what they set, when they hold, and that a pinned
re-run reproduces the committed freeze bit for bit whatever SIMD level the machine offers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator.core import numerics

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "probes" / "numerics_probe.py"
AVX2_CPU = {"sse2", "avx", "avx2", "fma"}
AVX512_CPU = AVX2_CPU | {"avx512f", "avx512bw", "avx512vl"}


def decide(env: dict, machine: str = "x86_64", flags: set[str] = AVX512_CPU, loaded=()):
    return numerics.decide(env, machine=machine, flags=flags, loaded=loaded)


# ---------------------------------------------------------------------------------------------
# decide(): the pins, the opt-out, and where they cannot hold

def test_every_pin_is_set_on_an_x86_64_cpu_with_avx2():
    for flags in (AVX2_CPU, AVX512_CPU):
        env: dict = {}
        state = decide(env, flags=flags)
        assert state.holds and state.why_not == ()
        assert env == {p.var: p.value for p in numerics.PINS}
        assert env["ATEN_CPU_CAPABILITY"] == "avx2"
        assert env["MKL_CBWR"] == "COMPATIBLE"
        assert env["OPENBLAS_CORETYPE"] == "Haswell"
        assert env["NPY_DISABLE_CPU_FEATURES"] == "X86_V4 AVX512_ICL AVX512_SPR"


def test_the_pins_override_a_capability_the_environment_forces():
    env = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AUTO", "OMP_NUM_THREADS": "8"}
    state = decide(env)
    assert state.holds
    assert (env["ATEN_CPU_CAPABILITY"], env["MKL_CBWR"], env["OMP_NUM_THREADS"]) == \
        ("avx2", "COMPATIBLE", "1")


def test_a_preset_openblas_coretype_is_respected_and_the_pins_then_do_not_hold():
    env = {"OPENBLAS_CORETYPE": "SkylakeX"}
    state = decide(env)
    assert env["OPENBLAS_CORETYPE"] == "SkylakeX"
    assert not state.holds
    assert state.why_not == ("OPENBLAS_CORETYPE=SkylakeX is set by the environment",)
    # The same value as ours is no deviation.
    assert decide({"OPENBLAS_CORETYPE": "Haswell"}).holds


def test_a_cpu_without_avx2_gets_no_kernel_it_cannot_run():
    env: dict = {}
    state = decide(env, flags={"sse2", "avx"})
    assert "ATEN_CPU_CAPABILITY" not in env and "OPENBLAS_CORETYPE" not in env
    assert env["MKL_CBWR"] == "COMPATIBLE" and env["OMP_NUM_THREADS"] == "1"
    assert not state.holds and state.why_not == ("this CPU lacks AVX2 or FMA",)


def test_aarch64_is_not_pinned_to_x86_kernels():
    env: dict = {}
    state = decide(env, machine="aarch64", flags={"fp", "asimd"})
    assert "ATEN_CPU_CAPABILITY" not in env
    assert not state.holds and state.why_not == ("aarch64 is not x86-64",)


def test_pins_set_after_numpy_loaded_are_reported_as_not_holding():
    state = decide({}, loaded=("numpy",))
    assert not state.holds
    assert state.why_not == ("numpy loaded before the pins were set",)


def test_the_native_opt_out_sets_nothing_and_keys_results_apart():
    env = {numerics.ENV_MODE: "native"}
    state = decide(env)
    assert env == {numerics.ENV_MODE: "native"}
    assert state.mode == "native" and not state.holds
    assert state.key() == "native"
    assert state.key() != decide({}).key()


def test_a_bad_mode_is_a_one_line_error():
    from generator.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^LORA_SITE_NUMERICS: LORA_SITE_NUMERICS='fast' is "
                                          r"not a numerics mode \(use pinned \(the default\) "
                                          r"or native\)$"):
        decide({numerics.ENV_MODE: "fast"})


def test_the_key_names_the_pins_never_the_machine():
    keys = [decide({}, flags=f, machine=m).key()
            for f, m in ((AVX2_CPU, "x86_64"), (AVX512_CPU, "x86_64"), ({"asimd"}, "aarch64"))]
    assert keys[0] == keys[1] == keys[2]
    assert keys[0]["profile"] == numerics.PROFILE
    assert set(keys[0]) == {"profile", *numerics.PIN_VARS}


def test_cpu_flags_reads_linux_cpuinfo():
    text = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\nbugs\t\t: none\n"
    assert numerics.cpu_flags(text) == {"fpu", "sse2", "avx2", "fma", "avx512f"}
    assert numerics.cpu_flags("Features\t: fp asimd\n") == {"fp", "asimd"}
    assert numerics.cpu_flags("") == set()


def test_this_test_process_is_pinned_before_numpy_loaded():
    # conftest pins first; a suite that loaded numpy before it would compare bits by luck.
    state = numerics.current()
    assert state.mode == "pinned"
    if numerics.cpu_flags() >= {"avx2", "fma"} and os.uname().machine == "x86_64":
        assert state.holds, state.why_not
        assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"


# ---------------------------------------------------------------------------------------------
# Fresh interpreters: a pinned re-run against the committed freeze

def probe(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in numerics.PIN_VARS and k != numerics.ENV_MODE}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, str(PROBE)], env=env, capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_matches_freeze(found: dict) -> None:
    assert found["main_arrays_sha256"] == found["frozen_arrays_sha256"]
    assert found["main_metrics_equal"]
    assert found["audit_slice_values"] > 4000
    assert found["audit_slice_differ"] == {}


def pins_can_hold_here() -> bool:
    return os.uname().machine == "x86_64" and numerics.cpu_flags() >= {"avx2", "fma"}


@pytest.mark.slow
def test_a_pinned_rerun_reproduces_the_committed_freeze_bit_for_bit():
    found = probe({})
    if not pins_can_hold_here():
        pytest.fail(f"the pins cannot hold on this machine ({found['why_not']}): the freeze "
                    "is only reproduced bit for bit on x86-64 with AVX2")
    assert found["holds"] and found["capability"] == "AVX2"
    assert found["numerics"]["numpy_simd"] == "X86_V3"
    assert found["numerics"]["openblas_core"] == "Haswell"
    assert_matches_freeze(found)


# What an AVX2-only machine looks like to each layer, on a machine that has more.
EMULATED_AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": numerics.NUMPY_ABOVE_AVX2,
}


@pytest.mark.slow
def test_forced_avx512_and_forced_avx2_give_the_same_bits_once_pinned(capsys):
    if "avx512f" not in numerics.cpu_flags():
        pytest.skip("this CPU has no AVX-512: the forced-avx512 run was NOT checked here "
                    "(the AVX2 run is covered by the bit-for-bit freeze test)")
    forced_512 = probe({"ATEN_CPU_CAPABILITY": "avx512"})
    forced_2 = probe(EMULATED_AVX2_MACHINE)
    for found in (forced_512, forced_2):
        assert found["capability"] == "AVX2", "the pins did not override the forced capability"
        assert_matches_freeze(found)
    assert forced_512["main_arrays_sha256"] == forced_2["main_arrays_sha256"]
    # Without the pins this machine really runs its AVX-512 kernels: the comparison above is
    # between two different native levels, not two names for one.
    native = probe({"ATEN_CPU_CAPABILITY": "avx512", numerics.ENV_MODE: "native"})
    assert native["capability"] == "AVX512"
    with capsys.disabled():
        same = native["main_arrays_sha256"] == native["frozen_arrays_sha256"]
        print(f"\n[numerics] unpinned AVX-512 run: main arrays "
              f"{'identical to' if same else 'differ from'} the freeze, "
              f"{len(native['audit_slice_differ'])} audit arrays differ")
