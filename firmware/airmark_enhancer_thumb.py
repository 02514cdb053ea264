"""The line enhancer's frame, FFT, split, predictor, merge and overlap-add in Thumb
assembly (ARM Cortex-M boards: RP2040, RP2350).

airmark: thumb-only (mpy-cross -march=armv6m/armv7m; ESP32 and unix builds cannot compile
it, and `airmark flash` leaves it out there). airmark_enhancer_viper uses it when it
imports, else its viper kernels (_peak, _frame, _fft, _split, _predict, _merge,
_overlap_add). Both compute the same integers: every butterfly t = (v * w + 64) >> 7 per
component, u' = (u + t + 1) >> 1, v' = (u - t + 1) >> 1 (docs/ALGORITHM.md §8). On an
emulated RP2040 a 128-point transform takes 0.19 ms instead of 1.26 ms and the predictor
0.32 ms instead of 0.83 (its divisions: 8-bit restoring division, unrolled, saturated at
|a| = 256), and the whole enhancer matched its viper twin bit for bit. Only Thumb-1
instructions are used, and the high registers r8-r11 they borrow are saved and restored.
"""

import array

import micropython


@micropython.asm_thumb
def fft(r0, r1):
    # r0 = z (128 (re, im) int32, bit-reversed order in, natural order out), r1 = the
    # (wr, wi) int32 pairs of every stage, in the order the stages read them
    # (stage_twiddles): seven stages, half = 1, 2, .. 64
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r11, r1)            # twiddle pointer: runs through every stage's pairs in turn
    mov(r4, 16)
    mov(r9, r4)             # step = 16 * half bytes (a group of 2 * half pairs)
    mov(r4, 1)
    lsl(r4, r4, 10)
    add(r4, r4, r0)
    mov(r8, r4)             # end = z + 1024
    mov(r10, r0)            # u start of butterfly k
    mov(r4, r0)
    add(r4, 8)
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
    # next stage: half doubles; z = (k loop end) - 8 * half
    mov(r4, r9)             # 16 * half = 8 * (new half)
    lsr(r6, r4, 1)
    mov(r5, r12)
    sub(r5, r5, r6)         # z
    mov(r10, r5)
    add(r6, r5, r4)
    mov(r12, r6)            # k loop end = z + 8 * (new half)
    lsl(r6, r4, 1)
    mov(r9, r6)             # step = 16 * (new half)
    mov(r6, r8)
    sub(r6, r6, r5)         # 1024: the last stage had half = 64
    cmp(r4, r6)
    blt(KLOOP)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


@micropython.asm_thumb
def _shift_in(r0, r1):
    # r0 = xin (256 int16), r1 = x (128 int16): xin[:128] = xin[128:]; xin[128:] = x;
    # returns the hop's peak |x| (the AGC's input)
    mov(r2, 0)
    mov(r3, 255)
    add(r3, 1)
    mov(r12, r0)            # xin
    mov(r0, 0)              # peak
    label(LOOP)
    mov(r4, r12)
    add(r4, r4, r2)
    mov(r5, r4)
    add(r5, 255)
    add(r5, 1)
    ldrh(r6, [r5, 0])
    strh(r6, [r4, 0])
    add(r7, r1, r2)
    ldrh(r6, [r7, 0])
    strh(r6, [r5, 0])
    lsl(r6, r6, 16)
    asr(r6, r6, 16)
    bpl(POS)
    neg(r6, r6)
    label(POS)
    cmp(r6, r0)
    ble(NEXT)
    mov(r0, r6)
    label(NEXT)
    add(r2, 2)
    cmp(r2, r3)
    blt(LOOP)


