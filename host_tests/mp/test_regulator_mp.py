"""firmware/regulator.py against a simple integer plant.

The plant: the source delivers gain * command + offset (µA), at most what the rail can
push through the load (R, plus a 2 V electrode offset); the measurement is exact and
arrives one step later (the next call sees what the last command did). Setpoints ramp
like the session's (5 µA per 5 ms step = 1 mA/s) unless a test says otherwise.

MicroPython-compatible: run by mptest on CPython, the unix and the WebAssembly ports.
"""

import sys

import mptest
from regulator import Regulator

RAIL_MV = 40000
CEILING_UA = 25000
MARGIN_MV = 1000
SLEW_UA = 250


class Plant:
    def __init__(self, gain_q8=256, offset_ua=0, r_ohm=2000, rail_mv=RAIL_MV, vpol_mv=2000):
        self.gain_q8 = gain_q8
        self.offset_ua = offset_ua
        self.r_ohm = r_ohm
        self.rail_mv = rail_mv
        self.vpol_mv = vpol_mv
        self.i = 0
        self.v = 0

    def max_ua(self):
        return (self.rail_mv - self.vpol_mv) * 1000 // self.r_ohm

    def apply(self, u):
        i = ((u * self.gain_q8) >> 8) + self.offset_ua
        if i < 0:
            i = 0
        top = self.max_ua()
        if i > top:
            i = top
        self.i = i
        self.v = i * self.r_ohm // 1000 + self.vpol_mv


class Log:
    """Per-step history of one drive() call."""

    def __init__(self):
        self.u = []
        self.i = []
        self.limited = []
        self.integ = []


def drive(reg, plant, sp, n, log=None):
    """n steps; sp is a number or a function of the step index."""
    log = log or Log()
    for k in range(n):
        s = sp(k) if callable(sp) else sp
        u = reg.step(s, plant.i, plant.v)
        plant.apply(u)
        log.u.append(u)
        log.i.append(plant.i)
        log.limited.append(reg.limited)
        log.integ.append(reg.integ)
    return log


def ramp(target, start=300, per_step=5):
    def sp(k):
        s = start + k * per_step
        return s if s < target else target
    return sp


def new_reg(ceiling=CEILING_UA):
    return Regulator(RAIL_MV, ceiling, MARGIN_MV)


def settled(log, sp, tol=5, last=100):
    for i in log.i[-last:]:
        if abs(i - sp) > tol:
            return False
    return True


# ---- tracking --------------------------------------------------------------------------

def test_converges_ideal_source_step_and_ramp():
    for sp in (None, ramp(10000)):
        reg = new_reg()
        p = Plant()
        log = drive(reg, p, sp or 10000, 3000)
        assert settled(log, 10000, 2), log.i[-5:]
        assert not reg.limited


def test_converges_source_delivering_more():
    # +10 % gain, +300 µA offset: the loop must trim the command well below the setpoint
    for sp in (10000, ramp(10000)):
        reg = new_reg()
        p = Plant(gain_q8=282, offset_ua=300)
        log = drive(reg, p, sp, 3000)
        assert settled(log, 10000, 5), log.i[-5:]
        assert log.u[-1] < 9100, log.u[-1]     # (10000 - 300) / 1.1 = 8818
        assert not reg.limited


def test_converges_source_delivering_less_gain_only():
    # -5 % gain on the session's ramp
    reg = new_reg()
    p = Plant(gain_q8=243)
    log = drive(reg, p, ramp(10000), 3000)
    assert settled(log, 10000, 5), log.i[-5:]
    assert log.u[-1] > 10400, log.u[-1]        # 10000 / 0.95 = 10535
    assert not reg.limited


