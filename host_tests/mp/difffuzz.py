"""Differential run: the same input lines through the protocol on any interpreter.

`run(path, emit)`: `path` holds one input line per text line, hex-encoded (so any bytes
survive); "S <n>" runs the loop n periods instead. Each reply is passed to `emit` as
"<line number> <reply JSON>". The host compares the MicroPython and CPython outputs.
"""

import binascii

from protorig import Rig

RX = {"max_target_ua": 25000, "target_ua": 15000, "max_duration_s": 1800, "duration_s": 600,
      "ramp_up_s": 10, "ramp_down_s": 15, "reverse_allowed": True, "induction_sessions": 12,
      "induction_per_week": 3, "maintenance_per_week": 1}


def run(path, emit=print):
    rig = Rig(skin_ohm=1000.0)
    rig.ok("rx_write", **RX)
    n = 0
    with open(path) as f:
        for text in f:
            text = text.strip()
            n += 1
            if text.startswith("S "):
                rig.step(int(text[2:]))
                rig.out[:] = []
                continue
            rig.out[:] = []
            rig.app.feed(binascii.unhexlify(text) + b"\n")
            for o in rig.out:
                emit("%d %s" % (n, o.decode().rstrip("\n")))
    emit("DONE %d" % n)
