"""The `sim` board: the firmware's hardware objects built on the plant model.

Used by host tests, the simulator and the virtual board. It never imports `machine`:
every object is a duck-typed stand-in wired to `sim.plant.Plant`. The control loop
reads the ADC codes the plant computed at the end of its last step, so a read is an
attribute fetch and allocates nothing.
"""

from micropython import const

NAME = "sim"
CONTROL_PERIOD_US = const(5000)
I_FS_UA = const(33000)      # 3.3 V ADC reference across a 100 Ω shunt, gain 1
V_FS_MV = const(66000)      # 1:20 electrode divider into the 3.3 V ADC
REF_FS_UA = const(33000)    # source current at reference code 65535
COMPLIANCE_MV = const(40000)
HW_TRIP_UA = const(0)       # no comparator modelled
OVERSAMPLE = const(1)
WDT_TIMEOUT_MS = const(500)


class _CurrentAdc:
    def __init__(self, plant):
        self._p = plant

    def read_u16(self):
        return self._p.i_code


class _VoltageAdc:
    def __init__(self, plant):
        self._p = plant

    def read_u16(self):
        return self._p.v_code


class _Reference:
    def __init__(self, plant):
        self._p = plant

    def duty_u16(self, code):
        self._p.ref_code = code


class _Enable:
    def __init__(self, plant):
        self._p = plant

    def value(self, v=None):
        if v is None:
            return self._p.enable
        self._p.enable = v


class _Polarity:
    def __init__(self, plant):
        self._p = plant

    def value(self, v=None):
        if v is None:
            return self._p.polarity
        self._p.polarity = v


class _Watchdog:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Hardware:
    def __init__(self, plant):
        self.plant = plant
        self.enable = _Enable(plant)
        self.enable.value(0)
        self.ref = _Reference(plant)
        self.ref.duty_u16(0)
        self.polarity = _Polarity(plant)
        self.adc_i = _CurrentAdc(plant)
        self.adc_v = _VoltageAdc(plant)
        self.trip = None
        self.wdt = _Watchdog()


def build(plant=None, watchdog=False, **plant_args):
    """Hardware on a plant (a new default `Plant(**plant_args)` when none is given).

    `watchdog` is accepted for the board contract; the sim watchdog only counts feeds.
    """
    if plant is None:
        from plant import Plant
        args = {"compliance_v": COMPLIANCE_MV / 1000}
        args.update(plant_args)
        plant = Plant(i_fs_ua=I_FS_UA, v_fs_mv=V_FS_MV, ref_fs_ua=REF_FS_UA, **args)
    return Hardware(plant)
