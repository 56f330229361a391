"""The sandbox's media files: real WAVs and ZIPs that ordinary tools open, byte-for-byte stable."""

from __future__ import annotations

import io
import itertools
import struct
import wave
import zipfile
from dataclasses import dataclass

import pytest

from onepin_mcp.sandbox.audio import AMPLITUDE, wav_bytes, zip_bytes


@dataclass(frozen=True)
class Wav:
    channels: int
    sample_width: int
    rate: int
    compression: str
    samples: list[int]


def read_wav(data: bytes) -> Wav:
    with wave.open(io.BytesIO(data), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        count = wav.getnframes()
        return Wav(
            channels=wav.getnchannels(),
            sample_width=wav.getsampwidth(),
            rate=wav.getframerate(),
            compression=wav.getcomptype(),
            samples=list(struct.unpack(f"<{count}h", frames)),
        )


def test_a_wav_is_mono_16_bit_pcm_of_the_requested_length() -> None:
    wav = read_wav(wav_bytes(250, 440.0))
    assert (wav.channels, wav.sample_width, wav.rate, wav.compression) == (1, 2, 16000, "NONE")
    assert len(wav.samples) == 4000


def test_a_short_clip_is_a_few_kilobytes() -> None:
    data = wav_bytes(200, 523.25)
    assert 2_000 < len(data) < 8_000


def test_the_sample_rate_can_be_chosen() -> None:
    wav = read_wav(wav_bytes(100, 300.0, sample_rate=8000))
    assert (wav.rate, len(wav.samples)) == (8000, 800)


def test_the_tone_is_soft_and_fades_in_and_out_without_a_click() -> None:
    samples = read_wav(wav_bytes(300, 440.0)).samples
    peak = max(abs(s) for s in samples)
    assert 0.9 * AMPLITUDE * 32767 < peak <= AMPLITUDE * 32767 + 1
    assert abs(samples[0]) <= 1
    assert abs(samples[-1]) <= 1
    assert max(abs(s) for s in samples[:40]) < peak / 4


def test_the_tone_has_the_requested_frequency() -> None:
    samples = read_wav(wav_bytes(1000, 440.0)).samples
    rising = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    assert 438 <= rising <= 441


def test_wavs_are_deterministic_and_differ_by_frequency() -> None:
    assert wav_bytes(150, 440.0) == wav_bytes(150, 440.0)
    assert wav_bytes(150, 440.0) != wav_bytes(150, 660.0)


@pytest.mark.parametrize(
    ("duration_ms", "frequency_hz", "sample_rate"),
    [
        (0, 440.0, 16000),
        (-5, 440.0, 16000),
        (100, 0.0, 16000),
        (100, 8000.0, 16000),
        (100, 440.0, 100),
    ],
)
def test_impossible_tones_are_refused(
    duration_ms: int, frequency_hz: float, sample_rate: int
) -> None:
    with pytest.raises(ValueError, match="must be"):
        wav_bytes(duration_ms, frequency_hz, sample_rate)


def test_a_zip_lists_its_entries_in_order_with_their_contents() -> None:
    files = {"run/line-001.wav": wav_bytes(100, 440.0), "run/manifest.json": b'{"lines": 1}'}
    with zipfile.ZipFile(io.BytesIO(zip_bytes(files))) as archive:
        assert archive.namelist() == ["run/line-001.wav", "run/manifest.json"]
        assert archive.testzip() is None
        assert {name: archive.read(name) for name in archive.namelist()} == files


def test_zips_are_deterministic() -> None:
    files = {"a.txt": b"alpha", "b/c.txt": b"gamma"}
    assert zip_bytes(files) == zip_bytes(dict(files))


def test_an_empty_zip_is_still_a_valid_archive() -> None:
    with zipfile.ZipFile(io.BytesIO(zip_bytes({}))) as archive:
        assert archive.namelist() == []


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../escape.wav", "run/../../x", "a\\b.wav"])
def test_unsafe_entry_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe name"):
        zip_bytes({name: b"x"})
