"""The detector's hop_pairs and features in Thumb assembly (ARM Cortex-M: RP2040, RP2350).

airmark: thumb-only (mpy-cross -march=armv6m/armv7m; ESP32 and unix builds cannot compile
it, and `airmark flash` leaves it out there). airmark_viper hands it over where it imports
(thumb_pairs, thumb_features); the detector then calls `pair_stats` and `matched_filters`
in place of the viper hop_pairs, and `hop_features` in place of features, with the same
integers (docs/ALGORITHM.md §4). On a Cortex-M0+ viper keeps every local on the stack:
its matched-filter loop takes about 150 cycles a position, here 19 for a three-pair
period; its correlations about 1 480 cycles a pair, here about 260; its features about
129 cycles a sample, here about 30.
Only Thumb-1 instructions are used; register-offset ldrh/ldrsh and the high-register add
and cmp, which MicroPython's assembler lacks, are written with data(), and the high
registers r8-r11 they borrow are saved and restored (r12 is scratch, as the AAPCS allows).
"""

import micropython

# ctl (int32 words, the detector's _ctl): hm, hm & 1, w, the number of periods, then per
# period its pairs' count and indices (count, p0, p1, p2), as in the detector's _grp


@micropython.asm_thumb
def pair_stats(r0, r1, r2, r3):
    # r0 = st (int32 state), r1 = feat (the feature ring, 32 bits a word), r2 = d (the D
    # rings, uint16), r3 = ctl. hop_pairs' first loop, pair by pair: c = h - 2 popcount(this
    # hop XOR the hop `lag` earlier), C, D = dw C - C one block back, the D ring and the
    # window sums of D^2 and D. The past window starts at any bit: (word >> r) | (next
    # word << (32 - r)), where a shift by 32 gives 0 on ARM, so r = 0 needs no branch.
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    push({r0, r1, r2, r3})
    push({r4, r5, r6})          # [sp]: pair fields, its D ring, the end; then st, feat, d, ctl
    mov(r4, 1)                  # the SWAR popcount's masks, in r8-r11
    lsl(r5, r4, 8)
    orr(r4, r5)
    lsl(r5, r4, 16)
    orr(r4, r5)
    mov(r11, r4)                # 0x01010101, and each byte mask repeated by it
    mov(r5, 0x55)
    mul(r5, r4)
    mov(r8, r5)                 # 0x55555555
    mov(r5, 0x33)
    mul(r5, r4)
    mov(r9, r5)                 # 0x33333333
    mov(r5, 0x0F)
    mul(r5, r4)
    mov(r10, r5)                # 0x0F0F0F0F
    mov(r7, sp)
    ldr(r4, [r0, 0])            # npairs
    cmp(r4, 0)
    bgt(PS_GO)
    b(PS_DONE)
    label(PS_GO)
    mov(r5, 56)
    mul(r4, r5)
    mov(r6, r0)
    add(r6, 20)                 # pair 0's fields: st + 4 * 5
    add(r4, r4, r6)
    str(r6, [r7, 0])
    str(r2, [r7, 4])
    str(r4, [r7, 8])

    label(PAIR)
    mov(r7, sp)
    ldr(r6, [r7, 0])            # the pair's fields: lag, wl, mo, c, c_prev, num, C[2], q[2], T[2]
    ldr(r5, [r7, 12])           # st
    ldr(r3, [r7, 24])           # ctl
    ldr(r0, [r3, 8])            # w
    ldr(r1, [r6, 0])            # lag
    sub(r1, r0, r1)             # a = w - lag
    bge(A_OK)
    ldr(r2, [r5, 4])            # ring
    add(r1, r1, r2)
    label(A_OK)
    ldr(r4, [r7, 16])           # feat
    lsr(r2, r1, 5)
    lsl(r2, r2, 2)
    add(r2, r2, r4)             # the past window's first word
    mov(r3, 31)
    and_(r3, r1)                # r = a & 31
    mov(r1, r2)
    mov(r2, r3)
    mov(r3, 32)
    sub(r3, r3, r2)             # 32 - r
    lsr(r0, r0, 5)
    lsl(r0, r0, 2)
    add(r0, r0, r4)             # this hop's first word
    ldr(r4, [r5, 8])            # h
    lsr(r4, r4, 3)              # bytes of the hop's words
    add(r4, r4, r0)
    mov(r12, r4)
    mov(r4, 0)                  # mismatches

    label(WORD)
    ldr(r5, [r1, 0])
    lsr(r5, r2)
    ldr(r6, [r1, 4])
    lsl(r6, r3)
    orr(r5, r6)                 # the past window's word
    ldr(r6, [r0, 0])
    eor(r5, r6)
    lsr(r6, r5, 1)
    mov(r7, r8)
    and_(r6, r7)
    sub(r5, r5, r6)
    mov(r7, r9)
    mov(r6, r5)
    and_(r6, r7)
    lsr(r5, r5, 2)
    and_(r5, r7)
    add(r5, r5, r6)
    lsr(r6, r5, 4)
    add(r5, r5, r6)
    mov(r7, r10)
    and_(r5, r7)
    mov(r7, r11)
    mul(r5, r7)
    lsr(r5, r5, 24)             # the word's popcount
    add(r4, r4, r5)
    add(r0, 4)
    add(r1, 4)
    data(2, 0x4560)             # cmp(r0, r12)
    bcc(WORD)

    mov(r7, sp)
    ldr(r5, [r7, 12])           # st
    ldr(r6, [r7, 0])            # the pair's fields
    ldr(r0, [r5, 8])            # h
    lsl(r4, r4, 1)
    sub(r0, r0, r4)             # c = h - 2 mismatches
    ldr(r1, [r6, 16])           # c one hop back
    add(r1, r1, r0)             # C, the block's sum
    str(r0, [r6, 12])
    str(r0, [r6, 16])
    ldr(r3, [r7, 24])           # ctl
    ldr(r3, [r3, 4])            # phase
    lsl(r3, r3, 2)
    add(r3, r3, r6)             # the phase's C, q and T at +24, +32, +40
    ldr(r2, [r3, 24])           # C one block back
    str(r1, [r3, 24])
    ldr(r0, [r5, 16])           # dw
    mul(r0, r1)
    sub(r0, r0, r2)             # D = dw C - C one block back
    ldr(r2, [r7, 4])            # the pair's D ring
    ldr(r4, [r7, 24])
    ldr(r4, [r4, 0])            # hm
    ldr(r1, [r6, 4])            # wl
    lsl(r1, r1, 1)
    sub(r1, r4, r1)             # where the D leaving the window is: hm - 2 wl
    bge(LI_OK)
    ldr(r7, [r5, 12])           # dlen
    add(r1, r1, r7)
    label(LI_OK)
    lsl(r1, r1, 1)
    data(2, 0x5E51)             # ldrsh(r1, [r2, r1]): the leaving D
    lsl(r4, r4, 1)
    add(r4, r4, r2)
    strh(r0, [r4, 0])           # D at hm and at its mirror hm + dlen
    ldr(r7, [r5, 12])
    lsl(r7, r7, 1)
    add(r4, r4, r7)
    strh(r0, [r4, 0])
    mov(r4, r0)
    mul(r4, r0)
    mov(r7, r1)
    mul(r7, r1)
    sub(r4, r4, r7)
    ldr(r7, [r3, 32])
    add(r7, r7, r4)
    str(r7, [r3, 32])           # q += D^2 - leaving D^2
    sub(r0, r0, r1)
    ldr(r7, [r3, 40])
    add(r7, r7, r0)
    str(r7, [r3, 40])           # T += D - leaving D
    mov(r7, sp)
    add(r6, 56)
    str(r6, [r7, 0])            # the next pair
    ldr(r4, [r5, 12])
    lsl(r4, r4, 2)
    add(r2, r2, r4)
    str(r2, [r7, 4])            # its D ring, 2 dlen int16 on
    ldr(r4, [r7, 8])
    cmp(r6, r4)
    bcs(PS_DONE)
    b(PAIR)

    label(PS_DONE)
    pop({r4, r5, r6})
    pop({r0, r1, r2, r3})
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)
    mov(r0, 0)


