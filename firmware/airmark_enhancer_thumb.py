"""The line enhancer's hop in Thumb assembly (ARM Cortex-M boards: RP2040, RP2350): shift
in, AGC, frame, FFT, split, predictor, merge, inverse FFT and overlap-add, in one call.

airmark: thumb-only (mpy-cross -march=armv6m/armv7m; ESP32 and unix builds cannot compile
it, and `airmark flash` leaves it out there). airmark_enhancer_viper uses it when it
imports, else its viper kernels (_peak, _agc, _rescale, _frame, _fft, _split, _predict,
_merge, _overlap_add). Both compute the same integers: every butterfly
t = (v * w + 64) >> 7 per component, u' = (u + t + 1) >> 1, v' = (u - t + 1) >> 1
(docs/ALGORITHM.md §8). A Python call costs about 10 us on an RP2040, so `hop` is the only
one a hop makes: its block (hop_block) holds the addresses of the enhancer's arrays and
tables. Only Thumb-1 instructions are used (a few that MicroPython's assembler lacks are
written with data(): register-offset ldr/str, sxth, ldmia/stmia), and the high registers
r8-r11 they borrow are saved and restored.
"""

import array

import micropython

# hop's stages, bits of the block's mask (all set: a whole hop; one at a time: tests and
# profiles)
ST_IN = 1  # shift in, the hop's peak, the AGC and, when the gain steps, the rescale
ST_WINDOW = 2
ST_FFT = 4
ST_SPLIT = 8
ST_PREDICT = 16
ST_MERGE = 32
ST_IFFT = 64
ST_OLA = 128
ST_ALL = 255

# the hop block: int32 words (byte offset = 4 * index)
B_XIN = 0
B_HEAD = 1
B_WREV = 2
B_Z = 3
B_TWF = 4
B_TWI = 5
B_SPEC = 6
B_TW = 7
B_BAND = 8
B_PAST = 9
B_RXY = 10
B_RXX = 11
B_REV = 12
B_WIN = 13
B_TAIL = 14
B_X = 15  # this call's x, out and slot
B_OUT = 16
B_SLOT = 17
B_MASK = 18
B_SIZE = 32  # 20..31: the predictor's bases (scratch)