def test_converges_source_delivering_less_with_offset():
    # -5 % gain and -100 µA offset, well inside what calibration exists to remove; a
    # proportional error must not be taken for a compliance limit
    reg = new_reg()
    p = Plant(gain_q8=243, offset_ua=-100)
    log = drive(reg, p, ramp(10000), 3000)
    assert settled(log, 10000, 5), "stuck at %d uA, limited=%s, learned rail %d mV" % (
        log.i[-1], reg.limited, reg.rail_mv)


def test_tracks_a_ramp_closely():
    reg = new_reg()
    p = Plant(gain_q8=270, offset_ua=100)
    log = drive(reg, p, ramp(15000), 4000)
    # after the first second the error stays within what a 1 mA/s ramp explains
    for k in range(200, 2900):
        assert abs(ramp(15000)(k) - log.i[k]) <= 60, (k, log.i[k])
    assert settled(log, 15000, 5)


# ---- limits ----------------------------------------------------------------------------

def test_slew_limit():
    reg = new_reg()
    p = Plant()
    log = drive(reg, p, 15000, 400)       # 15 mA through 2 kOhm + 2 V: 32 V, reachable
    log = drive(reg, p, 0, 400, log)
    log = drive(reg, p, 12000, 400, log)
    prev = 0
    for u in log.u:
        assert abs(u - prev) <= SLEW_UA, (u, prev)
        prev = u
    # the step up rises at the slew limit until it is close (here 15000 / 250 = 60 steps)
    assert log.u[55] == 56 * SLEW_UA, log.u[50:62]
    assert log.u[400 + 55] == 15000 - 56 * SLEW_UA or log.u[400 + 55] == 0, log.u[450:462]


def test_command_never_negative():
    reg = new_reg()
    p = Plant(offset_ua=600)    # current flows with no command at all
    log = drive(reg, p, ramp(5000), 1500)
    log = drive(reg, p, 0, 400, log)
    assert min(log.u) >= 0
    assert log.u[-1] == 0


def test_ceiling_clamp_freezes_integrator():
    # -10 % gain: 10 mA needs an 11.1 mA command, the ceiling allows 10.5 mA
    reg = new_reg(ceiling=10500)
    p = Plant(gain_q8=230)
    log = drive(reg, p, ramp(10000), 3000)
    assert max(log.u) == 10500, max(log.u)
    clamped = [k for k in range(len(log.u)) if log.u[k] == 10500]
    assert len(clamped) > 1000
    frozen = log.integ[clamped[0] + 1]
    for k in clamped[1:]:
        assert log.integ[k] == frozen, (k, log.integ[k], frozen)
    # the ceiling lifted: no jump, it converges from where it was
    reg.ceiling_ua = CEILING_UA
    log2 = drive(reg, p, 10000, 400)
    assert max(log2.i) <= 10050, max(log2.i)
    assert settled(log2, 10000, 5)


def test_load_reach_caps_the_command():
    # 8 kOhm needs 122 V for 15 mA: the command stays just above what 40 V can push
    reg = new_reg()
    p = Plant(r_ohm=8000)
    log = drive(reg, p, ramp(15000), 4000)
    top = p.max_ua()                       # 4750 µA
    assert reg.limited
    # headroom, plus what one slew step adds during the 3-step saturation detection
    assert max(log.u) <= top + 300 + 250, (max(log.u), top)
    assert max(log.u[2000:]) == max(log.u[3000:])   # no creeping up
    assert max(log.integ[2000:]) <= max(log.integ[:2000])