@micropython.asm_thumb
def matched_filters(r0, r1, r2, r3):
    # r0 = st (int32 state), r1 = d (the D rings, uint16), r2 = pos (uint16), r3 = ctl.
    # The state layout is airmark_detector's: pair p's fields at st[5 + 14 p] (lag, wl,
    # mo, c, c_prev, num, 2 x C one block back, 2 x sum D^2, 2 x T, npos, sigma > 0), dlen at
    # st[3].
    # Per period: num of each pair = sigma * (2 * (sum over positions of D) - T), the sum
    # taken in offset binary (D + 32768 per term, npos << 15 off at the end).
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    push({r0, r1, r2, r3})
    ldr(r4, [r3, 12])           # groups
    mov(r5, r3)
    add(r5, 16)                 # the first group's words
    push({r4, r5})              # [sp]: groups left, group, st, d, pos, ctl

    label(GROUP)
    mov(r7, sp)
    ldr(r4, [r7, 0])
    cmp(r4, 0)
    bgt(GROUP_GO)
    b(DONE)
    label(GROUP_GO)
    sub(r4, 1)
    str(r4, [r7, 0])
    ldr(r5, [r7, 4])            # count, p0, p1, p2
    ldr(r0, [r7, 8])            # st
    ldr(r6, [r5, 4])            # p0
    mov(r4, 56)
    mul(r4, r6)
    add(r4, 20)
    add(r4, r4, r0)             # &st[5 + 14 p0]
    ldr(r3, [r7, 20])           # ctl
    ldr(r3, [r3, 0])            # hm
    add(r3, 2)
    ldr(r2, [r4, 4])            # wl
    lsl(r2, r2, 1)
    sub(r3, r3, r2)             # start = hm - 2 (wl - 1)
    ldr(r2, [r0, 12])           # dlen
    cmp(r3, 0)
    bge(START_OK)
    add(r3, r3, r2)
    label(START_OK)
    lsl(r3, r3, 1)              # 2 start: bytes
    lsl(r2, r2, 2)              # 4 dlen: bytes from one pair's D ring to the next
    ldr(r1, [r7, 12])           # d
    add(r1, r1, r3)
    mov(r12, r1)                # d + 2 start
    mul(r6, r2)
    add(r1, r1, r6)             # P0 = d + 2 start + 4 dlen p0
    ldr(r0, [r4, 8])            # mo
    ldr(r6, [r4, 48])           # npos
    ldr(r3, [r7, 16])           # pos
    lsl(r0, r0, 1)
    add(r0, r0, r3)             # q = pos + 2 mo
    lsl(r6, r6, 1)
    add(r6, r6, r0)
    mov(r11, r6)                # the end of the period's positions
    mov(r6, 0)
    mov(r8, r6)                 # the sums a0, a1, a2
    mov(r9, r6)
    mov(r10, r6)
    mov(r4, 1)
    lsl(r4, r4, 15)             # 0x8000
    ldr(r3, [r5, 0])            # count
    cmp(r3, 3)
    bne(ONE)
    ldr(r3, [r5, 8])            # p1
    mul(r3, r2)
    mov(r6, r12)
    add(r3, r3, r6)             # P1
    ldr(r6, [r5, 12])           # p2
    mul(r6, r2)
    mov(r2, r12)
    add(r2, r2, r6)             # P2
    data(2, 0x4558)             # cmp(r0, r11)
    bcs(SUMS)
    label(L3)
    ldrh(r5, [r0, 0])
    lsl(r5, r5, 2)              # 4 pos[q]: D of this position, every second hop
    data(2, 0x5B4E)             # ldrh(r6, [r1, r5])
    eor(r6, r4)
    data(2, 0x44B0)             # add(r8, r6)
    data(2, 0x5B5E)             # ldrh(r6, [r3, r5])
    eor(r6, r4)
    data(2, 0x44B1)             # add(r9, r6)
    data(2, 0x5B56)             # ldrh(r6, [r2, r5])
    eor(r6, r4)
    data(2, 0x44B2)             # add(r10, r6)
    add(r0, 2)
    data(2, 0x4558)             # cmp(r0, r11)
    bcc(L3)
    b(SUMS)

    label(ONE)
    data(2, 0x4558)             # cmp(r0, r11)
    bcs(SUMS)
    label(L1)
    ldrh(r5, [r0, 0])
    lsl(r5, r5, 2)
    data(2, 0x5B4E)             # ldrh(r6, [r1, r5])
    eor(r6, r4)
    data(2, 0x44B0)             # add(r8, r6)
    add(r0, 2)
    data(2, 0x4558)             # cmp(r0, r11)
    bcc(L1)

    label(SUMS)
    mov(r7, sp)
    ldr(r5, [r7, 4])            # count, p0, p1, p2
    ldr(r0, [r7, 8])            # st
    ldr(r3, [r7, 20])           # ctl
    ldr(r3, [r3, 4])            # phase
    lsl(r3, r3, 2)
    ldr(r6, [r5, 4])            # p0
    mov(r4, 56)
    mul(r4, r6)
    add(r4, 20)
    add(r4, r4, r0)
    ldr(r4, [r4, 48])           # npos
    lsl(r4, r4, 15)
    mov(r12, r4)                # the offset the sums carry
    ldr(r2, [r5, 0])            # count
    label(M)
    ldr(r6, [r5, 4])            # p
    mov(r4, 56)
    mul(r4, r6)
    add(r4, 20)
    add(r4, r4, r0)             # &st[5 + 14 p]
    mov(r1, r8)
    mov(r6, r12)
    sub(r1, r1, r6)
    lsl(r1, r1, 1)              # 2 (sum of D)
    add(r6, r4, r3)
    ldr(r6, [r6, 40])           # T, the window's sum of D for this phase
    sub(r1, r1, r6)
    ldr(r6, [r4, 52])           # sigma > 0
    cmp(r6, 0)
    bne(POS)
    neg(r1, r1)
    label(POS)
    str(r1, [r4, 20])           # num
    mov(r8, r9)                 # the next pair's sum
    mov(r9, r10)
    add(r5, 4)
    sub(r2, 1)
    bne(M)
    mov(r7, sp)
    ldr(r5, [r7, 4])
    add(r5, 16)
    str(r5, [r7, 4])
    b(GROUP)

    label(DONE)
    pop({r4, r5})
    pop({r0, r1, r2, r3})
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)
    mov(r0, 0)