@micropython.asm_thumb
def _window(r0, r1, r2, r3):
    # r0 = xin (256 int16), r1 = wrev (int32: win[n] | o[n] << 16, o[n] the byte offset of
    # z[2 rev[n >> 1] + (n & 1)]), r2 = z, r3 = g: z at o[n] = ((x[n] win[n] << k) + r) >> s,
    # where g <= 8 gives k = 0, s = 8 - g, r = (1 << s) >> 1 (rounding half up) and g > 8
    # gives k = g - 8, s = r = 0
    mov(r4, r8)
    mov(r5, r9)
    push({r4, r5})
    mov(r4, 1)
    lsl(r4, r4, 10)
    add(r4, r4, r1)
    mov(r8, r4)             # end of wrev
    mov(r7, 0)              # k
    cmp(r3, 8)
    ble(RIGHT)
    sub(r7, r3, 0)
    sub(r7, 8)
    mov(r3, 8)              # so that s = 0
    label(RIGHT)
    mov(r4, 8)
    sub(r3, r4, r3)         # s
    mov(r4, 1)
    lsl(r4, r3)
    asr(r4, r4, 1)
    mov(r9, r4)             # r
    label(LOOP)
    ldrh(r4, [r0, 0])
    lsl(r4, r4, 16)
    asr(r4, r4, 16)
    ldr(r5, [r1, 0])
    lsl(r6, r5, 16)
    lsr(r6, r6, 16)
    lsr(r5, r5, 16)
    mul(r4, r6)
    lsl(r4, r7)
    mov(r6, r9)
    add(r4, r4, r6)
    asr(r4, r3)
    add(r5, r5, r2)
    str(r4, [r5, 0])
    add(r0, 2)
    add(r1, 4)
    mov(r6, r8)
    cmp(r1, r6)
    blt(LOOP)
    pop({r4, r5})
    mov(r8, r4)
    mov(r9, r5)


@micropython.asm_thumb
def _overlap_add(r0, r1, r2, r3):
    # r0 = z (the frame f: 256 int32), r1 = win (256 int16, <= 256), r2 = tail (128 int32),
    # r3 = out (128 int16): out[n] = clip((f[n] win[n] + tail[n] + 128) >> 8);
    # tail[n] = f[n + 128] win[n + 128]
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    push({r4, r5, r6})
    mov(r4, 127)
    lsl(r4, r4, 8)
    add(r4, 255)
    mov(r9, r4)             # 32767
    mov(r4, 255)
    add(r4, 1)
    add(r4, r4, r3)
    mov(r8, r4)             # end of out
    mov(r4, 1)
    lsl(r4, r4, 9)
    mov(r10, r4)            # 512: f[n] to f[n + 128]
    label(LOOP)
    ldr(r4, [r0, 0])
    ldrh(r5, [r1, 0])
    mul(r4, r5)
    ldr(r5, [r2, 0])
    add(r4, r4, r5)
    add(r4, 128)
    asr(r4, r4, 8)
    mov(r5, r9)
    cmp(r4, r5)
    ble(NOTHI)
    mov(r4, r5)
    label(NOTHI)
    mvn(r6, r5)
    cmp(r4, r6)
    bge(NOTLO)
    mov(r4, r6)
    label(NOTLO)
    strh(r4, [r3, 0])
    mov(r5, r10)
    add(r5, r5, r0)
    ldr(r5, [r5, 0])
    mov(r7, r1)             # win[n + 128]: 256 bytes on
    add(r7, 255)
    add(r7, 1)
    ldrh(r6, [r7, 0])
    mul(r5, r6)
    str(r5, [r2, 0])
    add(r0, 4)
    add(r1, 2)
    add(r2, 4)
    add(r3, 2)
    mov(r4, r8)
    cmp(r3, r4)
    blt(LOOP)
    pop({r4, r5, r6})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)


def window_table(win, rev):
    """win[n] | o[n] << 16 as array('i'), o[n] = 8 rev[n >> 1] + 4 (n & 1), the byte
    offset of sample n in the packed, bit-reversed transform input: _window's table."""
    out = array.array("i", (0 for _ in range(256)))
    for n in range(256):
        out[n] = win[n] | ((8 * rev[n >> 1] + 4 * (n & 1)) << 16)
    return out


