"""How a take sounds: espeak-ng speech in the locale's voice, fitted to the take's exact length,
with hostile script text kept away from espeak's options, a tone whenever espeak fails, and a
cache; tones without espeak-ng."""

from __future__ import annotations

import io
import itertools
import math
import shutil
import wave
from array import array
from pathlib import Path

import pytest

from onepin_mcp.sandbox import Sandbox
from onepin_mcp.sandbox.speech import (
    SAMPLE_RATE,
    Espeak,
    SpeechFailed,
    Tones,
    choose,
    read_streamed_wav,
    resample,
)
from tests.sandbox.clips import Clip, loudness_variation, open_clip, require_voice

LINE = "Welcome to the product tour."


@pytest.fixture
def espeak() -> Espeak:
    require_voice("espeak")
    path = shutil.which("espeak-ng")
    assert path is not None
    return Espeak(path)


def streamed_wav(samples: array[int], rate: int) -> bytes:
    """A WAV as a streaming writer leaves it: RIFF and data sizes are placeholders (~2 GB)."""
    header = io.BytesIO()
    with wave.open(header, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
    placeholder = (0x7FFFF000).to_bytes(4, "little")
    head = bytearray(header.getvalue())
    head[4:8] = placeholder
    head[40:44] = placeholder
    return bytes(head) + samples.tobytes()


def loudness_variation_of(samples: array[int]) -> float:
    return loudness_variation(Clip(SAMPLE_RATE, 1, 2, samples))


# --- choosing a voice ------------------------------------------------------------------------


def test_auto_speaks_when_espeak_ng_is_on_the_path_and_plays_tones_otherwise() -> None:
    spoken = choose("auto", which=lambda name: f"/usr/bin/{name}")
    assert isinstance(spoken, Espeak)
    assert spoken.executable == "/usr/bin/espeak-ng"
    assert spoken.description == "espeak-ng"
    toned = choose("auto", which=lambda name: None)
    assert isinstance(toned, Tones)
    assert toned.description == "tones (install espeak-ng for speech)"


def test_espeak_is_refused_without_espeak_ng_and_an_unknown_voice_is_refused() -> None:
    with pytest.raises(ValueError, match="needs espeak-ng on the PATH"):
        choose("espeak", which=lambda name: None)
    with pytest.raises(ValueError, match="voice must be one of auto, espeak, tone"):
        choose("robot")  # type: ignore[arg-type]


def test_a_sandbox_pinned_to_tones_says_so() -> None:
    sandbox = Sandbox(manual_clock=True, voice="tone")
    assert sandbox.voice_description == "tones (install espeak-ng for speech)"


# --- reading espeak's output -------------------------------------------------------------------


def test_a_streamed_wav_is_read_to_its_end_whatever_its_header_claims() -> None:
    samples = array("h", [0, 1000, -1000, 32767, -32768, 5])
    rate, read = read_streamed_wav(streamed_wav(samples, 22050))
    assert (rate, read) == (22050, samples)


@pytest.mark.parametrize(
    "garbage", [b"", b"hello, world", b"RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00\x00\x00"]
)
def test_output_that_is_not_a_usable_wav_is_a_speech_failure(garbage: bytes) -> None:
    with pytest.raises(SpeechFailed):
        read_streamed_wav(garbage)


def test_resampling_keeps_duration_and_pitch() -> None:
    step = 2 * math.pi * 440 / 22050
    second = array("h", (round(8000 * math.sin(step * n)) for n in range(22050)))
    resampled = resample(second, 22050, SAMPLE_RATE)
    assert len(resampled) == SAMPLE_RATE
    rising = sum(1 for a, b in itertools.pairwise(resampled) if a < 0 <= b)
    assert 438 <= rising <= 441


# --- espeak-ng -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "voice"),
    [
        ("en-us", "en-us"),
        ("en-gb", "en-gb"),
        ("en-au", "en-us"),
        ("ko-kr", "ko"),
        ("ja-jp", "ja"),
        ("de-de", "de"),
        ("es-es", "es"),
        ("fr-fr", "fr-fr"),
        ("fr-ca", "fr-fr"),
        ("pt-br", "pt-br"),
        ("zh-cn", "cmn"),
        ("tlh-qo", "en-us"),
    ],
)
def test_each_locale_is_read_in_a_voice_for_it(espeak: Espeak, locale: str, voice: str) -> None:
    assert espeak.voice_for(locale) == voice


@pytest.mark.parametrize("duration_ms", [1, 700, 2_345, 9_999])
def test_speech_lasts_exactly_the_takes_duration(espeak: Espeak, duration_ms: int) -> None:
    clip = open_clip(espeak.clip(LINE, "en-us", duration_ms))
    assert (clip.rate, clip.channels, clip.sample_width) == (SAMPLE_RATE, 1, 2)
    assert len(clip.samples) == 16 * duration_ms


