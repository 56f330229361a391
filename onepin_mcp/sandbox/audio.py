"""Real media files for the sandbox's downloads: PCM as WAV, a tone, files bundled as ZIP.

All are deterministic (same inputs, same bytes), so a download can be compared with what the
sandbox served, and all open in ordinary tools, so a demo download plays. A tone of any length
costs one second's worth of arithmetic: the rest is that second repeated.
"""

from __future__ import annotations

import io
import math
import sys
import wave
import zipfile
from array import array
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Final

AMPLITUDE: Final = 0.25
"""Peak level as a fraction of full scale: audible but soft."""

FADE_MS: Final = 10
"""Fade in and out over this long, so the tone starts and ends without a click."""

MAX_DURATION_MS: Final = 10 * 60 * 1000

# A fixed timestamp for every archive entry (the earliest ZIP can store), for reproducible bytes.
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)


def pcm_wav(samples: array[int], sample_rate: int) -> bytes:
    """A mono 16-bit PCM WAV of `samples` (an array of type "h")."""
    data = array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()  # WAV samples are little-endian whatever the machine is
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(data.tobytes())
    return buffer.getvalue()


def tone_samples(duration_ms: int, frequency_hz: float, sample_rate: int = 16000) -> array[int]:
    """A soft sine tone, faded in and out, as 16-bit samples."""
    if not 0 < duration_ms <= MAX_DURATION_MS:
        raise ValueError(f"duration_ms must be between 1 and {MAX_DURATION_MS}")
    if not 8000 <= sample_rate <= 48000:
        raise ValueError("sample_rate must be between 8000 and 48000")
    if not 0 < frequency_hz < sample_rate / 2:
        raise ValueError("frequency_hz must be positive and below half the sample rate")

    count = sample_rate * duration_ms // 1000
    # A whole-hertz tone repeats exactly after sample_rate / gcd(f, sample_rate) samples (at most
    # one second), so a ten-minute clip is one period computed and the rest copied.
    if float(frequency_hz).is_integer():
        period = sample_rate // math.gcd(int(frequency_hz), sample_rate)
    else:
        period = count
    peak = AMPLITUDE * 32767
    step = 2 * math.pi * frequency_hz / sample_rate
    cycle = array("h", (round(peak * math.sin(step * n)) for n in range(min(period, count))))
    samples = cycle * -(-count // len(cycle))
    del samples[count:]
    fade = min(sample_rate * FADE_MS // 1000, count // 2)
    for n in range(fade):
        samples[n] = round(samples[n] * n / fade)
        last = count - 1 - n
        samples[last] = round(samples[last] * n / fade)
    return samples


def wav_bytes(duration_ms: int, frequency_hz: float, sample_rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone (about 32 KB per second at 16 kHz)."""
    return pcm_wav(tone_samples(duration_ms, frequency_hz, sample_rate), sample_rate)


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A ZIP archive holding `files` (name → content) in the mapping's order.

    Names are relative POSIX paths; absolute names and `..` are refused, since a download from a
    trustworthy API never contains them.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            path = PurePosixPath(name)
            if not name or "\\" in name or path.is_absolute() or ".." in path.parts:
                raise ValueError(f"unsafe name for an archive entry: {name!r}")
            entry = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16  # a regular file, readable by all
            archive.writestr(entry, content)
    return buffer.getvalue()
