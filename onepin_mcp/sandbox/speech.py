"""How a sandbox take sounds: the line spoken by espeak-ng, or a tone, exactly as long as the API
says the take is.

The API reports every take's `duration_ms`; a clip that plays for another length would make the
sandbox disagree with itself. So every clip is 16 kHz mono 16-bit PCM (16 frames per
millisecond: any whole `duration_ms` is a whole number of frames) and is fitted to that length.

With espeak-ng on the PATH, the line's text is spoken in a voice for its locale. Speech longer than
the take is synthesized again at a faster rate (espeak's `-s`, words per minute), and what still
overruns is cut with a short fade; shorter speech is padded with silence. The text comes from
users' scripts, so it never reaches espeak's command line: it goes on stdin (`--stdin`), where a
leading `-` or a newline is just text, and without `-m`, so markup is read out, not obeyed.
Anything that goes wrong (a missing voice, a crash, a timeout, output that is not a WAV) gives
the tone instead: a sandbox download always plays.

Without espeak-ng, every take is a soft tone whose pitch tells the locales apart.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Literal

from . import audio

SAMPLE_RATE: Final = 16000
"""Every clip's rate: 16 frames per millisecond, so a clip is exactly `duration_ms` long."""

VoiceChoice = Literal["auto", "espeak", "tone"]
VOICE_CHOICES: Final[tuple[VoiceChoice, ...]] = ("auto", "espeak", "tone")

ESPEAK: Final = "espeak-ng"

# espeak's own limits for -s (speak_lib.h: espeakRATE_MINIMUM, espeakRATE_MAXIMUM) and default.
_DEFAULT_WPM: Final = 175
_MAX_WPM: Final = 450
# Aim a little under the take's length when speeding up: the rate is only roughly linear.
_SPEED_MARGIN: Final = 1.08
_TRIM_FADE_MS: Final = 30
_TIMEOUT_S: Final = 10.0
_CACHE_BYTES: Final = 64 * 1024 * 1024

_LOCALE_TONES: Final = {
    "en": 440.0,
    "ko": 494.0,
    "ja": 523.0,
    "de": 392.0,
    "es": 349.0,
    "fr": 330.0,
}
_OTHER_TONE: Final = 415.0

# Locales whose espeak voice is not simply the locale or its language (espeak names French
# "fr-fr" and Mandarin "cmn"; an English locale it doesn't know is read in American English).
_VOICE_ALIASES: Final = {"en": "en-us", "fr": "fr-fr", "zh": "cmn"}
_FALLBACK_VOICE: Final = "en-us"


class SpeechFailed(Exception):
    """espeak-ng gave no usable speech; the caller plays the tone instead."""


def tone_for(locale: str) -> float:
    return _LOCALE_TONES.get(locale.split("-")[0].lower(), _OTHER_TONE)


class Tones:
    """Every take as a soft tone of its exact length, pitched by locale."""

    name: Final = "tone"
    description: Final = "tones (install espeak-ng for speech)"

    def clip(self, text: str, locale: str, duration_ms: int) -> bytes:
        del text  # a tone says nothing
        return audio.wav_bytes(duration_ms, tone_for(locale), SAMPLE_RATE)


class Espeak:
    """Every take spoken by espeak-ng in a voice for its locale, fitted to its exact length.

    Clips are cached by (text, locale, duration) up to a byte budget, least recently used first
    out: a six-language ZIP and the playback URLs of its cards ask for the same clips again.
    Safe to call from several threads (the sandbox serves files from its own thread).
    """

    name: Final = "espeak"
    description: Final = "espeak-ng"

    def __init__(
        self,
        executable: str,
        *,
        timeout_s: float = _TIMEOUT_S,
        cache_bytes: int = _CACHE_BYTES,
    ) -> None:
        self.executable = executable
        self.timeout_s = timeout_s
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._voices: frozenset[str] | None = None

    def clip(self, text: str, locale: str, duration_ms: int) -> bytes:
        key = (text, locale.lower(), duration_ms)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        try:
            samples = self.fitted(text, locale, duration_ms)
        except SpeechFailed:
            return Tones().clip(text, locale, duration_ms)
        made = audio.pcm_wav(samples, SAMPLE_RATE)
        self._remember(key, made)
        return made

    def fitted(self, text: str, locale: str, duration_ms: int) -> array[int]:
        """The speech of `text` as exactly `duration_ms` of 16 kHz samples."""
        if not 0 < duration_ms <= audio.MAX_DURATION_MS:
            raise ValueError(f"duration_ms must be between 1 and {audio.MAX_DURATION_MS}")
        voice = self.voice_for(locale)
        target = SAMPLE_RATE * duration_ms // 1000
        speech = self._speak(text, voice, _DEFAULT_WPM)
        if len(speech) > target:
            faster = math.ceil(_DEFAULT_WPM * _SPEED_MARGIN * len(speech) / target)
            speech = self._speak(text, voice, min(faster, _MAX_WPM))
        return fit(speech, target)

    def voice_for(self, locale: str) -> str:
        """The espeak voice for a locale: the locale itself, its language, or American English."""
        known = self.voices()
        wanted = locale.strip().lower().replace("_", "-")
        language = wanted.split("-")[0]
        for name in (wanted, _VOICE_ALIASES.get(language), language):
            if name and name in known:
                return name
        return _FALLBACK_VOICE

    def voices(self) -> frozenset[str]:
        """The voice names this espeak-ng knows (`--voices`, read once)."""
        if self._voices is None:
            try:
                listed = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
                    [self.executable, "--voices"],
                    capture_output=True,
                    timeout=self.timeout_s,
                    check=True,
                ).stdout.decode("utf-8", "replace")
            except (OSError, subprocess.SubprocessError):
                listed = ""
            rows = (line.split() for line in listed.splitlines()[1:])
            self._voices = frozenset(row[1].lower() for row in rows if len(row) > 1)
        return self._voices

    def _speak(self, text: str, voice: str, words_per_minute: int) -> array[int]:
        """espeak's speech of `text` at 16 kHz; `text` goes on stdin, never into argv."""
        argv = [
            self.executable,
            "--stdin",  # the text is read from stdin whole, never parsed as options
            "--stdout",  # a WAV on stdout, no audio device
            "-b",
            "1",  # the input is UTF-8
            "-z",  # no pause after the last sentence: the take's length is ours to fill
            "-v",
            voice,
            "-s",
            str(words_per_minute),
        ]
        try:
            done = subprocess.run(  # noqa: S603 - an argument list, no shell; the text is on stdin
                argv,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SpeechFailed(f"{ESPEAK} could not run: {exc}") from exc
        if done.returncode != 0:
            raise SpeechFailed(f"{ESPEAK} exited with {done.returncode}")
        rate, samples = read_streamed_wav(done.stdout)
        if not samples:
            raise SpeechFailed(f"{ESPEAK} produced no speech")
        return resample(samples, rate, SAMPLE_RATE)

    def _remember(self, key: tuple[str, str, int], made: bytes) -> None:
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = made
            self._cached_bytes += len(made)
            while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)


