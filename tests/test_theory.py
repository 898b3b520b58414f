"""The one-layer simulation of §5: M_C rises then falls; Propositions 2 and 3 show."""

import json
import subprocess

import pytest

from cpi_bench.demo.theory import TheoryConfig, simulate


def test_cli_writes_curve_with_interior_peak(tmp_path):
    proc = subprocess.run(
        ["cpi", "theory", "--out", str(tmp_path), "--steps", "600"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "theory.json").read_text())
    for key in ("steps", "m_c", "attn_context", "attn_subject"):
        assert len(result[key]) == len(result["steps"]) > 10
    m_c = result["m_c"]
    peak = max(range(len(m_c)), key=m_c.__getitem__)
    assert 0 < peak < len(m_c) - 1
    assert m_c[peak] - m_c[0] >= 0.05 and m_c[peak] - m_c[-1] >= 0.05
    assert result["summary"]["pretrain_recall"] == 1.0
    assert (tmp_path / "theory.png").stat().st_size > 10_000


def test_same_seed_same_curve():
    a = simulate(TheoryConfig(steps=100, seed=3))
    b = simulate(TheoryConfig(steps=100, seed=3))
    assert a["m_c"] == b["m_c"]


def test_more_s_points_move_attention_to_subject():  # Proposition 2
    attn = [
        simulate(TheoryConfig(steps=400, s_fraction=f))["summary"]["attn_subject_end"]
        for f in (0.0, 0.2, 0.5)
    ]
    assert attn[0] < attn[1] < attn[2]


def test_training_values_memorises_pooled_c_points():  # Proposition 3
    frozen = simulate(TheoryConfig(c_pool=16))["summary"]
    trained = simulate(TheoryConfig(c_pool=16, train_value=True))["summary"]
    recalled = "c_pool_recalled_without_context"
    assert trained[recalled] > frozen[recalled] + 0.05
    assert trained["attn_subject_end"] > frozen["attn_subject_end"] + 0.05


def test_bad_mixture_is_refused():
    with pytest.raises(ValueError, match="at most 1"):
        TheoryConfig(c_fraction=0.7, s_fraction=0.5)
