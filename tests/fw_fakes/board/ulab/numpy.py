"""Fake ulab.numpy: zero-copy int16 views over a bytearray (see ulab/__init__.py)."""

import struct

int16 = 104
int8 = 98
uint16 = 72


class ndarray:
    def __init__(self, buf, start, step, length):
        self.buf = buf
        self.start = start      # in int16 items
        self.step = step        # in int16 items
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.start, index.stop, index.step
            if step is None:
                step = 1
            if start is None:
                start = 0
            if stop is None or stop > self.length:
                stop = self.length
            n = (stop - start + step - 1) // step if stop > start else 0
            return ndarray(self.buf, self.start + start * self.step, self.step * step, n)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError("index out of range")
        return struct.unpack_from("<h", self.buf, 2 * (self.start + index * self.step))[0]


def frombuffer(buf, dtype=int16, count=-1, offset=0):
    if dtype != int16:
        raise TypeError("fake ulab: only int16")
    if count < 0:
        count = (len(buf) - offset) // 2
    return ndarray(buf, offset // 2, 1, count)



def zeros(n, dtype=int16):
    """A dense int16 'array': a plain bytearray, so viper kernels (ptr16) can write into it."""
    if dtype != int16:
        raise TypeError("fake ulab: only int16")
    return bytearray(2 * n)
