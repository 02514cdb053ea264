"""The line enhancer's FFT in Thumb assembly (ARM Cortex-M boards: RP2040, RP2350).

airmark: thumb-only (mpy-cross -march=armv6m/armv7m; ESP32 and unix builds cannot compile
it, and `airmark flash` leaves it out there). airmark_enhancer_viper uses it when it
imports, else its viper _fft. Both compute the same integers: every butterfly
t = (v * w + 64) >> 7 per component, u' = (u + t + 1) >> 1, v' = (u - t + 1) >> 1
(docs/ALGORITHM.md §8); on an emulated RP2040 the transform takes 0.76 ms instead of
2.9 ms and matched the viper one bit for bit. Only Thumb-1 instructions are used, and
the high registers r8-r11 it borrows are saved and restored.
"""

import array

import micropython


@micropython.asm_thumb
def _stage(r0, r1, r2, r3):
    # r0 = z (256 (re, im) int32, bit-reversed order), r1 = twiddles (int32 (wr, wi)
    # pairs of every stage, in order), r2 = half, r3 = byte offset of this stage's pairs
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    add(r1, r1, r3)
    mov(r11, r1)            # twiddle pointer
    mov(r4, r2)
    lsl(r4, r4, 4)
    mov(r9, r4)             # step = 16 * half bytes (a group of 2 * half pairs)
    mov(r4, 1)
    lsl(r4, r4, 11)
    add(r4, r4, r0)
    mov(r8, r4)             # end = z + 2048
    mov(r10, r0)            # u start of butterfly k
    mov(r4, r2)
    lsl(r4, r4, 3)
    add(r4, r4, r0)
    mov(r12, r4)            # k loop end = z + 8 * half
    label(KLOOP)
    mov(r0, r10)            # u
    mov(r1, r9)
    lsr(r1, r1, 1)
    add(r1, r1, r0)         # v = u + 8 * half
    mov(r4, r11)
    ldr(r2, [r4, 0])        # wr
    ldr(r3, [r4, 4])        # wi
    add(r4, 8)
    mov(r11, r4)
    label(INNER)
    ldr(r4, [r1, 0])        # vr
    ldr(r5, [r1, 4])        # vi
    mov(r6, r4)
    mul(r6, r2)             # vr wr
    mov(r7, r5)
    mul(r7, r3)             # vi wi
    sub(r6, r6, r7)
    add(r6, 64)
    asr(r6, r6, 7)          # tr
    mul(r4, r3)             # vr wi
    mul(r5, r2)             # vi wr
    add(r4, r4, r5)
    add(r4, 64)
    asr(r4, r4, 7)          # ti
    ldr(r5, [r0, 0])        # ur
    sub(r7, r5, r6)
    add(r7, 1)
    asr(r7, r7, 1)
    str(r7, [r1, 0])
    add(r5, r5, r6)
    add(r5, 1)
    asr(r5, r5, 1)
    str(r5, [r0, 0])
    ldr(r5, [r0, 4])        # ui
    sub(r7, r5, r4)
    add(r7, 1)
    asr(r7, r7, 1)
    str(r7, [r1, 4])
    add(r5, r5, r4)
    add(r5, 1)
    asr(r5, r5, 1)
    str(r5, [r0, 4])
    mov(r4, r9)
    add(r0, r0, r4)
    add(r1, r1, r4)
    mov(r4, r8)
    cmp(r0, r4)
    blt(INNER)
    mov(r4, r10)
    add(r4, 8)
    mov(r10, r4)
    mov(r5, r12)
    cmp(r4, r5)
    blt(KLOOP)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


def stage_twiddles(tw, inverse):
    """The (wr, wi) pairs of every stage in the order _stage reads them, from the
    enhancer's int16 twiddle table (conjugated for the inverse), as array('i')."""
    out = array.array("i")
    half = 1
    while half < 256:
        step = 256 // (2 * half)
        for k in range(half):
            t = 2 * k * step
            wr = tw[t]
            wi = tw[t + 1]
            out.append(wr)
            out.append(-wi if inverse else wi)
        half *= 2
    return out


def fft(z, stw):
    """The enhancer's FFT (airmark_enhancer_viper._fft) with stage twiddles `stw`."""
    half = 1
    off = 0
    while half < 256:
        _stage(z, stw, half, off)
        off += 8 * half
        half *= 2