def stage_twiddles(tw, inverse):
    """The (wr, wi) pairs of every stage in the order fft reads them, from the
    enhancer's int16 twiddle table (conjugated for the inverse), as array('i')."""
    out = array.array("i")
    half = 1
    while half < 128:
        step = 256 // (2 * half)
        for k in range(half):
            t = 2 * k * step
            wr = tw[t]
            wi = tw[t + 1]
            out.append(wr)
            out.append(-wi if inverse else wi)
        half *= 2
    return out


def split_twiddles(tw):
    """W^k, k = 0..128, as int32 (wr, wi) pairs: _split's and _merge's table."""
    return array.array("i", tw)


def tables(tw, win, rev, spec, past, rxy, rxx, lo, hi):
    """(forward stage twiddles, inverse stage twiddles, window table, predictor work
    block, split/merge twiddles) for airmark_enhancer_viper.hop, bins lo..hi."""
    return (stage_twiddles(tw, False), stage_twiddles(tw, True), window_table(win, rev),
            predict_block(spec, past, rxy, rxx, lo, hi), split_twiddles(tw))


@micropython.asm_thumb
def _addr(r0):
    # the address of a buffer (the caller passes an array; asm_thumb hands over its data)
    mov(r0, r0)


@micropython.asm_thumb
def _predict(r0, r1):
    # r0 = work block S (int32 x 24; S[20..23] = addresses of spec, past, rxy, rxx,
    # S[17] = 4 lo, S[18] = hi - lo + 1), r1 = slot. airmark_enhancer_viper._predict for
    # bins lo..hi; S[0..8] hold one bin's values (xr, xi, yr, yi, cr, ci, cx, ar, ai),
    # S[10..16] the pointers and the bins left.
    mov(r7, r0)
    mov(r2, 129)
    lsl(r3, r2, 3)
    mul(r3, r1)             # slot * 1032 bytes
    ldr(r6, [r7, 68])       # 4 lo
    ldr(r4, [r7, 84])
    add(r4, r4, r3)
    add(r4, r4, r6)
    str(r4, [r7, 44])       # past re
    lsl(r3, r2, 2)          # 516 bytes: re -> im
    add(r4, r4, r3)
    str(r4, [r7, 48])       # past im
    ldr(r4, [r7, 80])
    add(r4, r4, r6)
    add(r4, r4, r6)
    str(r4, [r7, 40])       # spec
    ldr(r4, [r7, 88])
    add(r4, r4, r6)
    str(r4, [r7, 52])       # rxy re
    add(r4, r4, r3)
    str(r4, [r7, 56])       # rxy im
    ldr(r4, [r7, 92])
    add(r4, r4, r6)
    str(r4, [r7, 60])       # rxx
    ldr(r2, [r7, 72])
    str(r2, [r7, 64])       # bins left
    label(BIN)
    ldr(r0, [r7, 40])
    ldr(r1, [r0, 0])
    str(r1, [r7, 0])        # xr
    ldr(r1, [r0, 4])
    str(r1, [r7, 4])        # xi
    ldr(r0, [r7, 44])
    ldr(r1, [r0, 0])
    str(r1, [r7, 8])        # yr
    ldr(r0, [r7, 48])
    ldr(r1, [r0, 0])
    str(r1, [r7, 12])       # yi
    ldr(r0, [r7, 52])
    ldr(r1, [r0, 0])
    str(r1, [r7, 16])       # cr
    ldr(r0, [r7, 56])
    ldr(r1, [r0, 0])
    str(r1, [r7, 20])       # ci
    ldr(r0, [r7, 60])
    ldr(r1, [r0, 0])
    str(r1, [r7, 24])       # cx
    ldr(r0, [r7, 16])
    lsl(r0, r0, 7)
    ldr(r1, [r7, 24])
    add(r1, 1)
    bl(DIV)
    str(r0, [r7, 28])       # ar
    ldr(r0, [r7, 20])
    lsl(r0, r0, 7)
    ldr(r1, [r7, 24])
    add(r1, 1)
    bl(DIV)
    str(r0, [r7, 32])       # ai
    ldr(r0, [r7, 28])
    ldr(r1, [r7, 8])
    mul(r0, r1)             # ar yr
    ldr(r2, [r7, 32])
    ldr(r3, [r7, 12])
    mul(r2, r3)             # ai yi
    sub(r0, r0, r2)
    add(r0, 64)
    asr(r0, r0, 7)
    ldr(r1, [r7, 0])
    sub(r1, r1, r0)
    lsl(r1, r1, 4)
    ldr(r4, [r7, 40])
    str(r1, [r4, 0])        # spec re = er << 4
    ldr(r0, [r7, 28])
    ldr(r1, [r7, 12])
    mul(r0, r1)             # ar yi
    ldr(r2, [r7, 32])
    ldr(r3, [r7, 8])
    mul(r2, r3)             # ai yr
    add(r0, r0, r2)
    add(r0, 64)
    asr(r0, r0, 7)
    ldr(r1, [r7, 4])
    sub(r1, r1, r0)
    lsl(r1, r1, 4)
    str(r1, [r4, 4])        # spec im = ei << 4
    ldr(r0, [r7, 0])
    asr(r0, r0, 5)          # pr
    ldr(r1, [r7, 4])
    asr(r1, r1, 5)          # pi
    ldr(r2, [r7, 8])
    asr(r2, r2, 5)          # qr
    ldr(r3, [r7, 12])
    asr(r3, r3, 5)          # qi
    mov(r4, r0)
    mul(r4, r2)
    mov(r5, r1)
    mul(r5, r3)
    add(r4, r4, r5)         # pr qr + pi qi
    ldr(r5, [r7, 16])
    add(r4, r4, r5)
    lsl(r6, r5, 1)
    add(r6, r6, r5)
    asr(r6, r6, 5)
    sub(r4, r4, r6)
    ldr(r5, [r7, 52])
    str(r4, [r5, 0])        # rxy re
    mov(r4, r1)
    mul(r4, r2)
    mov(r5, r0)
    mul(r5, r3)
    sub(r4, r4, r5)         # pi qr - pr qi
    ldr(r5, [r7, 20])
    add(r4, r4, r5)
    lsl(r6, r5, 1)
    add(r6, r6, r5)
    asr(r6, r6, 5)
    sub(r4, r4, r6)
    ldr(r5, [r7, 56])
    str(r4, [r5, 0])        # rxy im
    mov(r4, r2)
    mul(r4, r2)
    mov(r5, r3)
    mul(r5, r3)
    add(r4, r4, r5)         # qr qr + qi qi
    ldr(r5, [r7, 24])
    add(r4, r4, r5)
    lsl(r6, r5, 1)
    add(r6, r6, r5)
    asr(r6, r6, 5)
    sub(r4, r4, r6)
    ldr(r5, [r7, 60])
    str(r4, [r5, 0])        # rxx
    ldr(r0, [r7, 0])
    ldr(r5, [r7, 44])
    str(r0, [r5, 0])        # past re = xr
    ldr(r0, [r7, 4])
    ldr(r5, [r7, 48])
    str(r0, [r5, 0])        # past im = xi
    ldr(r0, [r7, 40])
    add(r0, 8)
    str(r0, [r7, 40])
    ldr(r0, [r7, 44])
    add(r0, 4)
    str(r0, [r7, 44])
    ldr(r0, [r7, 48])
    add(r0, 4)
    str(r0, [r7, 48])
    ldr(r0, [r7, 52])
    add(r0, 4)
    str(r0, [r7, 52])
    ldr(r0, [r7, 56])
    add(r0, 4)
    str(r0, [r7, 56])
    ldr(r0, [r7, 60])
    add(r0, 4)
    str(r0, [r7, 60])
    ldr(r0, [r7, 64])
    sub(r0, 1)
    str(r0, [r7, 64])
    ble(DONE)
    b(BIN)
    label(DIV)
    # r0 = n, r1 = den > 0 -> r0 = min(max(floor(n / den), -256), 256); uses r2-r5
    mov(r5, 0)
    cmp(r0, 0)
    bge(DPOS)
    neg(r0, r0)
    mov(r5, 1)
    label(DPOS)
    lsl(r2, r1, 8)
    cmp(r0, r2)
    bcc(DCALC)
    mov(r0, 255)
    add(r0, 1)
    cmp(r5, 0)
    beq(DRET)
    neg(r0, r0)
    b(DRET)
    label(DCALC)
    # restoring division, unrolled: each step compares |n| with den << b (b = 7..0) and
    # shifts the comparison's carry (1 when it subtracts) into the quotient
    mov(r3, 0)
    lsl(r2, r1, 7)
    cmp(r0, r2)
    bcc(DQ7)
    sub(r0, r0, r2)
    label(DQ7)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ6)
    sub(r0, r0, r2)
    label(DQ6)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ5)
    sub(r0, r0, r2)
    label(DQ5)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ4)
    sub(r0, r0, r2)
    label(DQ4)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ3)
    sub(r0, r0, r2)
    label(DQ3)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ2)
    sub(r0, r0, r2)
    label(DQ2)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ1)
    sub(r0, r0, r2)
    label(DQ1)
    adc(r3, r3)
    lsr(r2, r2, 1)
    cmp(r0, r2)
    bcc(DQ0)
    sub(r0, r0, r2)
    label(DQ0)
    adc(r3, r3)
    cmp(r5, 0)
    beq(DDONE)
    neg(r3, r3)
    cmp(r0, 0)
    beq(DDONE)
    sub(r3, 1)
    label(DDONE)
    mov(r0, r3)
    label(DRET)
    bx(lr)
    label(DONE)
    mov(r0, 0)


