"""Protocol lines: the same text on MicroPython and CPython (the pytest side compares)."""

import json

from mp_common import check, finish
import airmark_proto as proto

lines = [
    proto.hello("pico-inmp441", "micropython", "key-1", 16000, 256, 25436, 4096, 125000000),
    proto.hello("replay", "cpython", "key-1", 16000, 256, None, None, None),
    proto.detection(123456, 7.25, "key-1"),
    proto.detection(0, 6.0004, "k"),
    proto.detection(10, -0.0001, "k"),
    proto.status(5000, 312, 0, 0, 4100, 3000, 18, 180224),
    proto.status(10000, 624, 2, 1, 9000, 3100, 19, None),
    proto.status(15000, 936, 2, 1, 9000, 3100, 19, 170000, 812, 30000),
    proto.error("ValueError: bad \"thing\"\nnext\tline \\ end \x01"),
    proto.error(proto.exc_text(OSError("no I2S"))),
    proto.error(proto.exc_text(KeyError())),
    proto.detection(1, 3280 / 256, "k"),  # 12.8125: an exact tie at 3 decimals
    proto.detection(2, -2.5, "k"),
    proto.hello("pico-inmp441", "micropython", "k", 16000, 128, 23584, 4352, 125000000,
                "viper+thumb,enhancer:thumb"),
]
for text in lines:
    print(text)
    obj = json.loads(text)
    check("json " + obj["event"], isinstance(obj, dict) and "event" in obj)
check("detection fields", json.loads(lines[2]) == {
    "event": "detection", "t_ms": 123456, "score": 7.25, "key": "key-1"})
check("error roundtrip", json.loads(lines[8])["msg"] == "ValueError: bad \"thing\"\nnext\tline \\ end \x01")
check("no negative zero", json.loads(lines[4])["score"] == 0 and '"score":0.000' in lines[4])
check("null heap", json.loads(lines[6])["heap_free"] is None)
check("mic level", json.loads(lines[7])["mic_rms"] == 812 and json.loads(lines[7])["mic_peak"] == 30000
      and json.loads(lines[5])["mic_rms"] is None)
check("nan is null", proto.jfloat(float("nan")) == "null")
check("tie rounds away from zero", '"score":12.813' in lines[11] and '"score":-2.500' in lines[12])
check("decimals", proto.jfloat(1.25, 1) == "1.3" and proto.jfloat(0.0496, 2) == "0.05"
      and proto.jfloat(7.6, 0) == "8")
check("kernels", json.loads(lines[13])["kernels"] == "viper+thumb,enhancer:thumb"
      and json.loads(lines[0])["kernels"] is None)
check("ms", proto.samples_to_ms(16000 * 3600 * 24, 16000) == 86400000)
finish()
