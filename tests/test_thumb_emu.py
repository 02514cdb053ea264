"""The board's machine code, run without a board: mpy-cross compiles the detector's viper
kernels (firmware/airmark_viper.py) and the line enhancer's Thumb hop
(firmware/airmark_enhancer_thumb.py) for armv6m (RP2040) and armv7m (RP2350), and
tools/thumb_emu.py runs that code on an emulated M-profile core (unicorn), with the part of
MicroPython's runtime that viper calls answered in Python, against the committed golden
vectors and the host's numpy core, after checking that the armv6m code holds only
instructions an RP2040's Cortex-M0+ has."""

import array
import json
import os
import sys

import numpy as np
import pytest

from test_enhancer import awkward_signal, enh  # noqa: F401 (enh: a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)

import thumb_emu  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "golden")
GOLDEN_DW1 = os.path.join(ROOT, "tests", "golden-dw1")
GOLDEN_ENH = os.path.join(ROOT, "tests", "golden-enh")
ARMV6M = 4  # MP_NATIVE_ARCH_ARMV6M in a .mpy header


@pytest.fixture(scope="module")
def hop_code(mpy_cross_once):
    return {arch: thumb_emu.compile_thumb(arch, mpy_cross=mpy_cross_once)
            for arch in thumb_emu.ARCHES}


@pytest.fixture(scope="module")
def viper_code(mpy_cross_once):
    return {arch: thumb_emu.compile_viper(arch, mpy_cross=mpy_cross_once)
            for arch in thumb_emu.ARCHES}


@pytest.fixture(scope="module")
def enh_viper_code(mpy_cross_once):
    return thumb_emu.compile_viper("armv6m", source=thumb_emu.ENH_VIPER_SOURCE,
                                   mpy_cross=mpy_cross_once)


def test_the_enhancers_viper_kernels_on_a_32_bit_core_replay_the_golden_vector(
        viper_code, enh_viper_code):
    """The ESP32's enhancer path (viper kernels, no Thumb module) with 32-bit machine ints,
    which CI's 64-bit unix MicroPython does not have: tests/golden-enh bit-exact."""
    import soundfile as sf

    import airmark_key

    with open(os.path.join(GOLDEN_ENH, "key.json")) as f:
        key = airmark_key.validate(json.load(f))
    with open(os.path.join(GOLDEN_ENH, "expected.json")) as f:
        want = json.load(f)
    x, _ = sf.read(os.path.join(GOLDEN_ENH, "input.wav"), dtype="int16")
    res = thumb_emu.replay_samples(key, x, want, "armv6m", cost_hops=1,
                                   viper_codes=viper_code["armv6m"], viper_only=True,
                                   enhancer_viper_codes=enh_viper_code)
    assert res["enhancer"] == "viper" and res["hops"] == res["expected_hops"] > 600
    assert "matched_filters" not in res["kernels_m0plus_cycles_per_hop_by_name"]
    assert res["kernel_path"] == "viper,enhancer:viper"
    assert res["mismatching_hops"] == 0 and res["differing_scores"] == 0
    assert res["events"] == res["expected_events"] and len(res["events"]) == 1
    # the viper enhancer does far more work per hop than the Thumb one
    assert res["enhancer_m0plus_cycles_per_hop"] > 3 * 94000


@pytest.fixture(scope="module")
def mpy_cross_once():
    from conftest import require_tool

    return require_tool("mpy-cross")


def patched_source(tmp_path, old, new, source=thumb_emu.THUMB_SOURCE):
    """A copy of a firmware module (the enhancer's Thumb module unless told) with one line
    changed, as a wrong edit would."""
    with open(source) as f:
        src = f.read()
    assert src.count(old) == 1, old
    path = tmp_path / os.path.basename(source)
    path.write_text(src.replace(old, new))
    return str(path)