@micropython.asm_thumb
def _split(r0, r1, r2, r3):
    # r0 = z (the packed transform C, 128 (re, im) int32, natural order), r1 = spec (129
    # (re, im) int32), r2 = W^k pairs (split_twiddles), r3 = lo | hi << 8. For
    # k = lo..hi: s, d = C[k] +- conj(C[128 - k]); X[k] = (s + ((W^k (-i d) + 64) >> 7)
    # + 2) >> 2
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r8, r0)             # z
    lsr(r4, r3, 8)
    add(r4, 1)
    mov(r12, r4)            # hi + 1
    mov(r4, 255)
    and_(r3, r4)            # lo
    mov(r9, r3)             # k
    lsl(r3, r3, 3)
    add(r0, r1, r3)         # spec + 8 lo, advancing
    add(r1, r2, r3)         # twiddles + 8 lo, advancing
    label(LOOP)
    mov(r4, r8)
    mov(r2, r9)
    mov(r3, 127)
    and_(r2, r3)
    lsl(r2, r2, 3)
    add(r2, r2, r4)
    ldr(r5, [r2, 0])        # ar
    ldr(r6, [r2, 4])        # ai
    mov(r2, 128)
    mov(r3, r9)
    sub(r2, r2, r3)
    mov(r3, 127)
    and_(r2, r3)
    lsl(r2, r2, 3)
    add(r2, r2, r4)
    ldr(r7, [r2, 0])        # br
    ldr(r2, [r2, 4])        # bi
    add(r3, r5, r7)
    mov(r10, r3)            # s re = ar + br
    sub(r4, r6, r2)
    mov(r11, r4)            # s im = ai - bi
    add(r6, r6, r2)         # er = ai + bi
    sub(r7, r7, r5)         # ei = br - ar
    ldr(r2, [r1, 0])        # wr
    ldr(r3, [r1, 4])        # wi
    mov(r4, r6)
    mul(r4, r2)             # er wr
    mov(r5, r7)
    mul(r5, r3)             # ei wi
    sub(r4, r4, r5)
    add(r4, 64)
    asr(r4, r4, 7)          # tr
    mul(r6, r3)             # er wi
    mul(r7, r2)             # ei wr
    add(r6, r6, r7)
    add(r6, 64)
    asr(r6, r6, 7)          # ti
    mov(r5, r10)
    add(r5, r5, r4)
    add(r5, 2)
    asr(r5, r5, 2)
    str(r5, [r0, 0])
    mov(r5, r11)
    add(r5, r5, r6)
    add(r5, 2)
    asr(r5, r5, 2)
    str(r5, [r0, 4])
    add(r0, 8)
    add(r1, 8)
    mov(r2, r9)
    add(r2, 1)
    mov(r9, r2)
    mov(r3, r12)
    cmp(r2, r3)
    blt(LOOP)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


