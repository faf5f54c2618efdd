"""Calibration constants of one unit: integer gain/offset per channel.

Gains are Q14 (16384 = 1.0), offsets are in raw codes (0..65535 scale).
    current_ua  = (adc_code - i_offset) * I_FS_UA / 65536 * i_gain / 16384
    electrode_mv = (adc_code - v_offset) * V_FS_MV / 65536 * v_gain / 16384
    source_ua   = (ref_code - r_offset) * REF_FS_UA / 65536 * r_gain / 16384
Persistence (CRC, atomic write) belongs to `storage`; this is only the value.
"""

from micropython import const

ONE = const(16384)


class Calibration:
    def __init__(self, i_gain=ONE, i_offset=0, v_gain=ONE, v_offset=0, r_gain=ONE, r_offset=0):
        self.i_gain = i_gain
        self.i_offset = i_offset
        self.v_gain = v_gain
        self.v_offset = v_offset
        self.r_gain = r_gain
        self.r_offset = r_offset

    def validate(self):
        """Raise ValueError unless every field is an int in a plausible range (±25 %)."""
        for name in ("i_gain", "v_gain", "r_gain"):
            g = getattr(self, name)
            if not isinstance(g, int) or not 12288 <= g <= 20480:
                raise ValueError(name + " out of range")
        for name in ("i_offset", "v_offset", "r_offset"):
            o = getattr(self, name)
            if not isinstance(o, int) or not -4096 <= o <= 4096:
                raise ValueError(name + " out of range")
        return self