@pytest.mark.parametrize("arch", sorted(thumb_emu.ARCHES))
def test_the_compiled_thumb_hop_replays_the_enhancer_golden_vector(hop_code, viper_code, mf_code,
                                                                  arch):
    """Every hop's correlations and matched-filter sums, the event and every fixed-point
    score of tests/golden-enh, with machine code doing the enhancer's whole hop and the
    detector's kernels."""
    res = thumb_emu.replay_golden(GOLDEN_ENH, arch, cost_hops=2, thumb_code=hop_code[arch],
                                  viper_codes=viper_code[arch], mf_code=mf_code[arch])
    assert res["line_enhancer"] and res["hops"] == res["expected_hops"] > 600
    assert res["mismatching_hops"] == 0
    assert res["events"] == res["expected_events"] and len(res["events"]) == 1
    assert res["differing_scores"] == 0
    assert res["cost_hops"] == 2
    # a 128-point transform each way alone is 7 stages x 64 butterflies
    assert res["enhancer_instructions_per_hop"] > 2 * 7 * 64 * 10
    assert res["enhancer_m0plus_cycles_per_hop"] > res["enhancer_instructions_per_hop"]
    assert res["kernel_calls"] == 4 * res["hops"]  # three viper kernels, the Thumb filters
    # the enhancer's own path is the tool's ThumbHop here, in place of its numpy hop
    assert res["kernel_path"].startswith("viper+thumb,enhancer:")


@pytest.fixture(scope="module")
def mf_code(mpy_cross_once):
    return {arch: thumb_emu.compile_pairs_thumb(arch, mpy_cross=mpy_cross_once)
            for arch in thumb_emu.ARCHES}


@pytest.mark.parametrize("arch, golden, viper_only", [
    ("armv6m", GOLDEN, False), ("armv6m", GOLDEN_DW1, False), ("armv7m", GOLDEN, False),
    ("armv6m", GOLDEN, True), ("armv6m", GOLDEN_DW1, True)])
def test_the_compiled_kernels_replay_the_golden_vectors(viper_code, mf_code, arch, golden,
                                                        viper_only):
    """The plain keys' path on a board: the viper kernels and, on ARM, hop_pairs' work in
    Thumb assembly (or all in viper, as an ESP32 runs them), as machine code with 32-bit
    machine ints: every integer of the vector."""
    res = thumb_emu.replay_golden(golden, arch, cost_hops=1, viper_codes=viper_code[arch],
                                  mf_code=mf_code[arch], viper_only=viper_only)
    assert not res["line_enhancer"] and res["hops"] == res["expected_hops"] > 600
    assert res["mismatching_hops"] == 0 and res["differing_scores"] == 0
    assert res["events"] == res["expected_events"] and len(res["events"]) == 1
    assert res["kernel_calls"] == (3 if viper_only else 4) * res["hops"]  # Thumb: features, pairs (2), best
    assert res["kernels_m0plus_cycles_per_hop"] > res["kernels_instructions_per_hop"] > 1000
    by_name = res["kernels_m0plus_cycles_per_hop_by_name"]
    assert ("matched_filters" in by_name) != viper_only and ("pair_stats" in by_name) != viper_only
    assert (by_name.get("hop_pairs", 0) > 0) == viper_only
    assert (by_name.get("features", 0) > 0) == viper_only  # in Thumb: hop_features
    assert (by_name.get("hop_features", 0) > 0) != viper_only
    assert res["kernel_path"] == ("viper" if viper_only else "viper+thumb")


def test_the_thumb_pairs_are_thumb1_and_cheaper_than_viper(viper_code, mf_code):
    """The detector's Thumb functions hold only ARMv6-M instructions, and the whole point of
    them: the hop's kernels cost fewer Cortex-M0+ cycles with them than with viper's
    hop_pairs (cycle counts of the same machine code, not timings)."""
    assert set(mf_code["armv6m"]) == {"pair_stats", "matched_filters", "hop_features"}
    for code in mf_code["armv6m"].values():
        assert thumb_emu.thumb1_violations(code) == []
    cycles = {}
    by_name = {}
    for viper_only in (False, True):
        res = thumb_emu.replay_golden(GOLDEN, "armv6m", cost_hops=4,
                                      viper_codes=viper_code["armv6m"], mf_code=mf_code["armv6m"],
                                      viper_only=viper_only)
        cycles[viper_only] = res["kernels_m0plus_cycles_per_hop"]
        by_name[viper_only] = res["kernels_m0plus_cycles_per_hop_by_name"]
    assert cycles[False] < cycles[True]
    assert by_name[False]["hop_features"] < by_name[True]["features"]
    assert by_name[False]["pair_stats"] + by_name[False]["matched_filters"] < by_name[True]["hop_pairs"]


