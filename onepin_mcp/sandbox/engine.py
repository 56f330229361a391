"""The run engine: what a run will do, what it costs, and how it moves on the clock.

When a run starts, its whole future is decided at once from the definition snapshot: script lines,
output locales and voices, one planned step per node execution (with retries where a validator
sends takes back to the generator), the takes and their validator scores. Scores are a
deterministic function of the text, locale and attempt, so a given workflow always behaves the
same way: that is what lets the seed promise "this workflow completes, that one fails".

Time then only reveals the plan. `advance()` replays every transition that is due at `now`,
at the exact instant it was due, so the history a client sees does not depend on how often it
polls. Nothing runs in the background: the API calls `sync()` on every request.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .store import (
    JSON,
    SLOT_HOLDING_STATUSES,
    DictionaryEntry,
    PlannedStep,
    Run,
    RunPlan,
    Score,
    ScriptLine,
    Segment,
    Step,
    Store,
    Take,
    User,
    Voice,
    Workflow,
)

NODE_TYPES = (
    "source_script",
    "operator_translator",
    "operator_normalizer",
    "operator_generator",
    "operator_phoneme_injector",
    "sink_preview",
    "validator_error_rate",
    "validator_naturalness",
    "validator_noise",
    "validator_pronunciation",
    "operator_pronunciation_corrector",
)
VALIDATOR_KINDS = {
    "validator_error_rate": "wer",
    "validator_naturalness": "naturalness",
    "validator_pronunciation": "pronunciation",
    "validator_noise": "noise",
}
DEFAULT_THRESHOLDS = {"wer": 85.0, "naturalness": 70.0, "pronunciation": 80.0, "noise": 60.0}
DEFAULT_NAMES = {
    "source_script": "Script",
    "operator_translator": "Translator",
    "operator_normalizer": "Normalizer",
    "operator_generator": "Voice Generator",
    "operator_phoneme_injector": "Phoneme Injector",
    "operator_pronunciation_corrector": "Pronunciation Corrector",
    "sink_preview": "Export",
    "validator_error_rate": "Word accuracy",
    "validator_naturalness": "Naturalness",
    "validator_noise": "Noise check",
    "validator_pronunciation": "Pronunciation check",
}

# Step ids are derived from the run id so that seeded history is identical on every reset.
_STEP_NAMESPACE = uuid.UUID("7d1c0b52-3f0e-4c59-9a57-0b6f3c2e8d14")

# Pacing, in sandbox seconds. Chosen so that a small script (a few lines, two locales) finishes
# in well under 20 s at speed 1.0 while a long chapter takes many minutes.
QUEUE_DELAY_S = 1.0
_SOURCE_S = 0.3

# Billing rates: credits per character of text handled by each kind of node.
_GENERATOR_CHARS_PER_CREDIT = 1000
_TRANSLATOR_CHARS_PER_CREDIT = 5000
_VALIDATOR_CHARS_PER_CREDIT = 4000

# Milliseconds of speech per character: scripts with dense characters speak longer per character.
_MS_PER_CHAR = {"ja": 150, "zh": 150, "ko": 110}
_DEFAULT_MS_PER_CHAR = 62

# Terms text-to-speech voices tend to stumble on: what the pronunciation validator flags.
_HARD_WORDS = frozenset(
    {"kubernetes", "kubectl", "nginx", "grafana", "terraform", "oauth", "sqlite"}
)
_HARD_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*")


# The dictionary a run applies: (word lowercased, locale) pairs, fixed when the run starts.
Lexicon = frozenset[tuple[str, str]]


def run_lexicon(snapshot: JSON, entries: Sequence[DictionaryEntry]) -> Lexicon:
    """The dictionary entries a run of `snapshot` applies. The phoneme injector is the node that
    reads the workspace dictionary, so a graph without one applies none; with `dictionary_ids`
    in its config it applies only those entries, else every entry of the workspace."""
    injectors = [n for n in graph_nodes(snapshot) if n.get("type") == "operator_phoneme_injector"]
    if not injectors:
        return frozenset()
    wanted: set[str] | None = set()
    for node in injectors:
        ids = node_config(node).get("dictionary_ids")
        if not isinstance(ids, list) or not ids:
            wanted = None
            break
        assert wanted is not None
        wanted.update(str(entry_id) for entry_id in ids)
    return frozenset(
        (entry.word.lower(), entry.language)
        for entry in entries
        if wanted is None or entry.id in wanted
    )


class DefinitionProblem(Exception):
    """The workflow (or the run's overrides) can't be run as it is: answered with 422."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class RunConflict(Exception):
    """The run can't change state now (already active, limit reached, not paused): 409."""


class InsufficientCredits(Exception):
    """The balance doesn't cover the run's minimum cost."""

    def __init__(self, needed: int, balance: int) -> None:
        super().__init__(
            f"Insufficient credits: this run needs at least {needed} credits "
            f"and the balance is {balance}."
        )
        self.needed = needed
        self.balance = balance


@dataclass(frozen=True)
class NodeEstimate:
    node_id: str
    node_type: str
    min_credits: int
    expected_credits: int
    max_credits: int


@dataclass(frozen=True)
class Estimate:
    min_credits: int
    expected_credits: int
    max_credits: int
    breakdown: tuple[NodeEstimate, ...]


def normalize_locale(value: str) -> str:
    return value.strip().replace("_", "-").lower()


def _unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for the given inputs."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def audio_id_for(run_id: str, line_index: int, locale: str, iteration: int) -> str:
    return hashlib.sha256(f"{run_id}:{line_index}:{locale}:{iteration}".encode()).hexdigest()[:16]


def step_id_for(run_id: str, plan_index: int) -> str:
    return str(uuid.uuid5(_STEP_NAMESPACE, f"{run_id}/{plan_index}"))


# --- reading a definition ----------------------------------------------------------------------


def graph_nodes(definition: JSON) -> list[JSON]:
    graph = definition.get("graph") or {}
    nodes = graph.get("nodes") or []
    return [node for node in nodes if isinstance(node, dict)]


def graph_edges(definition: JSON) -> list[JSON]:
    graph = definition.get("graph") or {}
    edges = graph.get("edges") or []
    return [edge for edge in edges if isinstance(edge, dict)]


def node_name(node: JSON) -> str:
    name = node.get("name")
    return name if isinstance(name, str) and name else DEFAULT_NAMES.get(str(node.get("type")), "")


def node_config(node: JSON) -> JSON:
    config = node.get("config")
    return config if isinstance(config, dict) else {}


def execution_order(definition: JSON) -> list[JSON]:
    """Nodes in the order they execute: `execution.steps` when it names every node, else a
    topological order of the forward edges (a validator's `fail` edge loops back, not forward)."""
    nodes = graph_nodes(definition)
    by_id = {str(node.get("id")): node for node in nodes}
    listed = (definition.get("execution") or {}).get("steps") or []
    if isinstance(listed, list) and sorted(map(str, listed)) == sorted(by_id):
        return [by_id[str(node_id)] for node_id in listed]
    incoming: dict[str, set[str]] = {node_id: set() for node_id in by_id}
    for edge in graph_edges(definition):
        source, target = str(edge.get("source")), str(edge.get("target"))
        if edge.get("sourcePort") != "fail" and source in by_id and target in by_id:
            incoming[target].add(source)
    ordered: list[JSON] = []
    done: set[str] = set()
    while len(ordered) < len(by_id):
        ready = [nid for nid in by_id if nid not in done and incoming[nid] <= done]
        if not ready:  # a cycle: keep declaration order for what is left
            ready = [nid for nid in by_id if nid not in done]
        for node_id in ready:
            ordered.append(by_id[node_id])
            done.add(node_id)
    return ordered


def output_locales(definition: JSON, source_locale: str) -> tuple[str, ...]:
    locales = [source_locale]
    for node in graph_nodes(definition):
        if node.get("type") == "operator_translator":
            for target in node_config(node).get("target_languages") or []:
                locale = normalize_locale(str(target))
                if locale not in locales:
                    locales.append(locale)
    return tuple(locales)


def apply_overrides(definition: JSON, script_text: str | None, source_language: str | None) -> JSON:
    """The definition a run snapshots: the stored one with the run-scoped script swapped in."""
    if script_text is None and source_language is None:
        return definition
    sources = [node for node in graph_nodes(definition) if node.get("type") == "source_script"]
    if len(sources) != 1:
        raise DefinitionProblem(
            "script_text",
            "Run-scoped script overrides need exactly one source_script node; "
            f"this workflow has {len(sources)}.",
        )
    snapshot: JSON = _deep_copy(definition)
    for node in graph_nodes(snapshot):
        if node.get("type") == "source_script":
            config = dict(node_config(node))
            if script_text is not None:
                config["script_text"] = script_text
            if source_language is not None:
                config["source_language"] = normalize_locale(source_language)
            node["config"] = config
    return snapshot


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


@dataclass(frozen=True)
class _Script:
    lines: tuple[ScriptLine, ...]
    source_locale: str
    locales: tuple[str, ...]
    voices: dict[str, Voice]


def read_script(definition: JSON) -> _Script:
    """The lines, locales and voices a run of `definition` works with, or a DefinitionProblem
    naming the first thing that stops it from running (the API's run-start preflight)."""
    nodes = graph_nodes(definition)
    if not nodes:
        raise DefinitionProblem("definition.graph.nodes", "The workflow has no nodes to run.")
    sources = [node for node in nodes if node.get("type") == "source_script"]
    if not sources:
        raise DefinitionProblem(
            "definition.graph.nodes", "The workflow has no source_script node, so no text to run."
        )
    known = {str(node.get("id")) for node in nodes}
    fed = {
        str(edge.get("target")) for edge in graph_edges(definition) if edge.get("source") in known
    }
    for node in nodes:
        if node.get("type") != "source_script" and str(node.get("id")) not in fed:
            raise DefinitionProblem(
                f"definition.graph.nodes.{node.get('id')}",
                f"Node '{node_name(node)}' ({node.get('type')}) has no incoming connection, "
                "so nothing would reach it.",
            )
    config = node_config(sources[0])
    text = config.get("script_text")
    raw_lines = [line.strip() for line in str(text or "").splitlines()]
    lines = tuple(
        ScriptLine(index=i, line_id=f"ln-{i}", text=line)
        for i, line in enumerate(line for line in raw_lines if line)
    )
    if not lines:
        raise DefinitionProblem(
            "script_text",
            "The workflow's script is empty. Provide script_text or save a script first.",
        )
    source_locale = normalize_locale(str(config.get("source_language") or "en-us"))
    locales = output_locales(definition, source_locale)
    generators = [node for node in nodes if node.get("type") == "operator_generator"]
    if not generators:
        raise DefinitionProblem(
            "definition.graph.nodes", "The workflow has no operator_generator node."
        )
    voice_map = node_config(generators[0]).get("voice_map") or {}
    voices: dict[str, Voice] = {}
    for locale in locales:
        assignments = _voice_assignments(voice_map, locale)
        if not assignments:
            raise DefinitionProblem(
                f"definition.graph.nodes.{generators[0].get('id')}.config.voice_map",
                f"No voice is assigned for {locale}; assign one in the generator's voice_map.",
            )
        first = assignments[0]
        voices[locale] = Voice(
            name=str(first.get("voice_name") or first.get("voice_id") or "Voice"),
            provider=str(first.get("provider") or "elevenlabs"),
            model=str(first.get("model") or "eleven_multilingual_v2"),
        )
    return _Script(lines=lines, source_locale=source_locale, locales=locales, voices=voices)


def _voice_assignments(voice_map: Any, locale: str) -> list[JSON]:
    if not isinstance(voice_map, dict):
        return []
    for key, value in voice_map.items():
        if normalize_locale(str(key)) == locale and isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


# --- planning ----------------------------------------------------------------------------------


def translate(
    text: str, locale: str, source_locale: str, translations: Mapping[str, Mapping[str, str]]
) -> str:
    if locale == source_locale:
        return text
    known = translations.get(text, {}).get(locale)
    return known if known is not None else f"[{locale}] {text}"


def speech_ms(text: str, locale: str) -> int:
    rate = _MS_PER_CHAR.get(locale.split("-")[0], _DEFAULT_MS_PER_CHAR)
    return 350 + rate * len(text)


def hard_terms(text: str) -> list[tuple[str, int, int]]:
    found = []
    for match in _HARD_TOKEN.finditer(text):
        word = match.group()
        camel = any(ch.isupper() for ch in word[1:]) and any(ch.islower() for ch in word)
        mixed = any(ch.isdigit() for ch in word)
        if word.lower() in _HARD_WORDS or camel or mixed:
            found.append((word, match.start(), match.end()))
    return found


def _score_take(
    kind: str,
    node_id: str,
    label: str,
    threshold: float,
    take: Take,
    step_index: int,
    lexicon: Lexicon = frozenset(),
) -> Score:
    """A validator's verdict: deterministic in text, locale and attempt, better on retries.
    A hard term the run's dictionary covers for the take's locale is pronounced right."""
    jitter = _unit(kind, take.text, take.locale, take.iteration)
    words = take.text.split()
    if kind == "wer":
        stumbles = take.iteration == 0 and _unit("stumble", take.text, take.locale) < 0.2
        wer = 0.12 + 0.08 * jitter if stumbles else (0.06 if take.iteration == 0 else 0.04) * jitter
        substitutions = min(len(words), round(wer * len(words)))
        segments: tuple[Segment, ...] = ()
        if substitutions and words:
            word = words[int(jitter * len(words)) % len(words)]
            start = take.text.find(word)
            segments = (
                Segment(
                    text=word,
                    status="word_error",
                    start=start,
                    end=start + len(word),
                    severity="critical" if 100 * (1 - wer) < threshold else "minor",
                    error_type="substitution",
                ),
            )
        score = round(100 * (1 - wer), 1)
        return Score(
            node_id=node_id,
            kind=kind,
            label=label,
            score=score,
            threshold=threshold,
            passed=score >= threshold,
            step_index=step_index,
            transcript=re.sub(r"[^\w\s']", "", take.text).lower().strip(),
            wer=round(wer, 4),
            segments=segments,
            error_counts=(substitutions, 0, 0, len(words)),
        )
    if kind == "pronunciation":
        terms = [
            term for term in hard_terms(take.text) if (term[0].lower(), take.locale) not in lexicon
        ]
        penalty = 4 if take.locale.startswith("en") else 14
        score = round(min(99.0, 97 - penalty * len(terms) - 2 * jitter + 2 * take.iteration), 1)
        passed = score >= threshold
        return Score(
            node_id=node_id,
            kind=kind,
            label=label,
            score=score,
            threshold=threshold,
            passed=passed,
            step_index=step_index,
            segments=tuple(
                Segment(
                    text=word,
                    status="pronunciation_error",
                    start=start,
                    end=end,
                    severity="critical" if not passed else "minor",
                    error_type=None,
                )
                for word, start, end in terms
            ),
        )
    base = 85.0 if kind == "noise" else 78.0
    spread = 14.0 if kind == "noise" else 18.0
    score = round(min(99.0, base + spread * jitter + 6 * take.iteration), 1)
    return Score(
        node_id=node_id,
        kind=kind,
        label=label,
        score=score,
        threshold=threshold,
        passed=score >= threshold,
        step_index=step_index,
    )


def _failure_message(label: str, failing: list[Take], retries: int) -> str:
    """A readable summary naming every rejected take: its 0-based `line_index` (as the API
    numbers lines everywhere else), locale, score and the words at fault."""
    noun = "retry" if retries == 1 else "retries"
    threshold = failing[0].scores[-1].threshold
    parts = []
    for take in sorted(failing, key=lambda t: (t.line_index, t.locale)):
        score = take.scores[-1]
        part = f"line_index {take.line_index} ({take.locale}) scored {score.score:.1f}"
        words = rejected_words(score)
        if words:
            quoted = ", ".join(f"'{word}'" for word in words)
            part += f", {quoted} " + (
                "mispronounced" if score.kind == "pronunciation" else "misheard"
            )
        parts.append(part)
    return (
        f"{label} rejected {len(failing)} take(s) after {retries} {noun} "
        f"(threshold {threshold:g}): " + "; ".join(parts) + "."
    )


def rejected_words(score: Score) -> list[str]:
    """The words a verdict blames: its error segments, in the order they occur in the take."""
    return [segment.text for segment in score.segments or () if segment.status.endswith("_error")]


def build_plan(
    run_id: str,
    snapshot: JSON,
    translations: Mapping[str, Mapping[str, str]],
    lexicon: Lexicon = frozenset(),
) -> RunPlan:
    script = read_script(snapshot)
    order = execution_order(snapshot)
    edges = graph_edges(snapshot)
    steps: list[PlannedStep] = []
    # The latest take for each (line, locale): what the next validator looks at.
    current: dict[tuple[int, str], Take] = {}
    all_takes: list[Take] = []
    iterations: dict[str, int] = {}
    texts = {
        (line.index, locale): translate(line.text, locale, script.source_locale, translations)
        for line in script.lines
        for locale in script.locales
    }
    source_chars = sum(len(line.text) for line in script.lines)
    targets = len(script.locales) - 1
    generator_ids = [str(n.get("id")) for n in order if n.get("type") == "operator_generator"]

    def add(node: JSON, duration: float, locales: tuple[str, ...] | None, **extra: Any) -> int:
        node_id = str(node.get("id"))
        iteration = iterations.get(node_id, -1) + 1
        iterations[node_id] = iteration
        steps.append(
            PlannedStep(
                node_id=node_id,
                node_type=str(node.get("type")),
                display_name=node_name(node),
                iteration=iteration,
                duration_s=round(duration, 3),
                locales=locales,
                **extra,
            )
        )
        return len(steps) - 1

    def generate(node: JSON, pairs: list[tuple[int, str]]) -> None:
        chars = sum(len(texts[pair]) for pair in pairs)
        locales = tuple(loc for loc in script.locales if any(p[1] == loc for p in pairs))
        index = add(
            node,
            1.5 + 0.5 * len(pairs),
            locales,
            active_ports=("lines",),
            credits_exact=chars / _GENERATOR_CHARS_PER_CREDIT,
            characters=chars,
        )
        iteration = steps[index].iteration
        for line_index, locale in pairs:
            if (line_index, locale) in current:
                # A retry supersedes the take; it stays in history with the verdicts it got.
                all_takes.append(current[(line_index, locale)])
            text = texts[(line_index, locale)]
            take = Take(
                audio_id=audio_id_for(run_id, line_index, locale, iteration),
                line_index=line_index,
                locale=locale,
                iteration=iteration,
                text=text,
                duration_ms=speech_ms(text, locale) + int(120 * _unit("pace", text, iteration)),
                step_index=index,
            )
            current[(line_index, locale)] = take

    nodes_by_id = {str(node.get("id")): node for node in order}
    all_pairs = [(line.index, locale) for line in script.lines for locale in script.locales]
    for node in order:
        node_type = str(node.get("type"))
        if node_type == "source_script":
            add(node, _SOURCE_S, None, active_ports=("lines",))
        elif node_type == "operator_translator":
            add(
                node,
                1.0 + 0.2 * len(script.lines) * max(targets, 1),
                (script.source_locale,),
                active_ports=("lines",),
                credits_exact=source_chars * targets / _TRANSLATOR_CHARS_PER_CREDIT,
                characters=source_chars * targets,
            )
        elif node_type == "operator_generator":
            generate(node, all_pairs)
        elif node_type in VALIDATOR_KINDS:
            if not current:
                continue  # nothing generated yet: a validator ahead of the generator checks nothing
            kind = VALIDATOR_KINDS[node_type]
            config = node_config(node)
            threshold = float(config.get("threshold", DEFAULT_THRESHOLDS[kind]))
            max_retries = int(config.get("max_retries", 1))
            label = node_name(node)
            retry_target = _retry_generator(node, edges, nodes_by_id, generator_ids)
            pending = sorted(current)
            retries = 0
            while True:
                step_index = len(steps)
                judged: list[Take] = []
                for pair in pending:
                    take = current[pair]
                    score = _score_take(
                        kind, str(node.get("id")), label, threshold, take, step_index, lexicon
                    )
                    take = replace(take, scores=(*take.scores, score))
                    current[pair] = take
                    judged.append(take)
                failing = [take for take in judged if not take.scores[-1].passed]
                chars = sum(len(take.text) for take in judged)
                locales = tuple(
                    loc for loc in script.locales if any(t.locale == loc for t in judged)
                )
                credits = chars / _VALIDATOR_CHARS_PER_CREDIT
                duration = 1.0 + 0.25 * len(judged)
                if not failing:
                    add(node, duration, locales, active_ports=("pass",), credits_exact=credits)
                    break
                if retries < max_retries and retry_target is not None:
                    ports = ("pass", "fail") if len(failing) < len(judged) else ("fail",)
                    add(node, duration, locales, active_ports=ports, credits_exact=credits)
                    pending = sorted((take.line_index, take.locale) for take in failing)
                    generate(retry_target, pending)
                    retries += 1
                    continue
                error = _failure_message(label, failing, retries)
                add(
                    node,
                    duration,
                    locales,
                    active_ports=("fail",),
                    credits_exact=credits,
                    error=error,
                )
                break
            if steps[-1].error:
                break
        elif node_type == "sink_preview":
            units = len(all_pairs)
            add(node, 0.5 + 0.05 * units, tuple(script.locales), active_ports=())
        else:  # normalizer, phoneme injector, pronunciation corrector: per-line text passes
            add(
                node,
                0.5 + 0.05 * len(script.lines),
                (script.source_locale,),
                active_ports=("lines",),
            )
    all_takes.extend(current.values())
    return RunPlan(
        lines=script.lines,
        source_locale=script.source_locale,
        locales=script.locales,
        voices=script.voices,
        steps=tuple(steps),
        takes=tuple(sorted(all_takes, key=take_order(script.locales))),
        queue_delay_s=QUEUE_DELAY_S,
        characters=source_chars,
    )


def take_order(locales: Sequence[str]) -> Callable[[Take], tuple[int, int, int]]:
    rank = {locale: i for i, locale in enumerate(locales)}
    return lambda take: (take.line_index, rank.get(take.locale, len(rank)), take.iteration)


def _retry_generator(
    validator: JSON, edges: list[JSON], nodes: Mapping[str, JSON], generator_ids: Sequence[str]
) -> JSON | None:
    """The generator a validator's `fail` port sends takes back to, if it has one."""
    for edge in edges:
        if edge.get("source") == validator.get("id") and edge.get("sourcePort") == "fail":
            target = nodes.get(str(edge.get("target")))
            if target is not None and target.get("type") == "operator_generator":
                return target
    if any(
        edge.get("sourcePort") == "fail"
        for edge in edges
        if edge.get("source") == validator.get("id")
    ):
        return nodes.get(generator_ids[0]) if generator_ids else None
    return None


# --- cost --------------------------------------------------------------------------------------


def estimate(snapshot: JSON, translations: Mapping[str, Mapping[str, str]]) -> Estimate:
    """What a run of `snapshot` will cost, before knowing how its validators will judge it."""
    script = read_script(snapshot)
    order = execution_order(snapshot)
    source_chars = sum(len(line.text) for line in script.lines)
    all_chars = sum(
        len(translate(line.text, locale, script.source_locale, translations))
        for line in script.lines
        for locale in script.locales
    )
    targets = len(script.locales) - 1
    total_retries = sum(
        int(node_config(node).get("max_retries", 1))
        for node in order
        if node.get("type") in VALIDATOR_KINDS
    )
    rows: list[tuple[JSON, float, float, float]] = []
    for node in order:
        node_type = node.get("type")
        if node_type in ("source_script", "sink_preview"):
            continue
        if node_type == "operator_translator":
            base = source_chars * targets / _TRANSLATOR_CHARS_PER_CREDIT
            rows.append((node, base, base, base * 1.5))
        elif node_type == "operator_generator":
            base = all_chars / _GENERATOR_CHARS_PER_CREDIT
            rows.append((node, base, base * 1.1, base * (1 + total_retries)))
        elif node_type in VALIDATOR_KINDS:
            base = all_chars / _VALIDATOR_CHARS_PER_CREDIT
            retries = int(node_config(node).get("max_retries", 1))
            rows.append((node, base, base * 1.1, base * (1 + retries)))
        else:
            rows.append((node, 0.0, 0.0, 0.0))
    breakdown = tuple(
        NodeEstimate(
            node_id=str(node.get("id")),
            node_type=str(node.get("type")),
            min_credits=math.floor(low),
            expected_credits=max(math.floor(low), round(mid)),
            max_credits=max(math.floor(low), round(mid), math.ceil(high)),
        )
        for node, low, mid, high in rows
    )
    low_total = max(1, math.floor(sum(row[1] for row in rows)))
    mid_total = max(low_total, round(sum(row[2] for row in rows)))
    high_total = max(mid_total, math.ceil(sum(row[3] for row in rows)))
    return Estimate(low_total, mid_total, high_total, breakdown)


# --- the lifecycle -----------------------------------------------------------------------------


_PLAN_CACHE: dict[tuple[str, str, int], tuple[Mapping[str, Mapping[str, str]], RunPlan]] = {}
_PLAN_CACHE_SIZE = 256


class RunEngine:
    """Starts runs and moves them along; all state lives in the store."""

    def __init__(self, store: Store, translations: Mapping[str, Mapping[str, str]]) -> None:
        self.store = store
        self.translations = translations

    def sync(self, now: datetime) -> None:
        for run in self.store.active_runs():
            self.advance(run, now)

    def estimate(
        self, workflow: Workflow, script_text: str | None = None, source_language: str | None = None
    ) -> Estimate:
        snapshot = apply_overrides(workflow.definition, script_text, source_language)
        return estimate(snapshot, self.translations)

    def start(
        self,
        workflow: Workflow,
        user: User,
        now: datetime,
        *,
        script_text: str | None = None,
        source_language: str | None = None,
        run_id: str | None = None,
    ) -> Run:
        if any(run.active for run in self.store.runs_of(workflow.id)):
            raise RunConflict("Another run of this workflow is already active.")
        self._check_capacity()
        snapshot = _deep_copy(apply_overrides(workflow.definition, script_text, source_language))
        cost = estimate(snapshot, self.translations)
        if cost.min_credits > self.store.account.balance:
            raise InsufficientCredits(cost.min_credits, self.store.account.balance)
        run_id = run_id or str(uuid.uuid4())
        # The dictionary is read once, at start, like the definition: a run's verdicts don't
        # change under it when entries are edited while it runs.
        entries = self.store.dictionary_of(workflow.workspace_id)
        plan = self._plan(run_id, snapshot, run_lexicon(snapshot, entries))
        run = Run(
            id=run_id,
            workflow_id=workflow.id,
            workspace_id=workflow.workspace_id,
            run_number=self.store.next_run_number(workflow.id),
            triggered_by=user,
            snapshot=snapshot,
            plan=plan,
            status="pending",
            created_at=now,
            updated_at=now,
            ready_at=now + timedelta(seconds=plan.queue_delay_s),
        )
        self.store.runs[run.id] = run
        return run

    def _plan(self, run_id: str, snapshot: JSON, lexicon: Lexicon) -> RunPlan:
        # Planning a long script scores thousands of takes; the seeded runs are re-planned on
        # every reset with identical inputs, so their plans (immutable) are shared.
        key = (
            run_id,
            json.dumps([snapshot, sorted(lexicon)], sort_keys=True),
            id(self.translations),
        )
        cached = _PLAN_CACHE.get(key)
        if cached is None or cached[0] is not self.translations:
            if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
                _PLAN_CACHE.clear()
            cached = (
                self.translations,
                build_plan(run_id, snapshot, self.translations, lexicon),
            )
            _PLAN_CACHE[key] = cached
        return cached[1]

    def _check_capacity(self, resuming: Run | None = None) -> None:
        limit = self.store.limits.concurrent_runs_per_user
        busy = [
            run
            for run in self.store.runs.values()
            if run.status in SLOT_HOLDING_STATUSES and run is not resuming
        ]
        if len(busy) >= limit:
            raise RunConflict(
                f"Concurrent run limit reached: {len(busy)} of {limit} runs are already "
                "pending or running. Wait for one to finish or cancel one."
            )

    def pause(self, run: Run, now: datetime) -> Run:
        self.advance(run, now)
        if run.status in ("completed", "failed", "cancelled"):
            raise RunConflict(f"Run is already {run.status}; only active runs can be paused.")
        if run.status == "paused" or run.pause_requested_at is not None:
            return run
        run.pause_requested_at = now
        run.updated_at = now
        if run.status == "pending":
            # Nothing is executing yet, so there is no wave to drain: park at once.
            self._park(run, now)
        return run

    def resume(self, run: Run, now: datetime) -> Run:
        self.advance(run, now)
        if run.status != "paused":
            raise RunConflict(f"Run is {run.status}, not paused; only paused runs can be resumed.")
        others = [r for r in self.store.runs_of(run.workflow_id) if r.active and r is not run]
        if others:
            raise RunConflict("Another run of this workflow is already active.")
        self._check_capacity(resuming=run)
        assert run.paused_at is not None
        run.paused_ms += int((now - run.paused_at).total_seconds() * 1000)
        run.pause_requested_at = None
        run.paused_at = None
        run.pause_reason = None
        run.pause_error = None
        run.status = "running"
        run.started_at = run.started_at or now
        run.updated_at = now
        self._begin_next_step(run, now)
        return run

    def cancel(self, run: Run, now: datetime) -> Run:
        self.advance(run, now)
        if not run.active:
            return run  # idempotent: a finished run is returned unchanged
        for step in run.steps:
            if step.status == "running":
                step.status = "cancelled"
                step.completed_at = now
        run.status = "cancelled"
        run.completed_at = now
        run.pause_requested_at = None
        run.paused_at = None
        run.pause_reason = None
        run.pause_error = None
        run.updated_at = now
        self._settle(run)
        return run

    def advance(self, run: Run, now: datetime) -> None:
        """Apply every transition of `run` that is due at or before `now`, at its own instant."""
        while True:
            if run.status == "pending":
                if now < run.ready_at or run.pause_requested_at is not None:
                    return
                run.status = "running"
                run.started_at = run.ready_at
                run.updated_at = run.ready_at
                self._begin_next_step(run, run.ready_at)
                continue
            if run.status != "running" or not run.steps or run.steps[-1].status != "running":
                return
            step = run.steps[-1]
            planned = run.plan.steps[step.plan_index]
            ends = step.started_at + timedelta(seconds=planned.duration_s)
            if now < ends:
                return
            step.completed_at = ends
            step.status = "failed" if planned.error else "completed"
            step.error = planned.error
            step.active_ports = planned.active_ports
            run.updated_at = ends
            if planned.error:
                run.status = "failed"
                run.error = (
                    f"Node '{planned.display_name}' ({planned.node_type}) failed: {planned.error}"
                )
                run.completed_at = ends
                self._settle(run)
                return
            if run.pause_requested_at is not None:
                self._park(run, ends)
                return
            self._begin_next_step(run, ends)

    def _park(self, run: Run, at: datetime) -> None:
        run.status = "paused"
        run.paused_at = at
        run.pause_reason = "user"
        run.pause_error = None
        run.updated_at = at

    def _begin_next_step(self, run: Run, at: datetime) -> None:
        index = len(run.steps)
        if index >= len(run.plan.steps):
            run.status = "completed"
            run.completed_at = at
            run.updated_at = at
            run.has_export = bool(run.plan.takes)
            self._settle(run)
            return
        planned = run.plan.steps[index]
        run.steps.append(
            Step(
                id=step_id_for(run.id, index),
                plan_index=index,
                node_id=planned.node_id,
                node_type=planned.node_type,
                node_display_name=planned.display_name,
                iteration=planned.iteration,
                status="running",
                started_at=at,
                locales=planned.locales,
            )
        )
        run.next_step = index + 1

    def _settle(self, run: Run) -> None:
        """Charge for the work done: the whole run when it completed, the finished steps if not."""
        exact = sum(
            run.plan.steps[step.plan_index].credits_exact
            for step in run.steps
            if step.status in ("completed", "failed")
        )
        charged = math.floor(exact)
        if run.status == "completed":
            charged = max(charged, estimate(run.snapshot, self.translations).min_credits)
        run.credits = charged
        run.credits_absorbed = round(max(0.0, exact - charged), 2)
        self.store.account.debit(charged, run.credits_absorbed)


# --- what a run has produced so far --------------------------------------------------------


def step_done(run: Run, plan_index: int) -> bool:
    return plan_index < len(run.steps) and run.steps[plan_index].status in ("completed", "failed")


def visible_takes(run: Run) -> list[Take]:
    """Takes whose generator step has finished, each with only the verdicts already given."""
    shown = []
    for take in run.plan.takes:
        if step_done(run, take.step_index):
            scores = tuple(score for score in take.scores if step_done(run, score.step_index))
            shown.append(replace(take, scores=scores))
    return shown


def latest_takes(run: Run) -> dict[tuple[int, str], Take]:
    """The newest visible take of every (line, locale)."""
    latest: dict[tuple[int, str], Take] = {}
    for take in visible_takes(run):
        key = (take.line_index, take.locale)
        if key not in latest or take.iteration > latest[key].iteration:
            latest[key] = take
    return latest


def is_delivered(run: Run, take: Take) -> bool:
    """A take reaches the user when the run completed and it is the accepted one for its line."""
    return run.status == "completed" and take.passed
