"""The plant on the emulated Pico's pins (emulators/vpico/plant_pins.py) under CPython: the
same file runs on the WebAssembly MicroPython inside the emulator."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "emulators", "vpico"))
import pico  # noqa: E402
import plant_pins  # noqa: E402


def _settle(pp, duty, ms=200, enable=1):
    for _ in range(ms):
        pp.step(1000, duty, enable, 0, 1.0)


def test_the_reference_duty_drives_the_true_current_and_adc0_reads_it():
    pp = plant_pins.PinsPlant(adc_noise_lsb=0.0, adc_dnl=False)
    assert pp.control('{"contact": true, "skin_ohm": 1000, "nonlinear": false}') == ""
    duty = 10000 / pico.REF_FS_UA                     # 10 mA
    _settle(pp, duty)
    assert pp.plant.true_ua == pytest.approx(10000, rel=0.01)
    code = pp.adc(0)                                   # 12-bit, I_FS_UA at 4095
    assert code == pytest.approx(10000 / pico.I_FS_UA * 4096, abs=1.5)
    v = pp.plant.v_load
    assert pp.adc(1) == pytest.approx(v * 1000 / pico.V_FS_MV * 4096, abs=1.5)


def test_enable_low_means_no_current_and_the_comparator_follows_the_truth():
    pp = plant_pins.PinsPlant()
    pp.control('{"contact": true}')
    _settle(pp, 0.3, enable=0)
    assert pp.plant.true_ua == 0.0 and pp.adc(0) < 8
    assert pp.step(1000, 0.3, 0, 0, 1.0) == 0
    pp.control('{"contact": true, "comparator": true}')
    assert pp.step(1000, 0.0, 0, 0, 1.0) == 1


def test_buttons_and_a_refused_control_file_change_nothing():
    pp = plant_pins.PinsPlant()
    pp.control('{"btn_start": true}')
    assert pp.held("btn_start") == 1 and pp.held("btn_up") == 0
    pp.control('{"service_button": true}')
    assert pp.held("btn_up") == 1 and pp.held("btn_down") == 1 and pp.held("btn_start") == 0
    pp.control('{"skin_ohm": 1234}')
    why = pp.control('{"skin_ohm": -1}')
    assert "skin_ohm" in why and pp.plant.skin_ohm == 1234


def test_rows_record_the_truth_and_the_highest_current_between_rows():
    pp = plant_pins.PinsPlant()
    pp.control('{"contact": true}')
    _settle(pp, 5000 / pico.REF_FS_UA, ms=100)
    row = pp.row().split(",")
    assert len(row) == len(plant_pins.ROW_HEADER.split(","))
    assert float(row[1]) > 4000 and float(row[2]) >= float(row[1]) and row[4] == "1"
