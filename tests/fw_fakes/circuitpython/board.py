"""Fake CircuitPython `board` for running firmware/code.py under the pip MicroPython."""

LED = "LED"
