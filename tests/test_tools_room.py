"""tools/room_check.py: the simulated rooms against Barron's revised theory."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import room_check  # noqa: E402


def test_barron_formula_known_value():
    # 31200 * 0.5 / 100 m^3 / 100 = 1.56 -> 1.93 dB, minus 0.04 * 5 / 0.5 * 4.343 = 1.74 dB
    assert abs(room_check.barron_db(5.0, 0.5, 100.0) - (1.931 - 1.737)) < 0.01


def test_json_rows_compare_the_two_room_models(capsys):
    rc = room_check.main(["--distance", "6.1", "--rt60", "0.5", "--scattering", "0,0.2",
                          "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["scattering"] for r in rows] == [0.0, 0.2]
    ism, hybrid = rows
    for r in rows:
        assert abs(r["t30_s"] / 0.5 - 1) < 0.05 and r["room_dim_m"][0] > 8
        # the reported difference is the two reported levels' (each rounded to 0.01 dB)
        assert abs(r["difference_db"] - (r["reverberant_db"] - r["barron_db"])) <= 0.011
    assert abs(hybrid["difference_db"]) < 2.5 and ism["difference_db"] < -3.0


def test_bad_list_is_one_line_and_exit_2(capsys):
    assert room_check.main(["--distance", "six"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("room_check:")
