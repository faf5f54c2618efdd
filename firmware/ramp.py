"""The session's setpoint generator: every change of current is a ramp, never a step.

Fixed point (µA << 10), integers only. Two setpoints: the *nominal* ramp (where the
setpoint would be unhindered, running at the profile's slope towards the target, and
down at the ramp-down slope when the target is lowered) and the *effective* one, `ua`,
which follows it and is what the regulator is asked for. While the source is
compliance limited the effective setpoint is held just above the current that flows
(bumpless), so the current re-ramps instead of jumping when the load lets it through.
A ramp down ends at END_UA, where the session cuts the output.
"""

from micropython import const

_Q = const(10)
# A ramp down ends (output cut) at the probe level: below it the current cannot be told
# from an open circuit or a dead source (an uncalibrated source offset of -100 µA made
# the monitor's plausibility check trip at the bottom of every ramp down), and cutting
# 300 µA is the probe's own step.
END_UA = const(300)            # limits.PROBE_UA
_END_Q = const(300 << 10)
# Compliance limited: ask for at most this above the flow. It is the step the current
# makes when the load lets it through (then it ramps): 150 µA, above the regulator's
# shortfall threshold (100 µA) so that the rail is still seen, well under a jolt (0.5 mA).
_BUMPLESS_UA = const(150)


class Ramp:
    def __init__(self):
        self._up_q = 0
        self._down_q = 1
        self.zero()

    def configure(self, target_ua, up_ms, down_ms):
        """The profile's slopes: 0 -> target in `up_ms`, target -> 0 in `down_ms`."""
        self._up_q = (target_ua << _Q) // up_ms             # setpoint rise per ms
        self._down_q = (target_ua << _Q) // down_ms

    def zero(self):
        self.ua = 0
        self._sp_q = 0           # effective setpoint
        self._nom_q = 0          # nominal ramp

    def start(self, ua):
        """Both setpoints at `ua` (a ramp starts at the probe level)."""
        self._sp_q = ua << _Q
        self._nom_q = self._sp_q
        self.ua = ua

    def toward(self, dt_ms, target_ua, limited, i_ua):
        """One step towards `target_ua`; True once the nominal ramp is there.
        `i_ua`: the current that flows (while limited: the flow the rail lets through,
        regulator.flow_ua, which the command itself cannot lower)."""
        if limited:
            # Bumpless: never ask for more than flows now plus a little, so the
            # current re-ramps (not jumps) when the load lets it through again.
            cap = (i_ua + _BUMPLESS_UA) << _Q
            if self._sp_q > cap:
                self._sp_q = cap if cap > 0 else 0
        # The nominal ramp runs on; the effective setpoint follows it at the ramp slope.
        # A lowered target brings it down at the ramp-down slope.
        up = self._up_q * dt_ms
        top = target_ua << _Q
        nom = self._nom_q
        if nom > top:
            nom -= self._down_q * dt_ms
            if nom < top:
                nom = top
        else:
            nom += up
            if nom > top:
                nom = top
        self._nom_q = nom
        # self._move(up, nom), written out (every step)
        sp = self._sp_q + up
        if up > 0:
            if sp > nom:
                sp = nom
        elif up < 0 and sp < nom:
            sp = nom
        self._sp_q = sp
        self.ua = sp >> _Q
        return nom >= top

    def down(self, dt_ms):
        """One step of a ramp down; True once it reached END_UA (cut the output)."""
        self._nom_q = 0
        return self._move(-self._down_q * dt_ms, 0) <= _END_Q

    def left_ms(self):
        """Time a ramp down from here takes to reach END_UA."""
        left = self._sp_q - _END_Q
        return left // self._down_q if left > 0 else 0

    def down_uams(self):
        """Charge (µA·ms) a ramp down from here delivers: linear, (start + end) / 2 x
        time. A small int in dose mode: a ramp down is at most 222 s there (the slope set
        by a 1 mA target over 60 s, the target then raised to 4 mA), so at most
        4300 x 222000 / 2 µA·ms (7958 µA·min; charge.Charge.reached needs < 2**30)."""
        return (self.ua + END_UA) * self.left_ms() >> 1

    def down_uams_from(self, ua):
        """down_uams() from a setpoint of `ua` µA: the most a ramp down delivers from any
        setpoint up to `ua` (µA·ms; the same bound on `ua` keeps it a small int)."""
        left = (ua << _Q) - _END_Q
        return (ua + END_UA) * (left // self._down_q if left > 0 else 0) >> 1

    def _move(self, delta_q, limit_q):
        """Move the setpoint by delta_q towards limit_q; return the new setpoint (Q)."""
        sp = self._sp_q + delta_q
        if (delta_q > 0 and sp > limit_q) or (delta_q < 0 and sp < limit_q):
            sp = limit_q
        self._sp_q = sp
        self.ua = sp >> _Q
        return sp
