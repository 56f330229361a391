"""Reading the sandbox's clips as a listener would: how long they play, and whether they sound
like speech or like a steady tone."""

from __future__ import annotations

import io
import math
import shutil
import statistics
import wave
from array import array
from dataclasses import dataclass

import pytest

from onepin_mcp.sandbox.speech import VoiceChoice

FRAME_MS = 20


@dataclass(frozen=True)
class Clip:
    rate: int
    channels: int
    sample_width: int
    samples: array[int]

    @property
    def duration_ms(self) -> float:
        return 1000 * len(self.samples) / self.rate


def open_clip(data: bytes) -> Clip:
    """A WAV as `wave` reads it (so its header must be truthful), mono 16-bit samples."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        clip = Clip(wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), array("h"))
    clip.samples.frombytes(frames)
    return clip


def loudness_variation(clip: Clip) -> float:
    """How much loudness changes from one 20 ms frame to the next among the audible frames
    (their RMS's standard deviation over its mean): a steady tone stays near 0, speech, which
    rises and falls with every syllable, well above."""
    size = clip.rate * FRAME_MS // 1000
    levels = [
        math.sqrt(sum(s * s for s in clip.samples[i : i + size]) / size)
        for i in range(0, len(clip.samples) - size + 1, size)
    ]
    audible = [level for level in levels if level > 0.05 * max(levels)]
    return statistics.pstdev(audible) / statistics.fmean(audible)


def require_voice(voice: VoiceChoice) -> VoiceChoice:
    """The voice, or a skip saying why when it needs espeak-ng and the machine has none."""
    if voice == "espeak" and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not on the PATH (apt-get install espeak-ng): speech untested")
    return voice