@micropython.asm_thumb
def hop(r0, r1, r2, r3):
    # r0 = the hop block, r1 = x (128 int16), r2 = out (128 int16), r3 = slot (the past
    # spectrum two hops back, overwritten with this hop's). The block stays at [sp].
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    str(r1, [r0, 60])
    str(r2, [r0, 64])
    str(r3, [r0, 68])
    push({r0})

    # ---- shift in: xin[:128] = xin[128:]; xin[128:] = x; the peak |x|; the AGC
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 1)
    bcs(IN)
    b(IN_END)
    label(IN)
    ldr(r0, [r7, 0])        # xin
    mov(r1, r0)
    add(r1, 255)
    add(r1, 1)              # xin + 256: the source, and the copy's end
    mov(r6, r1)
    label(CPY)
    data(2, 0xC93C)         # ldmia(r1!, {r2, r3, r4, r5})
    data(2, 0xC03C)         # stmia(r0!, {r2, r3, r4, r5})
    cmp(r0, r6)
    bcc(CPY)
    ldr(r1, [r7, 60])       # x
    mov(r7, r0)
    add(r7, 255)
    add(r7, 1)              # end of xin
    mov(r6, 0)              # peak
    label(XIN)
    ldrh(r2, [r1, 0])
    strh(r2, [r0, 0])
    data(2, 0xB212)         # sxth(r2, r2)
    asr(r3, r2, 31)
    eor(r2, r3)
    sub(r2, r2, r3)         # |x[n]|
    cmp(r2, r6)
    ble(XIN1)
    mov(r6, r2)
    label(XIN1)
    ldrh(r2, [r1, 2])
    strh(r2, [r0, 2])
    data(2, 0xB212)         # sxth(r2, r2)
    asr(r3, r2, 31)
    eor(r2, r3)
    sub(r2, r2, r3)
    cmp(r2, r6)
    ble(XIN2)
    mov(r6, r2)
    label(XIN2)
    add(r0, 4)
    add(r1, 4)
    cmp(r0, r7)
    bcc(XIN)
    # AGC (airmark_enhancer.gains_for for one hop): r6 = peak
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r7, [r7, 4])        # head
    ldr(r0, [r7, 0])        # g
    ldr(r1, [r7, 4])        # quiet hops
    ldr(r2, [r7, 8])        # previous peak
    ldr(r3, [r7, 12])       # 0 before the first hop
    cmp(r3, 0)
    bne(AGC0)
    mov(r0, 10)             # G_MAX
    label(AGC0)
    str(r6, [r7, 8])
    mov(r3, 1)
    str(r3, [r7, 12])
    mov(r12, r0)            # the gain before
    cmp(r2, r6)
    bge(AGC1)
    mov(r2, r6)             # both = max(peak, previous peak)
    label(AGC1)
    # fit(p): the largest f <= 10 with p << f < 2**14, else -1; r4 = fit(both) + 1,
    # r5 = fit(peak) + 1
    mov(r3, 1)
    lsl(r3, r3, 14)
    mov(r4, 0)
    label(FITB)
    cmp(r2, r3)
    bge(FITB1)
    add(r4, 1)
    lsl(r2, r2, 1)
    cmp(r4, 11)
    blt(FITB)
    label(FITB1)
    mov(r5, 0)
    label(FITP)
    cmp(r6, r3)
    bge(FITP1)
    add(r5, 1)
    lsl(r6, r6, 1)
    cmp(r5, 11)
    blt(FITP)
    label(FITP1)
    sub(r4, 1)
    sub(r5, 1)
    cmp(r4, r0)
    bge(AGC2)
    mov(r0, r4)             # attack: g = fit(both)
    mov(r1, 0)
    b(AGC4)
    label(AGC2)
    cmp(r5, r0)
    ble(AGC3)
    add(r1, 1)              # headroom for g + 1: count it
    cmp(r1, 64)             # RELEASE_HOPS
    blt(AGC4)
    add(r0, 1)
    label(AGC3)
    mov(r1, 0)
    label(AGC4)
    str(r0, [r7, 0])
    str(r1, [r7, 4])
    mov(r3, r12)
    sub(r3, r0, r3)         # s = the gain step
    beq(IN_END)
    # the state rescaled by 2**s (rare): past and tail by s, rxy and rxx by 2 s
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r1, [r7, 36])
    mov(r2, 129)
    lsl(r2, r2, 4)
    add(r2, r2, r1)         # past: 516 words
    bl(RESCALE)
    ldr(r1, [r7, 56])
    mov(r2, 128)
    lsl(r2, r2, 2)
    add(r2, r2, r1)         # tail: 128 words
    bl(RESCALE)
    lsl(r3, r3, 1)
    ldr(r1, [r7, 40])
    mov(r2, 129)
    lsl(r2, r2, 3)
    add(r2, r2, r1)         # rxy: 258 words
    bl(RESCALE)
    ldr(r1, [r7, 44])
    mov(r2, 129)
    lsl(r2, r2, 2)
    add(r2, r2, r1)         # rxx: 129 words
    bl(RESCALE)
    label(IN_END)

    # ---- frame: z at o[n] = ((xin[n] win[n] << k) + r) >> s, from the table wrev
    # (win[n] | o[n] << 16, o[n] the byte offset of z[2 rev[n >> 1] + (n & 1)]); the gain
    # g <= 8 gives k = 0, s = 8 - g, r = (1 << s) >> 1 (rounding half up), g > 8 gives
    # k = g - 8, s = r = 0
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 2)
    bcs(WIN)
    b(WIN_END)
    label(WIN)
    ldr(r0, [r7, 0])        # xin
    ldr(r1, [r7, 8])        # wrev
    ldr(r2, [r7, 12])       # z
    ldr(r3, [r7, 4])
    ldr(r3, [r3, 0])        # g
    mov(r4, 1)
    lsl(r4, r4, 10)
    add(r4, r4, r1)
    mov(r8, r4)             # end of wrev
    mov(r7, 0)              # k
    cmp(r3, 8)
    ble(WIN1)
    sub(r7, r3, 0)
    sub(r7, 8)
    mov(r3, 8)              # so that s = 0
    label(WIN1)
    mov(r4, 8)
    sub(r3, r4, r3)         # s
    mov(r4, 1)
    lsl(r4, r3)
    asr(r4, r4, 1)
    mov(r9, r4)             # r
    label(WINL)
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
    blt(WINL)
    label(WIN_END)

    # ---- forward transform
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 3)
    bcc(FFT_END)
    ldr(r0, [r7, 12])       # z
    ldr(r1, [r7, 16])       # forward stage twiddles
    bl(FFT)
    label(FFT_END)

    # ---- split: for k = lo..hi: s, d = C[k] +- conj(C[128 - k]);
    # X[k] = (s + ((W^k (-i d) + 64) >> 7) + 2) >> 2
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 4)
    bcs(SPL)
    b(SPL_END)
    label(SPL)
    ldr(r0, [r7, 12])       # z: the packed transform C, natural order
    ldr(r1, [r7, 24])       # spec
    ldr(r2, [r7, 28])       # W^k pairs
    ldr(r3, [r7, 32])       # lo | hi << 8
    mov(r8, r0)
    lsr(r4, r3, 8)
    add(r4, 1)
    mov(r12, r4)            # hi + 1
    mov(r4, 255)
    and_(r3, r4)            # lo
    mov(r9, r3)             # k
    lsl(r3, r3, 3)
    add(r0, r1, r3)         # spec + 8 lo, advancing
    add(r1, r2, r3)         # twiddles + 8 lo, advancing
    label(SPLL)
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
    blt(SPLL)
    label(SPL_END)

    # ---- predictor, bins lo..hi (airmark_enhancer_viper._predict), in three passes:
    # (1) a = R_xy * 128 // (R_xx + 1), clamped to +-256, into z as (ar << 16) + ai;
    # (2) R_xy, R_xx updated from p = X >> 5, q = X2 >> 5; (3) E = X - round(a X2 / 128)
    # into spec as E << 4, X into past[slot]
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 5)
    bcs(PRED)
    b(PRED_END)
    label(PRED)
    ldr(r0, [r7, 32])       # lo | hi << 8
    mov(r1, 255)
    and_(r1, r0)            # lo
    lsr(r0, r0, 8)
    sub(r0, r0, r1)
    add(r0, 1)              # bins
    bgt(PRED0)
    b(PRED_END)
    label(PRED0)
    lsl(r0, r0, 2)
    str(r0, [r7, 80])       # 4 * bins
    lsl(r1, r1, 2)          # 4 lo
    ldr(r2, [r7, 40])
    add(r2, r2, r1)
    str(r2, [r7, 84])       # C: rxy re of bin lo (im 516 bytes on)
    ldr(r2, [r7, 44])
    add(r2, r2, r1)
    str(r2, [r7, 88])       # R: rxx of bin lo
    ldr(r2, [r7, 12])
    add(r2, r2, r1)
    str(r2, [r7, 92])       # A: the coefficients, in z (free until the merge)
    ldr(r2, [r7, 24])
    add(r2, r2, r1)
    add(r2, r2, r1)
    str(r2, [r7, 100])      # S: spec of bin lo
    ldr(r2, [r7, 36])
    add(r2, r2, r1)
    ldr(r3, [r7, 68])
    mov(r4, 129)
    lsl(r4, r4, 3)
    mul(r3, r4)
    add(r2, r2, r3)
    str(r2, [r7, 96])       # P: past[slot] re of bin lo (im 516 bytes on)
    # pass 1: r7 walks C; r8 = 516, r9 = R - C, r10 = A - C, r11 = the end
    ldr(r0, [r7, 84])
    ldr(r1, [r7, 88])
    sub(r1, r1, r0)
    mov(r9, r1)
    ldr(r1, [r7, 92])
    sub(r1, r1, r0)
    mov(r10, r1)
    ldr(r1, [r7, 80])
    add(r1, r1, r0)
    mov(r11, r1)
    mov(r1, 129)
    lsl(r1, r1, 2)
    mov(r8, r1)
    mov(r6, 255)
    mvn(r6, r6)             # -256
    mov(r7, r0)
    label(P1)
    mov(r3, r9)
    data(2, 0x58FB)         # ldr(r3, [r7, r3]): R_xx
    add(r3, 1)              # den
    lsl(r5, r3, 7)          # D7 = den << 7
    lsl(r4, r3, 8)          # D8 = den << 8
    ldr(r1, [r7, 0])        # R_xy re
    mov(r3, r8)
    data(2, 0x58FA)         # ldr(r2, [r7, r3]): R_xy im
    # a = floor(n / den) clamped to +-256, n = R_xy << 7: for n >= 0, 256 when n >= D8,
    # else the 8-bit restoring division of n, every step comparing the remainder with
    # D7 and shifting its carry (1 where it subtracts) in at the bottom, so that the low
    # 8 bits end up holding the quotient; for n < 0, -256 when n < -D8, else the division
    # of n + D8 (the quotient + 256) and 256 taken off
    lsl(r0, r1, 7)
    bmi(A1N)
    cmp(r0, r4)
    bcs(A1S)
    cmp(r0, r5)
    bcc(A1P7)
    sub(r0, r0, r5)
    label(A1P7)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P6)
    sub(r0, r0, r5)
    label(A1P6)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P5)
    sub(r0, r0, r5)
    label(A1P5)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P4)
    sub(r0, r0, r5)
    label(A1P4)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P3)
    sub(r0, r0, r5)
    label(A1P3)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P2)
    sub(r0, r0, r5)
    label(A1P2)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P1)
    sub(r0, r0, r5)
    label(A1P1)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1P0)
    sub(r0, r0, r5)
    label(A1P0)
    adc(r0, r0)
    bic(r0, r6)             # the quotient
    b(A1D)
    label(A1S)
    neg(r0, r6)             # 256
    b(A1D)
    label(A1T)
    mov(r0, r6)             # -256
    b(A1D)
    label(A1N)
    add(r0, r0, r4)         # carry: n >= -D8
    bcc(A1T)
    cmp(r0, r5)
    bcc(A1M7)
    sub(r0, r0, r5)
    label(A1M7)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M6)
    sub(r0, r0, r5)
    label(A1M6)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M5)
    sub(r0, r0, r5)
    label(A1M5)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M4)
    sub(r0, r0, r5)
    label(A1M4)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M3)
    sub(r0, r0, r5)
    label(A1M3)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M2)
    sub(r0, r0, r5)
    label(A1M2)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M1)
    sub(r0, r0, r5)
    label(A1M1)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A1M0)
    sub(r0, r0, r5)
    label(A1M0)
    adc(r0, r0)
    orr(r0, r6)             # the quotient - 256
    label(A1D)
    lsl(r1, r0, 16)         # ar << 16
    lsl(r0, r2, 7)
    bmi(A2N)
    cmp(r0, r4)
    bcs(A2S)
    cmp(r0, r5)
    bcc(A2P7)
    sub(r0, r0, r5)
    label(A2P7)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P6)
    sub(r0, r0, r5)
    label(A2P6)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P5)
    sub(r0, r0, r5)
    label(A2P5)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P4)
    sub(r0, r0, r5)
    label(A2P4)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P3)
    sub(r0, r0, r5)
    label(A2P3)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P2)
    sub(r0, r0, r5)
    label(A2P2)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P1)
    sub(r0, r0, r5)
    label(A2P1)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2P0)
    sub(r0, r0, r5)
    label(A2P0)
    adc(r0, r0)
    bic(r0, r6)
    b(A2D)
    label(A2S)
    neg(r0, r6)
    b(A2D)
    label(A2T)
    mov(r0, r6)
    b(A2D)
    label(A2N)
    add(r0, r0, r4)
    bcc(A2T)
    cmp(r0, r5)
    bcc(A2M7)
    sub(r0, r0, r5)
    label(A2M7)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M6)
    sub(r0, r0, r5)
    label(A2M6)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M5)
    sub(r0, r0, r5)
    label(A2M5)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M4)
    sub(r0, r0, r5)
    label(A2M4)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M3)
    sub(r0, r0, r5)
    label(A2M3)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M2)
    sub(r0, r0, r5)
    label(A2M2)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M1)
    sub(r0, r0, r5)
    label(A2M1)
    adc(r0, r0)
    cmp(r0, r5)
    bcc(A2M0)
    sub(r0, r0, r5)
    label(A2M0)
    adc(r0, r0)
    orr(r0, r6)
    label(A2D)
    add(r0, r0, r1)         # (ar << 16) + ai
    mov(r3, r10)
    data(2, 0x50F8)         # str(r0, [r7, r3])
    add(r7, 4)
    mov(r3, r11)
    cmp(r7, r3)
    bcs(P1_END)
    b(P1)
    label(P1_END)
    # pass 2: r7 walks P, r6 walks S; r8 = 516, r9 = C - P, r10 = C - P + 516,
    # r11 = R - P, r12 = the end
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 96])
    ldr(r6, [r7, 100])
    ldr(r1, [r7, 84])
    sub(r1, r1, r0)
    mov(r9, r1)
    add(r1, 255)
    add(r1, 255)
    add(r1, 6)
    mov(r10, r1)
    ldr(r1, [r7, 88])
    sub(r1, r1, r0)
    mov(r11, r1)
    ldr(r1, [r7, 80])
    add(r1, r1, r0)
    mov(r12, r1)
    mov(r7, r0)
    label(P2)
    ldr(r4, [r7, 0])        # yr
    mov(r3, r8)
    data(2, 0x58FD)         # ldr(r5, [r7, r3]): yi
    asr(r4, r4, 5)          # qr
    asr(r5, r5, 5)          # qi
    mov(r3, r11)
    data(2, 0x58F8)         # ldr(r0, [r7, r3]): R_xx
    lsl(r1, r0, 1)
    add(r1, r1, r0)
    asr(r1, r1, 5)
    sub(r0, r0, r1)         # R_xx - (3 R_xx >> 5)
    mov(r1, r4)
    mul(r1, r4)
    add(r0, r0, r1)
    mov(r1, r5)
    mul(r1, r5)
    add(r0, r0, r1)         # + qr qr + qi qi
    data(2, 0x50F8)         # str(r0, [r7, r3])
    ldr(r2, [r6, 0])
    ldr(r3, [r6, 4])
    asr(r2, r2, 5)          # pr
    asr(r3, r3, 5)          # pi
    mov(r1, r9)
    data(2, 0x5878)         # ldr(r0, [r7, r1]): R_xy re
    lsl(r1, r0, 1)
    add(r1, r1, r0)
    asr(r1, r1, 5)
    sub(r0, r0, r1)
    mov(r1, r2)
    mul(r1, r4)
    add(r0, r0, r1)
    mov(r1, r3)
    mul(r1, r5)
    add(r0, r0, r1)         # + pr qr + pi qi
    mov(r1, r9)
    data(2, 0x5078)         # str(r0, [r7, r1])
    mov(r1, r10)
    data(2, 0x5878)         # ldr(r0, [r7, r1]): R_xy im
    lsl(r1, r0, 1)
    add(r1, r1, r0)
    asr(r1, r1, 5)
    sub(r0, r0, r1)
    mul(r3, r4)
    add(r0, r0, r3)         # + pi qr
    mul(r2, r5)
    sub(r0, r0, r2)         # - pr qi
    mov(r1, r10)
    data(2, 0x5078)         # str(r0, [r7, r1])
    add(r6, 8)
    add(r7, 4)
    mov(r1, r12)
    cmp(r7, r1)
    bcs(P2_END)
    b(P2)
    label(P2_END)
    # pass 3: r7 walks P, r6 walks S; r8 = 516, r9 = A - P, r12 = the end.
    # E = X - ((a X2 + 64) >> 7) as ((X << 7) + 63 - a X2) >> 7
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 96])
    ldr(r6, [r7, 100])
    ldr(r1, [r7, 92])
    sub(r1, r1, r0)
    mov(r9, r1)
    ldr(r1, [r7, 80])
    add(r1, r1, r0)
    mov(r12, r1)
    mov(r7, r0)
    label(P3)
    ldr(r0, [r6, 0])        # xr
    ldr(r1, [r6, 4])        # xi
    ldr(r2, [r7, 0])        # yr
    str(r0, [r7, 0])        # past re = xr
    mov(r4, r8)
    data(2, 0x593B)         # ldr(r3, [r7, r4]): yi
    data(2, 0x5139)         # str(r1, [r7, r4]): past im = xi
    mov(r4, r9)
    data(2, 0x593C)         # ldr(r4, [r7, r4]): (ar << 16) + ai
    data(2, 0xB225)         # sxth(r5, r4): ai
    sub(r4, r4, r5)
    asr(r4, r4, 16)         # ar
    mov(r11, r6)
    lsl(r0, r0, 7)
    add(r0, 63)
    lsl(r1, r1, 7)
    add(r1, 63)
    mov(r6, r4)
    mul(r6, r2)
    sub(r0, r0, r6)         # - ar yr
    mov(r6, r5)
    mul(r6, r3)
    add(r0, r0, r6)         # + ai yi
    mul(r4, r3)
    sub(r1, r1, r4)         # - ar yi
    mul(r5, r2)
    sub(r1, r1, r5)         # - ai yr
    asr(r0, r0, 7)
    lsl(r0, r0, 4)
    asr(r1, r1, 7)
    lsl(r1, r1, 4)
    mov(r6, r11)
    str(r0, [r6, 0])        # spec = E << 4
    str(r1, [r6, 4])
    add(r6, 8)
    add(r7, 4)
    mov(r4, r12)
    cmp(r7, r4)
    bcc(P3)
    label(PRED_END)

    # ---- merge: for k < 128: s, d = Z[k] +- conj(Z[128 - k]); z pair rev[k] =
    # (s + ((conj(W^k) (i d) + 64) >> 7) + 1) >> 1 (the inverse's bit-reversed order)
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 6)
    bcs(MRG)
    b(MRG_END)
    label(MRG)
    ldr(r0, [r7, 24])       # spec (Z)
    ldr(r1, [r7, 12])       # z
    ldr(r2, [r7, 28])       # W^k pairs
    ldr(r3, [r7, 48])       # rev
    mov(r8, r1)             # z
    mov(r9, r3)             # rev, advancing
    mov(r11, r2)            # twiddles, advancing
    mov(r4, 1)
    lsl(r4, r4, 10)
    add(r4, r4, r0)
    mov(r10, r4)            # end of Z[k], k < 128
    mov(r12, r4)            # Z[128 - k], descending
    label(MRGL)
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
    blt(MRGL)
    label(MRG_END)

    # ---- inverse transform
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 7)
    bcc(IFFT_END)
    ldr(r0, [r7, 12])       # z
    ldr(r1, [r7, 20])       # inverse stage twiddles
    bl(FFT)
    label(IFFT_END)

    # ---- overlap-add: out[n] = clip((f[n] win[n] + tail[n] + 128) >> 8);
    # tail[n] = f[n + 128] win[n + 128], the frame f = z
    mov(r7, sp)
    ldr(r7, [r7, 0])
    ldr(r0, [r7, 72])
    lsr(r0, r0, 8)
    bcs(OLA)
    b(OLA_END)
    label(OLA)
    ldr(r0, [r7, 12])       # z
    ldr(r1, [r7, 52])       # win
    ldr(r2, [r7, 56])       # tail
    ldr(r3, [r7, 64])       # out
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
    label(OLAL)
    ldr(r4, [r0, 0])
    ldrh(r5, [r1, 0])
    mul(r4, r5)
    ldr(r5, [r2, 0])
    add(r4, r4, r5)
    add(r4, 128)
    asr(r4, r4, 8)
    mov(r5, r9)
    cmp(r4, r5)
    ble(OLA1)
    mov(r4, r5)
    label(OLA1)
    mvn(r6, r5)
    cmp(r4, r6)
    bge(OLA2)
    mov(r4, r6)
    label(OLA2)
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
    blt(OLAL)
    label(OLA_END)
    b(EXIT)

    # ---- subroutines
    label(RESCALE)
    # r1 = int32 words up to r2, r3 = s != 0: a << s, or (a + (1 << (-s - 1))) >> -s;
    # uses r4-r6
    cmp(r3, 0)
    blt(RSN)
    label(RSP)
    ldr(r4, [r1, 0])
    lsl(r4, r3)
    str(r4, [r1, 0])
    add(r1, 4)
    cmp(r1, r2)
    bcc(RSP)
    bx(lr)
    label(RSN)
    neg(r5, r3)
    mov(r6, 1)
    lsl(r6, r5)
    asr(r6, r6, 1)
    label(RSNL)
    ldr(r4, [r1, 0])
    add(r4, r4, r6)
    asr(r4, r5)
    str(r4, [r1, 0])
    add(r1, 4)
    cmp(r1, r2)
    bcc(RSNL)
    bx(lr)

    label(FFT)
    # r0 = z (128 (re, im) int32, bit-reversed order in, natural order out), r1 = the
    # (wr, wi) int32 pairs of every stage, in the order the stages read them
    # (stage_twiddles): seven stages, half = 1, 2, .. 64; uses r0-r12
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
    bx(lr)

    label(EXIT)
    pop({r0})
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)
    mov(r0, 0)


