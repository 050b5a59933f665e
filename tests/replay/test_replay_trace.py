"""Trace loader (Azure format) and the synthetic generator's statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.replay import load_trace, parse_duration, synthetic_trace, write_trace

AZURE_2023 = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.1012220,879,55
"""
AZURE_2024 = """TIMESTAMP,ContextTokens,GeneratedTokens
2024-05-10 00:00:00.009930+00:00,2162,5
2024-05-10 00:00:00.014360+00:00,1150,10
"""


def test_load_azure_2023_and_2024_formats(tmp_path: Path) -> None:
    f = tmp_path / "conv.csv"
    f.write_text(AZURE_2023)
    tr = load_trace(f)
    assert tr.requests == 3
    assert tr.t_s.tolist() == pytest.approx([0.0, 4.314579, 4.420632], abs=1e-6)
    assert tr.context.tolist() == [374, 396, 879] and tr.generated.tolist() == [44, 109, 55]
    assert tr.start.isoformat().startswith("2023-11-16T18:15:46.680590")
    g = tmp_path / "code.csv"
    g.write_text(AZURE_2024)
    tr = load_trace(g)
    assert tr.t_s.tolist() == pytest.approx([0.0, 0.00443], abs=1e-6) and tr.context.tolist() == [2162, 1150]


def test_loader_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(AZURE_2023 + "2023-11-16 18:16:00,abc,5\n")
    with pytest.raises(InvalidInput, match=r"bad\.csv:5"):
        load_trace(bad)
    header = tmp_path / "header.csv"
    header.write_text("time,in,out\n1,2,3\n")
    with pytest.raises(InvalidInput, match=r"header\.csv:1: expected header"):
        load_trace(header)
    with pytest.raises(InvalidInput, match="cannot read"):
        load_trace(tmp_path / "missing.csv")


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    tr = synthetic_trace(600, seed=3, peak_rps=5)
    path = tmp_path / "trace.csv"
    write_trace(tr, path)
    assert path.read_text().splitlines()[0] == "TIMESTAMP,ContextTokens,GeneratedTokens"
    back = load_trace(path)
    assert back.requests == tr.requests
    assert np.allclose(back.t_s, tr.t_s - tr.t_s[0], atol=2e-6)
    assert (back.context == tr.context).all() and (back.generated == tr.generated).all()


def test_synthetic_trace_follows_the_azure_conversation_stats() -> None:
    tr = synthetic_trace(24 * 3600, seed=11, peak_rps=4.0, bursts_per_hour=0.0)
    again = synthetic_trace(24 * 3600, seed=11, peak_rps=4.0, bursts_per_hour=0.0)
    assert (tr.t_s == again.t_s).all() and (tr.context == again.context).all()  # seeded
    # CALIBRATION.md §3a conversation: ContextTokens p50 1,020 / GeneratedTokens p50 129 (lognormal fits)
    assert np.median(tr.context) == pytest.approx(np.exp(6.63), rel=0.05)
    assert np.median(tr.generated) == pytest.approx(np.exp(5.02), rel=0.05)
    req, _, _ = tr.per_minute()
    hourly = req[: 24 * 60].reshape(24, 60).sum(axis=1)
    # diurnal: peak around 16:00, trough around 04:00, peak:trough ~2.5 (noise allowed)
    assert 13 <= int(np.argmax(hourly)) <= 19 and 1 <= int(np.argmin(hourly)) <= 7
    assert 1.8 <= hourly.max() / hourly.min() <= 3.5
    # mean rate of the cosine shape: peak x (1 + 1/2.5) / 2
    assert tr.requests / 86400 == pytest.approx(4.0 * 0.7, rel=0.1)


def test_bursts_raise_minute_level_peaks() -> None:
    calm = synthetic_trace(6 * 3600, seed=5, peak_rps=6.0, bursts_per_hour=0.0)
    bursty = synthetic_trace(6 * 3600, seed=5, peak_rps=6.0, bursts_per_hour=2.0)
    assert bursty.per_minute()[0].max() > 1.3 * calm.per_minute()[0].max()


def test_parse_duration() -> None:
    assert parse_duration("24h") == 86400
    assert parse_duration("90m") == 5400
    assert parse_duration("3600") == 3600
    assert parse_duration("1.5h") == 5400
    for bad in ("", "h", "-1h", "0s", "1w"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
