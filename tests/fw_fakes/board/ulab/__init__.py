"""A tiny stand-in for ulab, for running firmware glue under the pip MicroPython (no ulab).

Only what the capture/replay glue touches: ``numpy.frombuffer(buf, dtype=int16)``
returning a zero-copy view that supports slicing with steps, ``len`` and
integer indexing. It is NOT a model of ulab arithmetic; the detector is faked too.
"""
