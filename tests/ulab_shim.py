"""A strict stand-in for `ulab` under CPython: numpy underneath, ulab's rules on top.

Installed as `sys.modules["ulab"]` by `install()`, so firmware code doing
`from ulab import numpy as np` gets this module. It refuses what ulab lacks:
- dtypes: only int8, uint8, int16, uint16, float (float32, as on the boards), bool;
  any array of another dtype (int32, int64, float64...) raises at creation;
- functions: only those listed in _ALLOWED (ulab 6.5 / CircuitPython subset);
- array methods such as astype, sum, mean, cumsum, view raise AttributeError;
- np.dot of integer arrays returns a float32 value, like ulab (float on the MCU),
  and raises if the result is not exactly representable (|x| >= 2**24).
Facts about ulab 6.x: its documentation and source, and runs on its unix port.
"""

import sys
import types

import numpy as _np

_DTYPES = {
    _np.dtype(_np.int8), _np.dtype(_np.uint8), _np.dtype(_np.int16),
    _np.dtype(_np.uint16), _np.dtype(_np.float32), _np.dtype(_np.bool_),
}
_BLOCKED_METHODS = {
    "astype", "sum", "mean", "cumsum", "view", "std", "max", "min", "argmax",
    "argmin", "prod", "any", "all", "round", "clip", "dot", "nonzero", "fill",
}


class StrictDtypeError(TypeError):
    pass


class StrictArray(_np.ndarray):
    def __array_finalize__(self, obj):
        if self.dtype not in _DTYPES:
            raise StrictDtypeError("ulab has no dtype %s" % self.dtype)
        if self.ndim > 2:
            raise ValueError("ulab (ULAB_MAX_DIMS = 2) has no %d-dimensional arrays" % self.ndim)

    def __getattribute__(self, name):
        if name in _BLOCKED_METHODS:
            raise AttributeError("ulab ndarray has no method %r" % name)
        return _np.ndarray.__getattribute__(self, name)

    def __getitem__(self, idx):
        out = _np.ndarray.__getitem__(self, idx)
        if isinstance(out, _np.generic):
            return out.item()  # ulab returns Python scalars
        return out

    def __rshift__(self, other):
        raise TypeError("ulab: >> is not supported on ndarrays (use np.right_shift)")

    __lshift__ = __rshift__
    __irshift__ = __rshift__
    __ilshift__ = __rshift__

    def __pow__(self, other):
        return _wrap(_np.power(_np.asarray(self, dtype=_np.float32), other))


def _wrap(a):
    a = _np.asarray(a)
    if a.dtype == _np.float64:
        a = a.astype(_np.float32)
    return a.view(StrictArray)


def _check_dtype(dtype):
    if dtype is None:
        return _np.float32
    d = _np.dtype(dtype)
    if d not in _DTYPES:
        raise StrictDtypeError("ulab has no dtype %s" % d)
    return d


numpy = types.ModuleType("ulab.numpy")
numpy.int8 = _np.int8
numpy.uint8 = _np.uint8
numpy.int16 = _np.int16
numpy.uint16 = _np.uint16
numpy.float = _np.float32
numpy.bool = _np.bool_
numpy.pi = _np.pi
numpy.e = _np.e


def array(obj, dtype=None):
    if dtype is None and isinstance(obj, _np.ndarray):
        dtype = obj.dtype
    d = _check_dtype(dtype)
    if isinstance(obj, (list, tuple)) and d.kind in "iu":
        for v in obj:
            if isinstance(v, float):
                raise TypeError("can't convert float to int")
    return _np.array(obj, dtype=d).view(StrictArray)


def zeros(shape, dtype=None):
    return _np.zeros(shape, dtype=_check_dtype(dtype)).view(StrictArray)


def ones(shape, dtype=None):
    return _np.ones(shape, dtype=_check_dtype(dtype)).view(StrictArray)


def empty(shape, dtype=None):
    return _np.zeros(shape, dtype=_check_dtype(dtype)).view(StrictArray)