def test_no_windup_at_the_rail_then_the_load_drops():
    # Tracking 10 mA through 2 kOhm, then 6 kOhm (the rail holds 6.3 mA) for 5 s, then
    # back to 2 kOhm: the integrator must not wind up while limited, and the current
    # must come back to the setpoint without overshooting it.
    reg = new_reg()
    p = Plant()
    drive(reg, p, ramp(10000), 3000)
    integ_before = reg.integ
    p.r_ohm = 6000
    log = drive(reg, p, 10000, 1000)
    assert sum(1 for x in log.limited if x) > 900
    # the trim is re-learnt at the rail's edge (the command creeps down until the
    # current follows it, then the PI brings it back): bounded, never creeping up
    assert max(log.integ) <= integ_before + (400 << 8), (max(log.integ), integ_before)
    assert max(log.integ[500:]) <= max(log.integ[50:500])
    # after the detection (a few steps), the command sits just above what flows
    assert max(log.u[50:]) <= p.max_ua() + 300 + 150, max(log.u[50:])
    # and the current stays within 2 % of what the rail allows (the edge search)
    assert min(log.i[50:]) >= p.max_ua() * 98 // 100, min(log.i[50:])
    p.r_ohm = 2000
    log = drive(reg, p, 10000, 1000)
    assert max(log.i) <= 10300, max(log.i)
    assert settled(log, 10000, 5), (log.i[-1], reg.limited, reg.rail_mv)


def test_no_windup_with_gain_error_then_the_load_drops():
    # The same with a source that delivers 5 % more than commanded
    reg = new_reg()
    p = Plant(gain_q8=270, offset_ua=100)
    drive(reg, p, ramp(10000), 3000)
    p.r_ohm = 6000
    drive(reg, p, 10000, 1000)
    p.r_ohm = 2000
    log = drive(reg, p, 10000, 1000)
    assert max(log.i) <= 10300, max(log.i)
    assert settled(log, 10000, 5), "stuck at %d uA, limited=%s, learned rail %d mV" % (
        log.i[-1], reg.limited, reg.rail_mv)


class Bumpless:
    """The session's setpoint, reduced: it rises 5 µA per step towards the target and,
    while the regulator says limited, is held at most 150 µA above the current that
    flows (ramp.Ramp.toward)."""

    def __init__(self, sp):
        self.sp = sp

    def __call__(self, reg, plant, target):
        if reg.limited and self.sp > plant.i + 150:
            self.sp = plant.i + 150
        self.sp = self.sp + 5 if self.sp + 5 < target else target
        return self.sp


def drive_session(reg, plant, ses, target, n, log=None, each=None):
    """n steps with the session's bumpless setpoint `ses`; `each(k)` may change the
    plant before step k (drive() asks for the setpoint before each step)."""
    def sp(k):
        if each is not None:
            each(k)
        return ses(reg, plant, target)
    return drive(reg, plant, sp, n, log)


def _worst_jump(log, k0, w=20):
    """Largest rise of the current within w steps (100 ms) from step k0 on."""
    return max(log.i[k] - min(log.i[k - w:k + 1]) for k in range(max(k0, w), len(log.i)))


