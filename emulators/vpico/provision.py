"""A technician's first visit to an emulated Pico: calibration and a prescription.

`provision(vp, port)`: holds the service button (up + down) through a power cycle, enters
service mode with the factory technician code, writes the calibration of the emulated
plant (exact: the plant has no gain or offset error unless its control file gives it
one) and a prescription with the shortest ramps the limits allow (10 s up, 5 s down),
then leaves service mode. Used by the hardware-in-the-loop fixture and the benchmark;
a real board gets its calibration from `make calibrate`.
"""

FACTORY_CODE = "000000"
IDENTITY_CAL = {"i_gain": 16384, "i_offset": 0, "v_gain": 16384, "v_offset": 0,
                "r_gain": 16384, "r_offset": 0, "date": "2026-01-01", "tech": "emulator",
                "meter": "emulated plant"}
SHORT_RAMPS = {"ramp_up_s": 10, "ramp_down_s": 5}


def provision(vp, port, timeout=120.0, code=FACTORY_CODE):
    """Provision the running emulated Pico `vp` through `port` (its firmware must answer).
    Raises tools.client errors when the board refuses."""
    from tools import cli
    dev, _, _ = cli.connect(port, timeout=timeout)
    dev.timeout = 30.0
    try:
        vp.set_load(service_button=True)
        vp.power_cycle()
        cli.identify(dev, timeout, "the emulated Pico")
        dev.request("service_enter", code=code)
        dev.request("cal_write", **IDENTITY_CAL)
        dev.request("rx_write", **SHORT_RAMPS)
        dev.request("service_exit")
    finally:
        vp.set_load(service_button=False)
        dev.close()
