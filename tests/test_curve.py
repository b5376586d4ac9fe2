"""recipes/default/curve.py: a run's dev history drawn as a learning curve."""
import importlib.util
import json

import pytest

from conftest import REPO


def curve_module():
    spec = importlib.util.spec_from_file_location("curve", REPO / "recipes" / "default" / "curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HISTORY = [{"step": 100, "an4_wer": 0.5, "an4_cer": 0.2, "so762_wer": 0.9, "mean_wer": 0.7},
           {"step": 200, "an4_wer": 0.3, "an4_cer": 0.1, "so762_wer": 0.8, "mean_wer": 0.55}]


def test_points_from_steps_then_hours_with_a_start_and_two_runs(monkeypatch):
    curve = curve_module()
    payloads = {"a.pt": {"training": {"history": HISTORY}},
                "b.pt": {"training": {"history": [{"step": 10, "train_hours": 0.25, "an4_wer": 0.2}]}}}
    monkeypatch.setattr(curve, "read_payload", lambda p: payloads[p])
    pts = curve.points(["a.pt", "b.pt"], hours_per_step=0.01, start={"an4": 0.9})
    assert pts["an4"] == [(0.0, 0.9), (1.0, 0.5), (2.0, 0.3), (2.25, 0.2)]  # b follows a's 2 hours
    assert pts["so762"] == [(1.0, 0.9), (2.0, 0.8)] and "mean" not in pts
    earlier = [{"hours": 0, "an4": 0.9}, {"hours": 1.5, "an4": 0.6, "cathy": 0.8}]  # a run whose checkpoint is gone
    pts = curve.points(["b.pt"], hours_per_step=None, start=earlier, offset=2.0)
    assert pts["an4"] == [(0.0, 0.9), (1.5, 0.6), (2.25, 0.2)] and pts["cathy"] == [(1.5, 0.8)]
    with pytest.raises(SystemExit, match="no train_hours; give --hours-per-step"):
        curve.points(["a.pt"], hours_per_step=None, start=None)


def test_main_writes_a_png(monkeypatch, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from PIL import Image
    curve = curve_module()
    monkeypatch.setattr(curve, "read_payload", lambda p: {"training": {"history": HISTORY}})
    (tmp_path / "start.json").write_text(json.dumps({"an4": 0.88, "so762": 1.1}))
    curve.main(["run/last.pt", "-o", str(tmp_path / "c.png"), "--hours-per-step", "0.001",
                "--start", str(tmp_path / "start.json")])
    with Image.open(tmp_path / "c.png") as img:
        assert img.format == "PNG" and img.size[0] > 300
    assert "an4: 0.00h:0.880 0.10h:0.500 0.20h:0.300" in capsys.readouterr().out
