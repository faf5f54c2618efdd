"""Contact probe: a low two-level drive that shows whether the circuit is closed.

The output carries PROBE_UA, then 2 x PROBE_UA, each for PROBE_PHASE_MS; contact means
current flows at both levels. The load is r_probe = dV/dI between the two ends, which
cancels the electrode polarization offset (it would dominate V/I at these currents).
While the circuit reads open the output rests, disabled, between one-period probes: a
source driving an open circuit rails and charges the output capacitance, which would
discharge into a hand dipped in at that moment.
"""

from limits import PROBE_PHASE_MS, PROBE_REST_MS, PROBE_UA


class Probe:
    def __init__(self, open_mv):
        self._open_mv = open_mv
        self.r_probe = 0      # last measured load (Ω), 0 = unknown
        self.restart()

    def restart(self):
        """Begin a new cycle at the low level (the output state is the caller's)."""
        self.sp_ua = 0
        self.enable = False
        self._ms = 0
        self._rest_ms = 0
        self._v0 = 0
        self._i0 = 0

    def step(self, dt_ms, i_ua, v_mv, enabled):
        """Advance one control step; set `enable`/`sp_ua`; True after a closed cycle.

        `enabled`: whether the output carried the probe during the step just measured.
        """
        self.enable = enabled
        if self._rest_ms > 0:
            self._rest_ms -= dt_ms
            return False
        if not enabled:
            self.enable = True           # one period of probe drive
            self.sp_ua = PROBE_UA
            self._ms = 0
            return False
        if i_ua < PROBE_UA >> 1:
            self._ms = 0
            if v_mv >= self._open_mv:    # open (railed): rest, then probe again
                self.enable = False
                self.sp_ua = 0
                self._rest_ms = PROBE_REST_MS
            # else: no current yet the electrode is low - the output capacitance is
            # still charging, or a sensor/source fault the safety monitor will judge
            return False
        self._ms += dt_ms
        if self.sp_ua == PROBE_UA:
            if self._ms >= PROBE_PHASE_MS:
                self._v0 = v_mv
                self._i0 = i_ua
                self.sp_ua = 2 * PROBE_UA
            return False
        if self._ms < 2 * PROBE_PHASE_MS:
            return False
        di = i_ua - self._i0
        self.r_probe = ((v_mv - self._v0) * 1000) // di if di >= PROBE_UA >> 1 else 0
        self._ms = 0
        self.sp_ua = PROBE_UA
        return True