def test_short_speech_is_padded_with_silence(espeak: Espeak) -> None:
    samples = open_clip(espeak.clip("Hi.", "en-us", 3_000)).samples
    assert not any(samples[-16 * 1_500 :]), "the last 1.5 s is silence"
    assert loudness_variation(open_clip(espeak.clip("Hi.", "en-us", 3_000))) > 0.3


def test_long_speech_is_spoken_faster_and_what_still_overruns_fades_out(espeak: Espeak) -> None:
    long_line = " ".join([LINE] * 6)
    at_ease = espeak.fitted(long_line, "en-us", 60_000)
    spoken_ms = 1000 * len(at_ease.tobytes().rstrip(b"\x00")) / 2 / SAMPLE_RATE
    hurried = espeak.fitted(long_line, "en-us", round(spoken_ms * 0.6))
    assert len(hurried) == 16 * round(spoken_ms * 0.6)
    # Cut at its usual pace it would end mid-word; spoken faster, all of it fits, then silence.
    assert not any(hurried[-16 * 100 :]), "the whole line fits, so the clip ends in silence"
    assert loudness_variation_of(hurried) > 0.3
    squeezed = espeak.fitted(long_line, "en-us", 500)
    assert len(squeezed) == 16 * 500
    assert max(abs(s) for s in squeezed[-8:]) < 2_000, "cut with a fade, not a click"


def test_different_lines_sound_different_and_a_line_sounds_the_same_every_time(
    espeak: Espeak,
) -> None:
    first = espeak.clip(LINE, "en-us", 2_500)
    assert espeak.clip("Share any view with a single link.", "en-us", 2_500) != first
    assert espeak.clip(LINE, "de-de", 2_500) != first, "another voice"
    fresh = Espeak(espeak.executable).clip(LINE, "en-us", 2_500)
    assert fresh == first, "espeak-ng is deterministic, so downloads are byte-stable"


def test_a_clip_is_synthesized_once_and_then_served_from_the_cache(espeak: Espeak) -> None:
    assert espeak.clip(LINE, "en-us", 2_500) is espeak.clip(LINE, "en-us", 2_500)
    tiny = Espeak(espeak.executable, cache_bytes=1)
    first = tiny.clip(LINE, "en-us", 2_500)
    tiny.clip(LINE, "en-us", 2_600)  # pushes the first out of a one-byte budget
    assert tiny.clip(LINE, "en-us", 2_500) is not first


@pytest.mark.parametrize(
    "text",
    [
        "-w {out}",
        "--help",
        "-v\nde\n--stdout {out}",
        '<speak><audio src="file:///etc/passwd"/>Hello</speak>',
        "-- -f /etc/passwd",
    ],
)
def test_script_text_is_spoken_never_read_as_options(
    espeak: Espeak, tmp_path: Path, text: str
) -> None:
    out = tmp_path / "written-by-espeak.wav"
    hostile = text.format(out=out)
    clip = espeak.clip(hostile, "en-us", 4_000)
    assert len(open_clip(clip).samples) == 16 * 4_000
    assert clip != Tones().clip(hostile, "en-us", 4_000), "spoken, not the failure tone"
    assert loudness_variation(open_clip(clip)) > 0.3
    assert not out.exists()


@pytest.mark.parametrize("stand_in", ["false", "cat", "echo"])
def test_when_espeak_fails_or_writes_no_wav_the_take_plays_as_a_tone(stand_in: str) -> None:
    # Real programs in espeak-ng's place: one fails, one echoes the text, one ignores it all.
    path = shutil.which(stand_in)
    assert path is not None
    clip = Espeak(path).clip(LINE, "ko-kr", 1_234)
    assert clip == Tones().clip(LINE, "ko-kr", 1_234)
    assert len(open_clip(clip).samples) == 16 * 1_234


def test_a_missing_espeak_program_plays_tones(tmp_path: Path) -> None:
    gone = Espeak(str(tmp_path / "espeak-ng"))
    assert gone.clip(LINE, "en-us", 800) == Tones().clip(LINE, "en-us", 800)


# --- tones ---------------------------------------------------------------------------------------


def test_a_tone_lasts_exactly_the_takes_duration_even_for_ten_minutes() -> None:
    samples = open_clip(Tones().clip(LINE, "ja-jp", 600_000)).samples
    assert len(samples) == 16 * 600_000
    assert max(samples[-16_000:]) > 0.9 * max(samples[:16_000]), "still playing at the end"
    assert loudness_variation_of(samples[16_000:48_000]) < 0.1


def test_tones_tell_locales_apart_and_say_nothing_of_the_text() -> None:
    tones = Tones()
    assert tones.clip(LINE, "en-us", 900) == tones.clip("Other words.", "en-us", 900)
    assert tones.clip(LINE, "en-us", 900) != tones.clip(LINE, "ko-kr", 900)
