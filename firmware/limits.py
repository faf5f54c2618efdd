"""Safety numbers (ARCHITECTURE §4). Boards and prescriptions may only tighten them.

Currents in µA, voltages in mV, times in ms unless the name says otherwise.
"""

from micropython import const

CEILING_UA = const(25000)      # absolute firmware treatment ceiling
TRIP_ABS_UA = const(30000)     # trip level never above this
SHORT_OHM = const(300)         # load below this -> FAULT
PROBE_UA = const(300)          # low drive used to look for a closed circuit
OPEN_UA = const(150)           # below this with the source railed = open circuit
PROBE_PHASE_MS = const(250)         # two-level probe: each level held this long
PROBE_REST_MS = const(200)          # output off this long between probes of an open circuit
CONTACT_TIMEOUT_MS = const(120000)  # WAIT_CONTACT gives up after this
PAUSE_LIMIT_MS = const(300000)      # abort after 5 min paused
PAUSE_OFF_MS = const(200)           # output fully off before probing again
DEAD_TIME_MS = const(250)           # polarity flip: output disabled at least this (>= 200)
REVERSE_PROBE_MS = const(30000)     # contact must return this soon after a flip
MIN_RAMP_MS = const(10000)          # no ramp (first or re-ramp) faster than this
RAMP_DOWN_GRACE_MS = const(5000)    # RAMP_DOWN timeout = ramp time + this
CAP_EXTRA_MS = const(60000)         # hard cap = length + ramps + this
LIFT_RATIO = const(3)               # load R rising more than 3x within a second
LIFT_WINDOW_MS = const(1000)
LIFT_MIN_UA = const(1000)           # R estimates below this current are too noisy
LIFT_BACK_PCT = const(150)          # after a lift, resume once the probe R is within this % of before
COMPLIANCE_MARGIN_MV = const(1000)  # within this of the (learned) rail = railed
RAIL_MIN_PCT = const(40)            # a compliance rail is never below this % of the board's
#                                     nominal: the deepest sag planned for is 60 -> 45 V and
#                                     rails are 30-60 V (ARCHITECTURE §4-5); an electrode
#                                     lower than this that does not follow the command is a
#                                     dead source or sensor (safety's plausibility), not a rail
OPEN_V_PCT = const(60)              # no current with the electrode above this % of the
#                                     board's compliance = open circuit (tolerates supply sag)
ENV_MARGIN_UA = const(1000)         # safety envelope: measured may exceed its ramp by this
ENV_SLOPE_UA_S = const(2500)        # fastest legitimate ramp: 25 mA in 10 s
DISABLED_MAX_UA = const(500)        # current read while disabled above this = sensor fault
PULSE_HZ_MIN = const(1000)          # pulsed mode gate frequency range
PULSE_HZ_MAX = const(10000)
DUTY_MIN_PCT = const(20)            # pulsed mode duty range
DUTY_MAX_PCT = const(80)
DOSE_MAX_UA = const(4000)           # dose (drug) mode current at most
DOSE_CAP_UAMIN = const(80000)       # dose at most 80 mA·min
MIN_DURATION_S = const(300)
MAX_DURATION_S = const(1800)


def trip_level_ua(target_ua):
    """Firmware trip: min(prescription x 1.1, 30 mA)."""
    t = target_ua + target_ua // 10
    return t if t < TRIP_ABS_UA else TRIP_ABS_UA