@micropython.asm_thumb
def hop_features(r0, r1, r2, r3):
    # r0 = x (this hop, int16), r1 = xa (int16: the previous hop's last 9 samples, then room
    # for this hop), r2 = bits (the feature ring, 32 a word), r3 = fctl (int32: w, ring, h).
    # airmark_viper.features' bits: bit n is 1 where x[n] + x[n-1] < x[n-8] + x[n-9], 32 a
    # word, least significant first, at word w // 32 and at its mirror (w + ring) // 32;
    # then xa[0..8] = the hop's last 9 samples. Offset binary (^ 0x8000) lets the unsigned
    # ldrh compare as signed: the offsets cancel in the difference.
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    ldr(r4, [r3, 0])            # w
    ldr(r5, [r3, 4])            # ring
    ldr(r6, [r3, 8])            # h
    add(r5, r5, r4)
    lsr(r4, r4, 3)              # w // 32 words, in bytes (w and ring are whole words)
    lsr(r5, r5, 3)
    add(r4, r4, r2)
    add(r5, r5, r2)
    mov(r9, r4)                 # where this hop's words go
    mov(r10, r5)                # and their mirror
    lsr(r7, r6, 5)
    mov(r11, r7)                # words left to write
    mov(r8, r6)                 # h
    mov(r4, r1)
    add(r4, 18)                 # xa[9 + n] = x[n]
    mov(r5, r6)
    label(FT_COPY)
    ldrh(r3, [r0, 0])
    strh(r3, [r4, 0])
    add(r0, 2)
    add(r4, 2)
    sub(r5, 1)
    bne(FT_COPY)
    mov(r0, r1)                 # q = &xa[n]: x[n-9] at q, x[n-8] at q+2, x[n-1] at q+16, x[n] at q+18
    mov(r7, 1)
    lsl(r7, r7, 15)             # 0x8000
    ldrh(r1, [r0, 16])          # x[n-1] for n = 0
    eor(r1, r7)
    ldrh(r2, [r0, 0])           # x[n-9] for n = 0
    eor(r2, r7)

    label(FT_WORD)
    mov(r6, 32)
    mov(r5, 0)
    label(FT_SAMPLE)
    ldrh(r3, [r0, 18])          # x[n]
    ldrh(r4, [r0, 2])           # x[n-8]
    eor(r3, r7)
    eor(r4, r7)
    add(r1, r1, r3)             # x[n] + x[n-1]
    add(r2, r2, r4)             # x[n-8] + x[n-9]
    sub(r1, r1, r2)             # negative where the feature is -1
    lsr(r1, r1, 31)
    lsl(r1, r1, 31)
    lsr(r5, r5, 1)
    orr(r5, r1)                 # the bit enters at the top: sample 0 ends at bit 0
    mov(r1, r3)                 # x[n] is the next sample's x[n-1]
    mov(r2, r4)                 # x[n-8] its x[n-9]
    add(r0, 2)
    sub(r6, 1)
    bne(FT_SAMPLE)
    mov(r3, r9)
    str(r5, [r3, 0])
    add(r3, 4)
    mov(r9, r3)
    mov(r3, r10)
    str(r5, [r3, 0])
    add(r3, 4)
    mov(r10, r3)
    mov(r3, r11)
    sub(r3, 1)
    mov(r11, r3)                # (a high-register mov keeps the flags of the sub)
    bne(FT_WORD)

    mov(r4, r8)                 # q = &xa[h] now: xa[k] = xa[h + k], k < 9
    lsl(r4, r4, 1)
    mov(r2, r0)
    sub(r2, r2, r4)
    mov(r6, 9)
    label(FT_HIST)
    ldrh(r3, [r0, 0])
    strh(r3, [r2, 0])
    add(r0, 2)
    add(r2, 2)
    sub(r6, 1)
    bne(FT_HIST)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)
    mov(r0, 0)