def window_table(win, rev):
    """win[n] | o[n] << 16 as array('i'), o[n] = 8 rev[n >> 1] + 4 (n & 1), the byte
    offset of sample n in the packed, bit-reversed transform input: the frame's table."""
    out = array.array("i", (0 for _ in range(256)))
    for n in range(256):
        out[n] = win[n] | ((8 * rev[n >> 1] + 4 * (n & 1)) << 16)
    return out


def stage_twiddles(tw, inverse):
    """The (wr, wi) pairs of every stage in the order the FFT reads them, from the
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
    """W^k, k = 0..128, as int32 (wr, wi) pairs: the split's and the merge's table."""
    return array.array("i", tw)


@micropython.asm_thumb
def _addr(r0):
    # the address of a buffer (the caller passes an array; asm_thumb hands over its data)
    mov(r0, r0)


def hop_block(xin, head, wrev, z, twf, twi, spec, tw, past, rxy, rxx, rev, win, tail, lo, hi,
              mask=ST_ALL):
    """hop's block for these arrays and bins lo..hi (made once: their addresses; the
    arrays must live as long as it is used)."""
    b = array.array("i", (0 for _ in range(B_SIZE)))
    for i, a in ((B_XIN, xin), (B_HEAD, head), (B_WREV, wrev), (B_Z, z), (B_TWF, twf),
                 (B_TWI, twi), (B_SPEC, spec), (B_TW, tw), (B_PAST, past), (B_RXY, rxy),
                 (B_RXX, rxx), (B_REV, rev), (B_WIN, win), (B_TAIL, tail)):
        b[i] = _addr(a)
    b[B_BAND] = lo | (hi << 8)
    b[B_MASK] = mask
    return b


def tables(tw, win, rev, xin, head, z, spec, past, rxy, rxx, tail, lo, hi):
    """(forward stage twiddles, inverse stage twiddles, frame table, split/merge twiddles,
    hop block) for the enhancer's arrays, bins lo..hi: LineEnhancer calls
    hop(tables[4], x, out, slot)."""
    twf = stage_twiddles(tw, False)
    twi = stage_twiddles(tw, True)
    wrev = window_table(win, rev)
    stw = split_twiddles(tw)
    return (twf, twi, wrev, stw, hop_block(xin, head, wrev, z, twf, twi, spec, stw, past, rxy,
                                           rxx, rev, win, tail, lo, hi))
