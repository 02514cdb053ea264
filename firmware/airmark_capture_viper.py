"""Viper kernel for airmark_capture (MicroPython only: needs the viper emitter).

The detector's viper kernels read their input through ``ptr16``, i.e. as a
dense int16 buffer, so a strided ``[1::2]`` view of the raw I2S words cannot be
handed to them. ``top16`` copies the top 16 bits of `n` little-endian 32-bit
words, starting at word `start` of `src`, into the dense int16 buffer `dst`:
a bit copy of the high half-word (``dst[i] = src16[2*(start+i) + 1]``), exact on
32- and 64-bit builds alike (no sign extension involved). Other shifts are
applied to the raw words beforehand with ``machine.I2S.shift`` (in place, C).
About 0.5 us per sample on an RP2040 (viper loop, rp2040-costs.md): ~130 us per
256-sample hop, under 1 % of real time.
"""

import micropython


@micropython.viper
def top16(src: ptr16, dst: ptr16, start: int, n: int):
    j = 2 * start + 1
    for i in range(n):
        dst[i] = src[j]
        j += 2