@pytest.mark.parametrize("old, new", [
    # matched_filters: the offset binary applied with the wrong bit (0x4000, not 0x8000)
    ("    lsl(r4, r4, 15)             # 0x8000", "    lsl(r4, r4, 14)             # 0x4000"),
    # pair_stats: the D leaving the window read unsigned (ldrh for ldrsh)
    ("    data(2, 0x5E51)             # ldrsh(r1, [r2, r1])",
     "    data(2, 0x5A51)             # ldrh(r1, [r2, r1])"),
    # hop_features: x[n-7] read for x[n-8], one sample off in the comb filter
    ("    ldrh(r4, [r0, 2])           # x[n-8]", "    ldrh(r4, [r0, 4])           # x[n-7]"),
], ids=["matched_filters", "pair_stats", "hop_features"])
def test_a_wrong_edit_of_a_detector_thumb_function_is_caught(tmp_path, viper_code,
                                                             mpy_cross_once, old, new):
    """One wrong line in each of airmark_viper_thumb's functions: the replay must fail."""
    src = patched_source(tmp_path, old, new, thumb_emu.MF_THUMB_SOURCE)
    code = thumb_emu.compile_pairs_thumb("armv6m", source=src, mpy_cross=mpy_cross_once)
    res = thumb_emu.replay_golden(GOLDEN, "armv6m", cost_hops=0, viper_codes=viper_code["armv6m"],
                                  mf_code=code)
    assert res["mismatching_hops"] > 0


def test_a_thumb_function_that_does_not_restore_a_callers_register_is_refused(
        tmp_path, viper_code, mpy_cross_once):
    """r11 left holding pair_stats' popcount constant: every integer could still come out
    right, but MicroPython's caller keeps its own values in r4-r11, so the tool refuses it."""
    end = ("label(PS_DONE)\n    pop({r4, r5, r6})\n    pop({r0, r1, r2, r3})\n"
           "    pop({r4, r5, r6, r7})\n    mov(r8, r4)\n    mov(r9, r5)\n    mov(r10, r6)\n")
    src = patched_source(tmp_path, end + "    mov(r11, r7)\n", end, thumb_emu.MF_THUMB_SOURCE)
    code = thumb_emu.compile_pairs_thumb("armv6m", source=src, mpy_cross=mpy_cross_once)
    with pytest.raises(RuntimeError, match="pair_stats returned with r11 changed"):
        thumb_emu.replay_golden(GOLDEN, "armv6m", cost_hops=0, viper_codes=viper_code["armv6m"],
                                mf_code=code)


@pytest.mark.parametrize("line_enhancer, shape", [
    (False, {}), (True, {}), (False, {"block_samples": 256, "pattern_blocks": 2})])
def test_any_key_runs_against_the_hosts_core(tmp_path, viper_code, hop_code, mf_code,
                                             line_enhancer, shape):
    """--key: the golden input through a default-shaped key (six lag periods, not the
    golden keys' three), compared hop by hop with the host's numpy core. A two-block
    pattern has periods too short for the drift offsets: one lag pair each, the Thumb
    matched filters' other loop."""
    from airmark import keys

    key = keys.generate(11, line_enhancer=line_enhancer, **shape)
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    assert key["lag_periods"] == 6
    if shape:
        import airmark_detector

        grp = list(airmark_detector.Detector(key)._grp)
        assert 1 in grp[1::4] and 3 in grp[1::4]  # periods of one pair and of three
    res = thumb_emu.replay_golden(GOLDEN, "armv6m", cost_hops=1, key_path=str(path),
                                  viper_codes=viper_code["armv6m"],
                                  thumb_code=hop_code["armv6m"], mf_code=mf_code["armv6m"])
    assert res["line_enhancer"] == line_enhancer
    assert res["hops"] == res["expected_hops"] > 600
    assert res["mismatching_hops"] == 0 and res["differing_scores"] == 0
    assert res["events"] == res["expected_events"]


def test_a_wrong_edit_of_a_viper_kernel_is_caught(tmp_path, mpy_cross_once):
    """The feature's comparison made non-strict: the replay of the viper path (the
    ESP32's; ARM boards take the features in Thumb) must fail."""
    src = patched_source(tmp_path, "            if a + a1 < b + b1:",
                         "            if a + a1 <= b + b1:", thumb_emu.VIPER_SOURCE)
    codes = thumb_emu.compile_viper("armv6m", source=src, mpy_cross=mpy_cross_once)
    res = thumb_emu.replay_golden(GOLDEN, "armv6m", cost_hops=0, viper_codes=codes,
                                  viper_only=True)
    assert res["mismatching_hops"] > 0


