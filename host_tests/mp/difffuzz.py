"""Differential run: the same input lines through the protocol on any interpreter.

`run(path, emit)`: `path` holds one input line per text line, hex-encoded (so any bytes
survive); "S <n>" runs the loop n periods instead. Each reply is passed to `emit` as
"<line number> <reply JSON>". The host compares the MicroPython and CPython outputs.
"""

import binascii

from protorig import Rig

RX = {"ramp_up_s": 10, "drug_max_ua": 4000}     # onto the factory prescription


def run(path, emit=print):
    rig = Rig(skin_ohm=1000.0)
    rig.write_rx(RX)
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