def test_load_rise_at_the_rail_never_collapses():
    # Issue 12, case 1, for any source error: tracking 15 mA through 2.5 kOhm at a 45 V
    # rail, the load rises to 5.8 kOhm (the rail allows 7.4 mA) at once or over 1000
    # steps. The trim learnt at 15 mA is too large at 7.4 mA for a source with a gain
    # error; the current must stay at what the rail allows (>= 97 %), never collapse.
    for gain_q8 in (236, 256, 276):            # -8 %, 0, +8 %
        for offset in (-150, 50, 150):
            for over in (0, 1000):
                reg = new_reg()
                p = Plant(gain_q8=gain_q8, offset_ua=offset, r_ohm=2500, rail_mv=45000)
                ses = Bumpless(300)
                drive_session(reg, p, ses, 15000, 3500)
                assert abs(p.i - 15000) <= 10, (gain_q8, offset, p.i)

                def rise(k, p=p, over=over):
                    if k <= over:
                        p.r_ohm = 2500 + (3300 * k // over if over else 3300)
                log = drive_session(reg, p, ses, 15000, 2000 + over, each=rise)
                top = p.max_ua()
                for k in range(over + 20, len(log.i)):
                    assert log.i[k] * 100 >= top * 97, (gain_q8, offset, over, k, log.i[k], top)
                # limited, but for the short searches of the rail's edge
                assert sum(1 for x in log.limited[over:] if x) * 10 > (len(log.i) - over) * 7


def test_railed_ends_when_the_source_leaves_the_rail():
    # Railed at 6.3 mA, then the target falls to 4 mA (below what the rail allows):
    # the source leaves the rail, `limited` must clear and the PI track again.
    reg = new_reg()
    p = Plant(gain_q8=276, offset_ua=100, r_ohm=6000)
    ses = Bumpless(300)
    drive_session(reg, p, ses, 10000, 3000)
    assert reg.limited
    ses.sp = 4000
    log = drive_session(reg, p, ses, 4000, 400)
    assert not any(log.limited[100:]), "still limited off the rail"
    assert settled(log, 4000, 5), log.i[-5:]


def test_gain_drift_at_the_rail_then_the_load_drops_without_a_jump():
    # Issue 12, case 2: railed at 4.1 kOhm with a source at -7 % gain; its gain drifts
    # to +3.5 % while railed (the trim is not observable there), then the load drops to
    # 1.4 kOhm. The current must rise at the setpoint's slope, never jump (0.5 mA in
    # 100 ms is a jolt; the monitor's envelope trips at 1 mA).
    for drift_steps in (460, 2000):
        reg = new_reg()
        p = Plant(gain_q8=238, offset_ua=-90, r_ohm=4800, rail_mv=49700)
        ses = Bumpless(300)
        log = drive_session(reg, p, ses, 17600, 4000)
        assert sum(1 for x in log.limited[3000:] if x) > 700     # railed (but the edge search)

        def drift(k, p=p, n=drift_steps):
            if k <= n:
                p.gain_q8 = 238 + 27 * k // n
        drive_session(reg, p, ses, 17600, drift_steps + 1000, each=drift)
        assert p.i * 100 >= p.max_ua() * 97
        p.r_ohm = 2300
        log = drive_session(reg, p, ses, 17600, 3000)
        assert _worst_jump(log, 0) <= 350, _worst_jump(log, 0)
        assert settled(log, 17600, 5), log.i[-5:]


def test_learns_a_sagging_rail_and_recovers():
    # the supply sags to 30 V: 15 mA through 2 kOhm + 2 V needs 32 V
    reg = new_reg()
    p = Plant(rail_mv=30000)
    log = drive(reg, p, ramp(15000), 4000)
    assert reg.limited
    assert 29000 <= reg.rail_mv <= 31000, reg.rail_mv
    assert max(log.u[3000:]) <= p.max_ua() + 300 + 150, max(log.u[3000:])
    # the supply comes back: the setpoint is reached again
    p.rail_mv = RAIL_MV
    log = drive(reg, p, 15000, 1000)
    assert settled(log, 15000, 5), (log.i[-1], reg.rail_mv)
    assert not reg.limited


def test_reset_and_new_session():
    reg = new_reg()
    p = Plant(rail_mv=30000)
    drive(reg, p, ramp(15000), 4000)
    assert reg.rail_mv < RAIL_MV and reg.u_ua > 0
    reg.reset()
    assert reg.integ == 0 and reg.u_ua == 0 and reg.r_ohm == 0 and not reg.limited
    assert reg.rail_mv < RAIL_MV           # a reset within a session keeps the learned rail
    reg.new_session()
    assert reg.rail_mv == RAIL_MV


def test_step_allocates_nothing():
    if not mptest.is_micropython():
        raise mptest.Skip("heap accounting needs MicroPython (here " + sys.implementation.name + ")")
    reg = new_reg()
    p = Plant(gain_q8=270, offset_ua=100, r_ohm=6000)

    def run():
        i = v = 0
        for k in range(3000):
            u = reg.step(300 + k * 5, i, v)
            p.apply(u)
            i = p.i
            v = p.v
    n = mptest.allocated_by(run)
    assert n == 0, n
    assert reg.limited