def test_the_runtime_shim_answers_what_viper_calls_and_refuses_the_rest(tmp_path,
                                                                         mpy_cross_once):
    """Argument conversion, boxing an int result, None, and floor division and modulo
    with Python's signs; a global lookup is refused in one line."""
    src = tmp_path / "k.py"
    src.write_text(
        "import micropython\n"
        "LIMIT = 3\n"
        "@micropython.viper\n"
        "def divmod_sum(buf: ptr32, n: int, d: int) -> int:\n"
        "    buf[0] = n // d\n"
        "    buf[1] = n % d\n"
        "    return int(buf[0]) * 1000 + int(buf[1])\n"
        "@micropython.viper\n"
        "def nothing(buf: ptr8):\n"
        "    buf[0] = 7\n"
        "@micropython.viper\n"
        "def uses_a_global(n: int) -> int:\n"
        "    return n + int(LIMIT)\n")
    codes = thumb_emu.compile_viper("armv6m", source=str(src), mpy_cross=mpy_cross_once)
    assert list(codes) == ["divmod_sum", "nothing", "uses_a_global"]
    k = thumb_emu.ViperKernels(codes, thumb_emu.Machine("armv6m"))
    buf = array.array("i", [0, 0])
    assert k.divmod_sum(buf, -7, 2) == -4 * 1000 + 1 and list(buf) == [-4, 1]
    assert k.divmod_sum(buf, 7, -2) == -4 * 1000 - 1 and list(buf) == [-4, -1]
    b8 = bytearray(2)
    assert k.nothing(b8) is None and b8 == bytearray([7, 0])
    with pytest.raises(thumb_emu.ToolError, match=r"mp_fun_table entry \d+, which the emulator"):
        k.uses_a_global(1)


def worst_case(kind, seconds=2.0):
    """The full-scale inputs of test_enhancer's bounds test: they drive the state to its
    proven limits, where a wrapped 32-bit sum in the assembly would show."""
    n = int(seconds * 16000)
    if kind == "square":
        x = np.where(np.sin(2 * np.pi * 250 * np.arange(n) / 16000) >= 0, 32767, -32768)
    elif kind == "clicks":
        x = np.zeros(n)
        x[::997] = 32767
    else:
        x = np.clip(np.random.default_rng(4).normal(0, 30000, n), -32768, 32767)
    return x.astype(np.int16)


@pytest.mark.parametrize("band_hz, signal", [
    (None, "awkward"), ((150, 6000), "awkward"), ((3000, 3100), "awkward"),
    (None, "square"), ((150, 6000), "clicks"), (None, "clipped noise")])
