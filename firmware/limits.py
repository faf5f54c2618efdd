"""Safety numbers (docs/requirements.md, safety numbers). Boards and prescriptions may only tighten them.

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
# Current-density guard (lift.py; docs/requirements.md, safety numbers: density above 2x for at most 1 s,
# above 1.5x for at most 5 s; docs/design.md "Current-density guard" has the margins)
LIFT_MIN_UA = const(1000)           # V/I below this current is too noisy (8 µA ADC LSB)
LIFT_POL_MV = const(1200)           # polarization subtracted from V before V/I: the low end
#                                     of the electrode/skin offset, 1.2-3 V (docs/requirements.md, plant model);
#                                     the low end: R is read below the truth only on a load
#                                     without polarization (a resistor: calibration), and
#                                     by at most this / I (lift.py corrects for it)
LIFT_POL_SPAN_MV = const(1800)      # the polarization's range, 3.0 - 1.2 V (ARCHITECTURE
#                                     §5): what V/I may over-read below the baseline current
LIFT_RS_MAX_OHM = const(1270)       # body + water at most: body 640-770 Ω, water 10-500 Ω
#                                     (docs/requirements.md, plant model); the skin's share of the load is
#                                     taken as at least 1 - this / load (conservative)
LIFT_SHARE_MIN_PCT = const(25)      # ... and never below 25 %: the grid's lowest share is
#                                     500 Ω skin of 1770 Ω, 28 % (issue 13's grid)
LIFT_DENSITY_PM = const(1500)       # pause when the density estimate reaches 1.5x (per
#                                     mille): the goal's 1.5x (docs/requirements.md, safety numbers); the estimate
#                                     over-reads, so the true density is lower at the pause
LIFT_BACK_PM = const(1250)          # re-ramp after a lift only once the probe's load puts
#                                     the area estimate at 1/1.25 = 80 % or more: 1.25x at
#                                     the target, with room for the probe's noise (53 Ω a
#                                     reading: 16 mV LSB / 300 µA)
LIFT_CREEP_PM = const(1150)         # the baseline creeps up only while the area estimate
#                                     says under 1.15x: hands shifting ±10 % (1.11x) and
#                                     the polarization settling; a held lift never creeps in
COMPLIANCE_MARGIN_MV = const(1000)  # within this of the (learned) rail = railed
RAIL_MIN_PCT = const(40)            # a compliance rail is never below this % of the board's
#                                     nominal: the deepest sag planned for is 60 -> 45 V and
#                                     rails are 30-60 V (docs/requirements.md); an electrode
#                                     lower than this that does not follow the command is a
#                                     dead source or sensor (safety's plausibility), not a rail
OPEN_V_PCT = const(60)              # no current with the electrode above this % of the
#                                     board's compliance = open circuit (tolerates supply sag)
ENV_MARGIN_UA = const(1000)         # safety envelope: measured may exceed its ramp by this
ENV_SLOPE_UA_S = const(2500)        # fastest legitimate ramp: 25 mA in 10 s
ENV_HOLD_US = const(250000)         # a return within this to a level just held is not a
#                                     rise: a rail step at compliance dips the current
#                                     through the skin's capacitance (tau = R_skin x C <=
#                                     10 kOhm x 5 uF = 50 ms) and it comes back in ~5 tau
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