def arange(*args, dtype=None):
    d = _np.int16 if dtype is None else _check_dtype(dtype)
    return _np.arange(*args).astype(d).view(StrictArray)


def frombuffer(buf, dtype=None, count=-1, offset=0):
    return _np.frombuffer(buf, dtype=_check_dtype(dtype), count=count, offset=offset).view(StrictArray)


def where(cond, x, y):
    return _wrap(_np.where(cond, x, y))


def dot(a, b):
    a = _np.asarray(a)
    b = _np.asarray(b)
    exact = _np.dot(a.astype(_np.float64), b.astype(_np.float64))
    if a.ndim == 1 and b.ndim == 1:
        out = _np.float32(exact)
        if a.dtype.kind in "iub" and b.dtype.kind in "iub" and abs(exact) >= 2 ** 24:
            raise ArithmeticError("ulab float32 dot is inexact above 2**24: %r" % exact)
        return float(out)
    return _wrap(exact)


def sqrt(a):
    return _wrap(_np.sqrt(_np.asarray(a, dtype=_np.float32)))


def clip(a, lo, hi):
    return _wrap(_np.clip(a, lo, hi))


def right_shift(a, n):
    return _wrap(_np.right_shift(a, n))


def left_shift(a, n):
    return _wrap(_np.left_shift(a, n))


def _reduce(fn):
    def inner(a, axis=None):
        a = _np.asarray(a)
        if axis is None:
            r = fn(a)
            return float(r) if a.dtype.kind == "f" else int(r)
        return _wrap(fn(a, axis=axis).astype(a.dtype))

    return inner


numpy.max = _reduce(_np.max)
numpy.min = _reduce(_np.min)
numpy.argmax = lambda a: int(_np.argmax(a))
numpy.mean = lambda a: float(_np.mean(a))
numpy.sum = _reduce(_np.sum)

_ALLOWED = (array, zeros, ones, empty, arange, frombuffer, where, dot, sqrt, clip,
            right_shift, left_shift)
for _fn in _ALLOWED:
    setattr(numpy, _fn.__name__, _fn)
numpy.ndarray = StrictArray


utils = types.ModuleType("ulab.utils")


def from_int16_buffer(buf, *, count=-1, offset=0, out=None, byteswap=False):
    """ulab.utils.from_int16_buffer: int16 samples as float; into `out` (dense float,
    at least as long) without allocating. ulab checks `offset` but reads from byte 0, so
    the shim refuses any other offset rather than imitate that."""
    if offset != 0:
        raise ValueError("shim: ulab ignores from_int16_buffer's offset (reads from byte 0)")
    if byteswap:
        raise NotImplementedError("shim: byteswap")
    raw = bytes(memoryview(buf).cast("B"))
    if len(raw) % 2:
        raise ValueError("buffer size must be a multiple of element size")
    x = _np.frombuffer(raw, dtype=_np.int16)
    if count > 0:
        if len(x) < count:
            raise ValueError("buffer is smaller than requested size")
        x = x[:count]
    if out is None:
        return _wrap(x.astype(_np.float32))
    if not isinstance(out, StrictArray) or out.dtype != _np.float32 or not out.flags["C_CONTIGUOUS"]:
        raise TypeError("out must be a float dense array")
    if len(out) < len(x):
        raise ValueError("out array is too small")
    out[:len(x)] = x
    return out


utils.from_int16_buffer = from_int16_buffer

ulab = types.ModuleType("ulab")
ulab.numpy = numpy
ulab.utils = utils
ulab.__version__ = "6.12.0-shim"


def install():
    """Make `from ulab import numpy as np` return this shim; returns the ulab module."""
    sys.modules["ulab"] = ulab
    sys.modules["ulab.numpy"] = numpy
    sys.modules["ulab.utils"] = utils
    return ulab


def uninstall():
    sys.modules.pop("ulab", None)
    sys.modules.pop("ulab.numpy", None)
    sys.modules.pop("ulab.utils", None)