Voice = Tones | Espeak


def choose(
    choice: VoiceChoice = "auto", *, which: Callable[[str], str | None] = shutil.which
) -> Voice:
    """The voice a sandbox uses: "espeak" (refused when espeak-ng is not on the PATH), "tone",
    or "auto" (espeak-ng when it is on the PATH, tones otherwise)."""
    if choice not in VOICE_CHOICES:
        raise ValueError(f"voice must be one of {', '.join(VOICE_CHOICES)}, not {choice!r}")
    if choice == "tone":
        return Tones()
    found = which(ESPEAK)
    if found is None:
        if choice == "espeak":
            raise ValueError(f"voice='espeak' needs {ESPEAK} on the PATH")
        return Tones()
    return Espeak(found)


# --- PCM helpers -----------------------------------------------------------------------------


def read_streamed_wav(data: bytes) -> tuple[int, array[int]]:
    """The rate and samples of a mono 16-bit PCM WAV that may have been written as a stream.

    espeak-ng's `--stdout` can't seek back, so its RIFF and data sizes are placeholders (about
    2 GB): the data chunk is read to the end of what arrived instead of to its declared size.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechFailed(f"{ESPEAK} did not write a WAV")
    rate: int | None = None
    position = 12
    while position + 8 <= len(data):
        chunk = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        body = position + 8
        if chunk == b"fmt " and size >= 16:
            kind = int.from_bytes(data[body : body + 2], "little")
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            rate = int.from_bytes(data[body + 4 : body + 8], "little")
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
            if (kind, channels, bits) != (1, 1, 16) or not 8000 <= rate <= 96000:
                raise SpeechFailed(f"{ESPEAK} wrote an unexpected WAV format")
        elif chunk == b"data":
            if rate is None:
                raise SpeechFailed(f"{ESPEAK} wrote samples before their format")
            end = min(body + size, len(data))
            end -= (end - body) % 2
            samples = array("h", data[body:end])
            if sys.byteorder == "big":
                samples.byteswap()
            return rate, samples
        position = body + size + (size & 1)
    raise SpeechFailed(f"{ESPEAK} wrote a WAV without samples")


def resample(samples: array[int], source_rate: int, target_rate: int) -> array[int]:
    """`samples` at another rate, by linear interpolation in exact integer steps.

    Good enough for a synthetic voice (espeak puts little energy above 8 kHz, so folding the
    band between 8 and 11 kHz down is inaudible), and fast enough in pure Python for an hour of
    audio in a ZIP.
    """
    if source_rate == target_rate or not samples:
        return array("h", samples)
    divisor = math.gcd(source_rate, target_rate)
    up, down = target_rate // divisor, source_rate // divisor
    count = len(samples) * target_rate // source_rate
    padded = array("h", samples)
    padded.append(samples[-1])  # the last output sample may interpolate one step past the end
    return array(
        "h",
        [
            (padded[i] * (up - f) + padded[i + 1] * f) // up
            for i, f in (divmod(n * down, up) for n in range(count))
        ],
    )


def fit(speech: array[int], target: int) -> array[int]:
    """Exactly `target` samples: silence after shorter speech; longer speech cut with a fade."""
    if len(speech) <= target:
        return speech + array("h", bytes(2 * (target - len(speech))))
    cut = speech[:target]
    fade = min(SAMPLE_RATE * _TRIM_FADE_MS // 1000, target)
    for n in range(fade):
        index = target - 1 - n
        cut[index] = cut[index] * n // fade
    return cut