@micropython.asm_thumb
def _merge(r0, r1, r2, r3):
    # r0 = spec (Z: 129 (re, im) int32), r1 = z (128 pairs out, bit-reversed order for the
    # inverse), r2 = W^k pairs, r3 = rev (128 bytes). For k < 128: s, d = Z[k] +-
    # conj(Z[128 - k]); z pair rev[k] = (s + ((conj(W^k) (i d) + 64) >> 7) + 1) >> 1
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r8, r1)             # z
    mov(r9, r3)             # rev, advancing
    mov(r11, r2)            # twiddles, advancing
    mov(r4, 1)
    lsl(r4, r4, 10)
    add(r4, r4, r0)
    mov(r10, r4)            # end of Z[k], k < 128
    mov(r12, r4)            # Z[128 - k], descending
    label(LOOP)
    mov(r2, r9)
    ldrb(r3, [r2, 0])
    add(r2, 1)
    mov(r9, r2)
    lsl(r3, r3, 3)
    mov(r2, r8)
    add(r1, r2, r3)         # this k's pair in z
    mov(r2, r12)
    ldr(r4, [r0, 0])        # ar
    ldr(r5, [r0, 4])        # ai
    ldr(r6, [r2, 0])        # br
    ldr(r7, [r2, 4])        # bi
    sub(r2, 8)
    mov(r12, r2)
    add(r3, r4, r6)
    str(r3, [r1, 0])        # s re = ar + br, for now
    sub(r3, r5, r7)
    str(r3, [r1, 4])        # s im = ai - bi
    add(r5, r5, r7)
    neg(r5, r5)             # fr = -(ai + bi)
    sub(r4, r4, r6)         # fi = ar - br
    mov(r2, r11)
    ldr(r6, [r2, 0])        # wr
    ldr(r7, [r2, 4])        # wi
    add(r2, 8)
    mov(r11, r2)
    mov(r2, r5)
    mul(r2, r6)             # fr wr
    mov(r3, r4)
    mul(r3, r7)             # fi wi
    add(r2, r2, r3)
    add(r2, 64)
    asr(r2, r2, 7)          # tr
    mul(r4, r6)             # fi wr
    mul(r5, r7)             # fr wi
    sub(r4, r4, r5)
    add(r4, 64)
    asr(r4, r4, 7)          # ti
    ldr(r3, [r1, 0])
    add(r3, r3, r2)
    add(r3, 1)
    asr(r3, r3, 1)
    str(r3, [r1, 0])
    ldr(r3, [r1, 4])
    add(r3, r3, r4)
    add(r3, 1)
    asr(r3, r3, 1)
    str(r3, [r1, 4])
    add(r0, 8)
    mov(r3, r10)
    cmp(r0, r3)
    blt(LOOP)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


def predict_block(spec, past, rxy, rxx, lo, hi):
    """The work block _predict needs for these arrays and bins lo..hi (made once: their
    addresses)."""
    s = array.array("i", (0 for _ in range(24)))
    s[17] = 4 * lo
    s[18] = hi - lo + 1
    s[20] = _addr(spec)
    s[21] = _addr(past)
    s[22] = _addr(rxy)
    s[23] = _addr(rxx)
    return s