def test_the_thumb_hop_equals_the_numpy_enhancer_hop_by_hop(enh, hop_code, band_hz, signal):
    """A tone in noise that drops 40 dB and then clips (the AGC steps both ways), over every
    bin, the key's band and a narrow band, and full-scale worst cases: each hop's output
    and the state at the end."""
    x = awkward_signal(seconds=2.0, seed=3) if signal == "awkward" else worst_case(signal)
    ref = enh.LineEnhancer(use_kernels=False, band_hz=band_hz)
    emu = thumb_emu.ThumbHop(hop_code["armv6m"], enh.LineEnhancer(use_kernels=False,
                                                                  band_hz=band_hz))
    want = np.zeros(enh.HOP, dtype=np.int16)
    got = array.array("h", bytes(2 * enh.HOP))
    differing = 0
    gains = set()
    for i in range(len(x) // enh.HOP):
        hop = x[i * enh.HOP:(i + 1) * enh.HOP]
        ref.process(hop, want)
        emu.process(hop, got)
        differing += list(got) != want.tolist()
        gains.add(emu.array("head", "i", 1)[0])
    assert differing == 0
    if signal == "awkward":
        assert len(gains) > 3  # the AGC moved
    assert list(emu.array("head", "i", len(ref.head))) == list(ref.head)
    assert list(emu.array("rxx", "i", len(ref.rxx))) == list(ref.rxx)
    assert list(emu.array("rxy", "i", len(ref.rxy))) == list(ref.rxy)
    assert list(emu.array("past", "i", len(ref.past))) == list(ref.past)
    assert list(emu.array("tail", "i", len(ref.tail))) == list(ref.tail)


def test_a_wrong_edit_of_the_assembly_is_caught(tmp_path, mpy_cross_once):
    """A butterfly that rounds its product half down instead of half up: the golden replay
    must fail."""
    src = patched_source(tmp_path, "    sub(r6, r6, r7)\n    add(r6, 64)\n    asr(r6, r6, 7)          # tr",
                         "    sub(r6, r6, r7)\n    add(r6, 63)\n    asr(r6, r6, 7)          # tr")
    code = thumb_emu.compile_thumb("armv6m", source=src, mpy_cross=mpy_cross_once)
    res = thumb_emu.replay_golden(GOLDEN_ENH, "armv6m", cost_hops=0, thumb_code=code)
    assert res["mismatching_hops"] > 0


def test_thumb2_is_refused_for_the_rp2040_and_run_for_the_rp2350(tmp_path, mpy_cross_once, enh):
    """add.w is Thumb-2: an RP2040 would fault on it. The emulator's core would run it, so
    the tool refuses armv6m code that holds it; the RP2350's armv7m build runs it."""
    src = patched_source(tmp_path, "    push({r4, r5, r6, r7})\n    str(r1, [r0, 60])",
                         "    push({r4, r5, r6, r7})\n    data(2, 0xF104, 0x0400)\n"
                         "    str(r1, [r0, 60])")  # add.w r4, r4, #0 (r4 is free here)
    v6 = thumb_emu.compile_thumb("armv6m", source=src, mpy_cross=mpy_cross_once)
    bad = thumb_emu.thumb1_violations(v6)
    assert [enc for _, enc in bad] == ["f104 0400"]
    with pytest.raises(thumb_emu.ToolError, match="ARMv6-M core lacks"):
        thumb_emu.ThumbHop(v6, enh.LineEnhancer(use_kernels=False))
    v7 = thumb_emu.compile_thumb("armv7m", source=src, mpy_cross=mpy_cross_once)
    x = awkward_signal(seconds=0.1, seed=5)[:enh.HOP]
    out = array.array("h", bytes(2 * enh.HOP))
    m33 = thumb_emu.ThumbHop(v7, enh.LineEnhancer(use_kernels=False), arch="armv7m")
    for _ in range(3):
        m33.process(x, out)
    ref = enh.LineEnhancer(use_kernels=False)
    want = np.zeros(enh.HOP, dtype=np.int16)
    for _ in range(3):
        ref.process(x, want)
    assert list(out) == want.tolist() and any(out)


def test_the_firmwares_armv6m_hop_is_thumb1_and_uses_bl(hop_code):
    assert thumb_emu.thumb1_violations(hop_code["armv6m"]) == []
    # cbz, cbnz, it and a Thumb-2 load are caught; bl is not
    assert [o for o, _ in thumb_emu.thumb1_violations(
        bytes.fromhex("00b1" "00b9" "08bf" "d0f80000" "00f000f8" "0120"))] == [0, 2, 4, 6]


def test_the_mpy_reader_finds_both_asm_functions(tmp_path, mpy_cross_once):
    import subprocess

    out = tmp_path / "t.mpy"
    subprocess.run([mpy_cross_once, "-march=armv6m", "-o", str(out), thumb_emu.THUMB_SOURCE],
                   check=True)
    data = out.read_bytes()
    arch, funcs = thumb_emu.read_mpy(data)
    assert arch == ARMV6M
    asm = [(f.n_args, len(f.code)) for f in funcs if f.kind == thumb_emu.KIND_ASM]
    assert [n for n, _ in asm] == [4, 1]  # hop, then _addr
    assert asm[0][1] > 1000 and asm[1][1] < 16
    # Python functions are bytecode
    assert sum(f.kind == thumb_emu.KIND_BYTECODE for f in funcs) >= 5
    with pytest.raises(ValueError, match="truncated"):
        thumb_emu.read_mpy(data[:len(data) // 2])
    with pytest.raises(ValueError, match="not a .mpy"):
        thumb_emu.read_mpy(b"MX\x10\x1f")


def test_the_cycle_model_follows_the_cortex_m0plus_timings():
    c = thumb_emu.m0plus_cycles
    assert c(0x1840, False) == 1  # adds r0, r0, r1
    assert c(0x6808, False) == 2  # ldr r0, [r1]
    assert c(0x5888, False) == 2  # ldr r0, [r1, r2]
    assert c(0x8808, False) == 2  # ldrh r0, [r1]
    assert c(0x9800, False) == 2  # ldr r0, [sp]
    assert c(0xC93C, False) == 5  # ldmia r1!, {r2-r5}
    assert c(0xB5F0, False) == 6  # push {r4-r7, lr}
    assert c(0xBDF0, False) == 7  # pop {r4-r7, pc}
    assert c(0xBCF0, False) == 5  # pop {r4-r7}
    assert c(0xD001, True) == 2 and c(0xD001, False) == 1  # beq
    assert c(0xE7FE, True) == 2  # b
    assert c(0x4770, True) == 2  # bx lr
    assert c(0x4348, False) == 1  # muls: the RP2040's single-cycle multiplier


def test_the_tool_prints_its_verdict_and_cost_as_json(mpy_cross_once):
    import subprocess

    r = subprocess.run([sys.executable, os.path.join(TOOLS, "thumb_emu.py"), "--json",
                        "--cost-hops", "1", "--arch", "armv7m"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["pass"] is True and res["isa"].startswith("ARMv7-M")
    assert res["mismatching_hops"] == 0 and res["cost_hops"] == 1
    assert res["enhancer_m0plus_cycles_per_hop"] >= res["enhancer_instructions_per_hop"] > 0
    assert res["kernels_m0plus_cycles_per_hop"] >= res["kernels_instructions_per_hop"] > 0


@pytest.mark.parametrize("line_enhancer, viper_only", [(False, False), (True, False),
                                                       (False, True), (True, True)])
def test_32_bit_machine_ints_hold_on_worst_case_input(viper_code, hop_code, enh_viper_code,
                                                      mf_code, line_enhancer, viper_only):
    """The integer bounds of docs/ALGORITHM.md §4 on a 32-bit core: a strongly marked clip
    driven 12 dB into clipping and resampled by +300 ppm, a full-scale square wave, clicks,
    clipped noise and a DC offset at full scale, through a default-shaped (J = 6) key, plain
    and with the enhancer, as an RP2040 runs it (Thumb modules) and as an ESP32 does (viper
    alone); the emulated board must compute what the host's int64 numpy core computes,
    hop by hop."""
    import make_golden
    import signals as sg
    from airmark import keys

    key = keys.generate(21, threshold=6.0, line_enhancer=line_enhancer)
    host = sg.music_like(4.0, seed=3)
    y, _ = sg.embed_reference(host, key, 0.5, 0.0)
    marked = np.clip(sg.resample_ppm(sg.to_int16(y, peak=1.0).astype(float) * 4, 300),
                     -32768, 32767).astype(np.int16)
    x = np.concatenate([marked, worst_case("square", 1.0), worst_case("clicks", 1.0),
                        worst_case("clipped noise", 1.0), np.full(8000, 32767, np.int16),
                        np.full(8000, -32768, np.int16)])
    want = make_golden.expected(key, x)
    res = thumb_emu.replay_samples(key, x, want, "armv6m", cost_hops=0,
                                   viper_codes=viper_code["armv6m"], thumb_code=hop_code["armv6m"],
                                   viper_only=viper_only, enhancer_viper_codes=enh_viper_code,
                                   mf_code=mf_code["armv6m"])
    assert res["hops"] == len(want["hops"]) > 900
    assert res["mismatching_hops"] == 0 and res["differing_scores"] == 0
    assert res["events"] == want["events"]
    assert max(max(abs(v) for v in num) for _, num in want["hops"]) > 0


def test_the_i2s_capture_kernel_copies_the_top_half_words_on_a_32_bit_core(mpy_cross_once):
    """airmark_capture_viper.top16, as armv6m machine code: the high 16 bits of 32-bit
    little-endian I2S words, negative samples included, from a start word."""
    source = os.path.join(ROOT, "firmware", "airmark_capture_viper.py")
    codes = thumb_emu.compile_viper("armv6m", source=source, mpy_cross=mpy_cross_once)
    k = thumb_emu.ViperKernels(codes, thumb_emu.Machine("armv6m"))
    rng = np.random.default_rng(9)
    words = rng.integers(-2 ** 31, 2 ** 31, 64, dtype=np.int64).astype(np.int32)
    words[:4] = [-2 ** 31, 2 ** 31 - 1, -1, 0x00018000]
    src = array.array("h", words.tobytes())
    dst = array.array("h", bytes(2 * 60))
    assert k.top16(src, dst, 4, 60) is None
    assert list(dst) == (words[4:] >> 16).tolist()
    k.top16(src, dst, 0, 4)
    assert list(dst[:4]) == [-32768, 32767, -1, 1]
