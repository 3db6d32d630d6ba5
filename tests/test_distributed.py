"""What this process may run on: which machines count as computing bf16 natively (``runtime.bf16 =
"auto"``) and whose CPU it is (the fp32 product library ``"auto"`` picks)."""

from __future__ import annotations

import pytest
import torch

from xstilts import distributed


@pytest.mark.parametrize(("avx512_bf16", "amx", "native"),
                         [(False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_a_cpu_is_native_with_avx512_bf16_or_amx(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool,
                                                 native: bool) -> None:
    monkeypatch.setattr(distributed, "process_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert distributed.native_bf16() is native


def test_a_gpu_is_native_where_torch_says_it_supports_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "process_device", lambda: torch.device("cuda"))
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert distributed.native_bf16() is supported
    monkeypatch.setattr(distributed, "process_device", lambda: torch.device("mps"))
    assert distributed.native_bf16() is False


def test_this_machine_answers_as_its_cpu_flags_do(cpu_flags: set[str]) -> None:
    """On a CPU-only machine the answer is the CPU's own: AVX-512 BF16 or AMX (lscpu's flags)."""
    if torch.cuda.is_available():
        pytest.skip("a GPU machine answers for its GPU")
    assert distributed.native_bf16() is bool({"avx512_bf16", "amx_tile"} & cpu_flags)



@pytest.fixture
def cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A Linux machine whose /proc/cpuinfo is ``tmp_path / "cpuinfo"`` (write it to set the vendor);
    ``amd_cpu``'s cached answer cleared before and after, so no test sees another's machine."""
    monkeypatch.setattr(distributed, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(distributed.platform, "system", lambda: "Linux")
    distributed.amd_cpu.cache_clear()
    yield tmp_path / "cpuinfo"
    distributed.amd_cpu.cache_clear()


@pytest.mark.parametrize(("text", "amd"), [("vendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2\n", True),
                                           ("vendor_id\t: GenuineIntel\nflags\t\t: fpu avx512f\n", False)])
def test_the_vendor_is_read_from_cpuinfo(cpuinfo, text: str, amd: bool) -> None:
    """Which fp32 library ``"auto"`` picks follows the vendor (models/linear.py, models/openblas.py)."""
    cpuinfo.write_text(text)
    assert distributed.amd_cpu() is amd


def test_an_unreadable_cpuinfo_is_not_amd(cpuinfo) -> None:
    assert not cpuinfo.exists()
    assert distributed.amd_cpu() is False
