"""The world a fresh (or reset) sandbox starts in, with stable ids that tests can name.

Three workflows are there for tests to run, and none of them has an active run in the seed:
- `WORKFLOW_COMPLETES_ID` ("Product tour EN+KO"): a run completes in about 16.5 s of sandbox time,
  after one word-accuracy retry; it has completed past runs (`RUN_COMPLETED_ID` is downloadable).
- `WORKFLOW_FAILS_ID` ("Release notes EN+JA"): a run fails in about 18 s at the strict
  pronunciation validator, with an error naming the mispronounced terms (`RUN_FAILED_ID`).
- `WORKFLOW_LONG_ID` ("Audiobook chapter 7, six languages"): a run takes about 14 minutes of
  sandbox time; it has a completed and a cancelled (`RUN_CANCELLED_ID`) past run.

Other workflows carry the remaining statuses: `RUN_RUNNING_ID` (about 24 more minutes of sandbox
time to go when seeded), `RUN_PAUSED_ID` (paused by the user), `RUN_PENDING_ID` (queued for 45
minutes), and `WORKFLOW_DRAFT_ID` has never run. Times are relative to the clock at seeding.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from .engine import DEFAULT_NAMES, RunEngine
from .store import (
    JSON,
    Account,
    DictionaryEntry,
    PlanLimits,
    Store,
    Upload,
    User,
    Workflow,
    Workspace,
)

WORKSPACE_ID = "5b0d7a3e-2f4c-4e8a-9c1d-3a6f8b2e4d71"
USER_ID = "c2a9e4f1-7b3d-4f0e-8a5c-1d9e6b3f2a84"
TEAMMATE_ID = "61f0b2d8-9c3e-4a7b-8e15-0d4c7a2f9b36"

WORKFLOW_COMPLETES_ID = "0f6c2b8e-4a1d-4c9f-b3e7-8d5a2c1f6e94"
WORKFLOW_FAILS_ID = "2d7e9a14-6b3c-4f58-a1e0-7c4b9d2f8e36"
WORKFLOW_LONG_ID = "8b4f1c6d-0e2a-4d7b-9f35-1a6c8e3b5d20"
WORKFLOW_COURSE_ID = "4e9a2b7c-1d5f-4a3e-8c60-2f7b9d1e4a85"
WORKFLOW_IVR_ID = "6c1d8f3a-9b2e-4c7d-a5f4-3e8b0c6d2a19"
WORKFLOW_ONBOARDING_ID = "9a3e5c7b-2f1d-4b8a-b6c2-5d0e7f9a1c34"
WORKFLOW_DRAFT_ID = "7a3d9e21-5c4b-4f8a-9e0d-2b6c1a8f3d57"

RUN_COMPLETED_EARLIER_ID = "f2d6a8c4-0e1b-4f3a-8d97-6c5e3b1a0f28"
RUN_COMPLETED_ID = "d41e8b6f-3a2c-4d9e-8f71-5b0a9c3e2d16"
RUN_FAILED_ID = "3c7b1e9d-6f2a-4d8c-a05e-9b4f2d1c7e63"
RUN_LONG_COMPLETED_ID = "1e7c3a9f-5b2d-4e8a-b4c1-9f6d2a8e3c57"
RUN_CANCELLED_ID = "a8c3f5e2-1d4b-4a7e-9c60-7e2f1b5d3a48"
RUN_COURSE_COMPLETED_ID = "c7e1a5d9-3b8f-4c2a-9e64-0d5b8f2a7c13"
RUN_RUNNING_ID = "5f2a8d1c-7e3b-4a9f-8c06-1b4d7e2a9f53"
RUN_IVR_COMPLETED_ID = "0b8e4d2a-6c9f-4a1e-b357-e2c7a9d4f861"
RUN_PAUSED_ID = "e6b3c9a1-4d8f-4e2b-9a71-8c5f0d3b6e24"
RUN_PENDING_ID = "b9d4e2f7-3a6c-4b1e-8f52-6d0a3c9e7b41"

UPLOAD_CHAPTER_ID = "3a5c7e9b-1d2f-4a6c-8e0b-4f7a9c2e5d18"

# Pronunciation dictionary entries. None covers the Release notes terms in ja-jp, so its seeded
# run fails; the ko-kr "Kubernetes" entry shows that an entry only helps its own locale.
DICT_NORTHWIND_ID = "8e2c4a6f-1b3d-4f5a-9c7e-0d2b4f6a8c13"
DICT_ONEPIN_ID = "b5d7f9a1-3c5e-4a7b-8d9f-1e3a5c7b9d24"
DICT_KUBERNETES_KO_ID = "4c6e8a0b-2d4f-4b6c-8e0a-2c4e6a8c0e35"

# The API key `Sandbox(api_keys=None).example_key` returns: accepted like any well-formed key.
EXAMPLE_KEY = "op_live_SandboxDemoKey000000000000000000"

# Run data for the scripts below, as the translator node would have produced it. Lines without
# an entry are rendered as "[locale] text" so that overrides still produce plausible rows.
TRANSLATIONS: dict[str, dict[str, str]] = {
    "Welcome to the product tour.": {"ko-kr": "제품 둘러보기에 오신 것을 환영합니다."},
    "Let's start with your dashboard.": {"ko-kr": "대시보드부터 시작해 보겠습니다."},
    "Every report updates in real time.": {"ko-kr": "모든 보고서는 실시간으로 업데이트됩니다."},
    "Share any view with a single link.": {"ko-kr": "링크 하나로 어떤 화면이든 공유하세요."},
    "Version 4.2 is now available.": {"ja-jp": "バージョン4.2が利用可能になりました。"},
    "Deploy it to Kubernetes with one kubectl command.": {
        "ja-jp": "kubectl コマンド1つで Kubernetes にデプロイできます。"
    },
    "Metrics now flow straight into Grafana.": {
        "ja-jp": "メトリクスは Grafana に直接送られるようになりました。"
    },
    "Sign-in supports OAuth for every workspace.": {
        "ja-jp": "すべてのワークスペースで OAuth サインインに対応しました。"
    },
    "Thanks for building with us.": {"ja-jp": "いつもご利用いただきありがとうございます。"},
    "Thank you for calling Northwind support.": {
        "fr-fr": "Merci d'avoir appelé le support Northwind.",
        "es-es": "Gracias por llamar al soporte de Northwind.",
    },
    "For billing questions, press one.": {
        "fr-fr": "Pour les questions de facturation, appuyez sur un.",
        "es-es": "Para preguntas de facturación, pulse uno.",
    },
    "For technical help, press two.": {
        "fr-fr": "Pour l'assistance technique, appuyez sur deux.",
        "es-es": "Para ayuda técnica, pulse dos.",
    },
    "Please stay on the line for the next available agent.": {
        "fr-fr": "Veuillez patienter, un conseiller va vous répondre.",
        "es-es": "Permanezca en línea, le atenderá el próximo agente disponible.",
    },
    "Welcome aboard, we're glad you're here.": {
        "ko-kr": "함께하게 되어 기쁩니다. 환영합니다.",
        "ja-jp": "ご参加いただき、ありがとうございます。",
    },
    "Your first project is ready to explore.": {
        "ko-kr": "첫 번째 프로젝트를 바로 살펴볼 수 있습니다.",
        "ja-jp": "最初のプロジェクトの準備ができました。",
    },
}

_CHAPTER_SENTENCES = (
    "The lighthouse keeper climbed the spiral stairs before dawn.",
    "Fog had rolled in from the harbor during the night.",
    "She trimmed the wick and polished the great lens by hand.",
    "Far below, the fishing boats waited for the tide to turn.",
    "A gull landed on the railing and watched her work.",
    "The logbook lay open at a page dated forty years ago.",
    "Her grandfather's handwriting leaned hard to the right.",
    "He had written about a ship that never reached the shore.",
    "The wind shifted, and the fog began to thin.",
    "Somewhere out on the water, a bell rang twice.",
    "She reached for the brass telescope on the shelf.",
    "The horizon was empty except for a single sail.",
    "It moved against the wind, which made no sense at all.",
    "She checked the chart, then checked it again.",
    "By the time the sun rose, the sail had vanished.",
    "Only the bell kept ringing, slow and patient.",
    "She closed the logbook and went down to the harbor.",
    "The harbor master was already waiting at the pier.",
    "He said nobody else had heard the bell that morning.",
    "She did not argue, but she did not believe him either.",
)

_COURSE_SENTENCES = (
    "A dataset is only as useful as the questions you ask of it.",
    "Start by writing down what decision the analysis should inform.",
    "Next, check where every column in the table comes from.",
    "Missing values are information too, so count them before you fill them.",
    "An average hides the shape of the data underneath it.",
    "Plot the distribution before you summarize it.",
    "Correlation tells you two things move together, not why.",
    "When a chart surprises you, look for a change in how data was collected.",
    "Keep a log of every cleaning step you apply.",
    "Share your assumptions along with your results.",
)


def _chapter(sentences: tuple[str, ...], count: int) -> str:
    return "\n".join(
        sentence
        if i < len(sentences)
        else f"{sentence.rstrip('.')} (part {i // len(sentences) + 1})."
        for i, sentence in ((i, sentences[i % len(sentences)]) for i in range(count))
    )


def _node(node_id: str, node_type: str, name: str, x: int, config: JSON, version: int = 1) -> JSON:
    return {
        "id": node_id,
        "type": node_type,
        "name": name,
        "position": {"x": x, "y": 160},
        "config": config,
        "config_version": version,
    }


def _edge(source: str, target: str, port: str = "lines") -> JSON:
    return {
        "id": f"e-{source}-{target}" + ("-fail" if port == "fail" else ""),
        "source": source,
        "sourcePort": port,
        "target": target,
        "targetPort": "lines",
    }


def _voice(voice_id: str, catalog_id: str, provider: str, model: str, name: str) -> JSON:
    return {
        "voice_id": voice_id,
        "catalog_voice_id": catalog_id,
        "provider": provider,
        "model": model,
        "voice_name": name,
    }


RACHEL = _voice(
    "21m00Tcm4TlvDq8ikWAM",
    "e7b4c1a9-2d3f-4e6a-8b0c-5f1d9a3e7c42",
    "elevenlabs",
    "eleven_multilingual_v2",
    "Rachel",
)
DAESEONG = _voice(
    "vdaeseong", "4a9d2f6b-8c1e-4b3a-9f70-2e5d8c1b6a93", "typecast", "ssfm-v21", "Daeseong"
)
NANAMI = _voice(
    "ja-JP-NanamiNeural", "8d2f6a1c-3e9b-4c7d-a0f5-6b1e9c4d2a78", "azure", "neural", "Nanami"
)
LEA = _voice("fr-FR-Neural2-A", "2c6e9a3f-7b1d-4e5c-8f20-9a4d1c7e3b65", "google", "neural2", "Léa")
LUCIA = _voice(
    "pFZP5JQG7iQjIQuC4Bku",
    "5e1a8c4f-9d2b-4a6e-b3c7-0f8d2e6a9c14",
    "elevenlabs",
    "eleven_multilingual_v2",
    "Lucía",
)
JONAS = _voice(
    "TxGEqnHWrfWFTfGW9XjX",
    "9f4b2d7e-1a6c-4e3f-8b59-3c0e7a1d5f26",
    "elevenlabs",
    "eleven_multilingual_v2",
    "Jonas",
)


def _pipeline(
    script: str,
    source_language: str,
    targets: list[str],
    voices: dict[str, JSON],
    validators: list[tuple[str, str, str, JSON]],
    *,
    normalizer: bool = True,
    phonemes: bool = False,
    sink_format: str = "wav",
) -> JSON:
    """A linear voice pipeline: script → (normalizer) → translator → (phoneme injector) →
    generator → validators (each able to send takes back to the generator) → export."""
    nodes = [
        _node(
            "src-1",
            "source_script",
            "Script",
            0,
            {"script_text": script, "source_language": source_language},
        )
    ]
    if normalizer:
        nodes.append(_node("norm-1", "operator_normalizer", "Normalizer", 260, {}))
    if targets:
        nodes.append(
            _node("tr-1", "operator_translator", "Translator", 520, {"target_languages": targets})
        )
    if phonemes:
        # Applies the workspace's pronunciation dictionary (every entry: no dictionary_ids).
        nodes.append(_node("phon-1", "operator_phoneme_injector", "Phoneme Injector", 650, {}))
    nodes.append(
        _node(
            "gen-1",
            "operator_generator",
            "Voice Generator",
            780,
            {"voice_map": {locale: [voice] for locale, voice in voices.items()}},
            version=2,
        )
    )
    for i, (node_id, node_type, name, config) in enumerate(validators):
        nodes.append(_node(node_id, node_type, name, 1040 + 260 * i, config))
    nodes.append(
        _node(
            "sink-1",
            "sink_preview",
            "Export",
            1040 + 260 * len(validators),
            {"format": sink_format},
        )
    )
    ids = [str(node["id"]) for node in nodes]
    edges = []
    for source, target in itertools.pairwise(ids):
        is_validator = source.startswith(("wer", "nat", "pron", "noise"))
        edges.append(_edge(source, target, "pass" if is_validator else "lines"))
        if is_validator:
            edges.append(_edge(source, "gen-1", "fail"))
    return {"graph": {"nodes": nodes, "edges": edges}, "execution": {"steps": ids, "params": {}}}


def _definitions() -> dict[str, tuple[str, str | None, JSON, str]]:
    """Workflow id → (name, description, definition, creator)."""
    wer = ("wer-1", "validator_error_rate", "Word accuracy", {"threshold": 85, "max_retries": 2})
    natural = ("nat-1", "validator_naturalness", "Naturalness", {"threshold": 70, "max_retries": 1})
    return {
        WORKFLOW_COMPLETES_ID: (
            "Product tour EN+KO",
            "Narrated product tour in English with a Korean dub.",
            _pipeline(
                "Welcome to the product tour.\nLet's start with your dashboard.\n"
                "Every report updates in real time.\nShare any view with a single link.",
                "en-us",
                ["ko-kr"],
                {"en-us": RACHEL, "ko-kr": DAESEONG},
                [wer],
                sink_format="mp3",
            ),
            USER_ID,
        ),
        WORKFLOW_FAILS_ID: (
            "Release notes EN+JA",
            "Spoken release notes for the Japanese developer community, with a strict "
            "pronunciation gate on product names.",
            _pipeline(
                "Version 4.2 is now available.\nDeploy it to Kubernetes with one kubectl command.\n"
                "Metrics now flow straight into Grafana.\n"
                "Sign-in supports OAuth for every workspace.\nThanks for building with us.",
                "en-us",
                ["ja-jp"],
                {"en-us": RACHEL, "ja-jp": NANAMI},
                [
                    (
                        "pron-1",
                        "validator_pronunciation",
                        "Pronunciation check",
                        {"threshold": 85, "max_retries": 1},
                    )
                ],
                normalizer=False,
                phonemes=True,
            ),
            USER_ID,
        ),
        WORKFLOW_LONG_ID: (
            "Audiobook chapter 7, six languages",
            "Chapter 7 of 'The Keeper's Log', narrated in six languages.",
            _pipeline(
                _chapter(_CHAPTER_SENTENCES, 100),
                "en-us",
                ["de-de", "es-es", "fr-fr", "ja-jp", "ko-kr"],
                {
                    "en-us": RACHEL,
                    "de-de": JONAS,
                    "es-es": LUCIA,
                    "fr-fr": LEA,
                    "ja-jp": NANAMI,
                    "ko-kr": DAESEONG,
                },
                [wer, natural],
            ),
            TEAMMATE_ID,
        ),
        WORKFLOW_COURSE_ID: (
            "Data literacy course, module 3",
            "Course narration for module 3, localized for the EMEA and APAC cohorts.",
            _pipeline(
                _chapter(_COURSE_SENTENCES, 200),
                "en-us",
                ["de-de", "es-es", "fr-fr", "ja-jp", "ko-kr"],
                {
                    "en-us": RACHEL,
                    "de-de": JONAS,
                    "es-es": LUCIA,
                    "fr-fr": LEA,
                    "ja-jp": NANAMI,
                    "ko-kr": DAESEONG,
                },
                [wer, natural],
            ),
            TEAMMATE_ID,
        ),
        WORKFLOW_IVR_ID: (
            "Support line prompts EN/FR/ES",
            "Phone menu prompts for the Northwind support line.",
            _pipeline(
                "Thank you for calling Northwind support.\nFor billing questions, press one.\n"
                "For technical help, press two.\n"
                "Please stay on the line for the next available agent.",
                "en-us",
                ["fr-fr", "es-es"],
                {"en-us": RACHEL, "fr-fr": LEA, "es-es": LUCIA},
                [natural],
                sink_format="wav",
            ),
            USER_ID,
        ),
        WORKFLOW_ONBOARDING_ID: (
            "Onboarding welcome KO/JA",
            None,
            _pipeline(
                "Welcome aboard, we're glad you're here.\nYour first project is ready to explore.",
                "en-us",
                ["ko-kr", "ja-jp"],
                {"en-us": RACHEL, "ko-kr": DAESEONG, "ja-jp": NANAMI},
                [wer],
            ),
            USER_ID,
        ),
        WORKFLOW_DRAFT_ID: (
            "Untitled workflow",
            None,
            {
                "graph": {
                    "nodes": [_node("src-1", "source_script", "Script", 0, {"script_text": ""})],
                    "edges": [],
                },
                "execution": {"steps": ["src-1"], "params": {}},
            },
            TEAMMATE_ID,
        ),
    }


def _voice_catalog(now: datetime) -> list[JSON]:
    created = (now - timedelta(days=120)).isoformat()

    def voice(
        assignment: JSON,
        gender: str,
        accent: str,
        age: str,
        category: str,
        languages: list[str],
        description: str,
        uses: int,
        tags: list[str],
    ) -> JSON:
        return {
            "id": assignment["catalog_voice_id"],
            "name": assignment["voice_name"],
            "provider": assignment["provider"],
            "provider_voice_id": assignment["voice_id"],
            "description": description,
            "is_active": True,
            "gender": gender,
            "accent": accent,
            "age": age,
            "category": category,
            "color": None,
            "tags": tags,
            "uses_count": uses,
            "user_id": None,
            "source": "platform",
            "availability": "available",
            "unavailable_reason": None,
            "duration_seconds": 6.4,
            "sample_url": None,
            "language_sample_url": None,
            "language_sample_locale": None,
            "supported_languages": languages,
            "preview_locales": languages[:1],
            "supported_models": [assignment["model"]],
            "model_capabilities": [
                {
                    "model": assignment["model"],
                    "languages_known": True,
                    "supported_languages": languages,
                }
            ],
            "is_favorite": False,
            "created_at": created,
            "updated_at": created,
        }

    multilingual = ["en-us", "en-gb", "de-de", "es-es", "fr-fr", "ja-jp", "ko-kr", "pt-br"]
    return [
        voice(
            RACHEL,
            "female",
            "american",
            "young",
            "narration",
            multilingual,
            "Calm, clear narrator with a warm tone.",
            18231,
            ["calm", "warm", "clear"],
        ),
        voice(
            DAESEONG,
            "male",
            "korean",
            "middle_aged",
            "business",
            ["ko-kr"],
            "Confident Korean presenter voice.",
            5120,
            ["confident", "presenter"],
        ),
        voice(
            NANAMI,
            "female",
            "japanese",
            "young",
            "conversational",
            ["ja-jp"],
            "Friendly Japanese voice for product content.",
            7342,
            ["friendly", "bright"],
        ),
        voice(
            LEA,
            "female",
            "french",
            "middle_aged",
            "news",
            ["fr-fr"],
            "Measured French newsreader.",
            2210,
            ["measured", "news"],
        ),
        voice(
            LUCIA,
            "female",
            "spanish",
            "young",
            "story",
            ["es-es", "es-mx"],
            "Expressive Spanish storyteller.",
            3904,
            ["expressive", "story"],
        ),
        voice(
            JONAS,
            "male",
            "german",
            "middle_aged",
            "educational",
            ["de-de"],
            "Steady German voice for training material.",
            2877,
            ["steady", "training"],
        ),
    ]


def _templates(now: datetime) -> list[JSON]:
    created = (now - timedelta(days=60)).isoformat()
    wer = ("wer-1", "validator_error_rate", "Word accuracy", {"threshold": 85, "max_retries": 2})

    def template(
        template_id: str, name: str, description: str, category: str, uses: int, definition: JSON
    ) -> JSON:
        return {
            "id": template_id,
            "name": name,
            "description": description,
            "category": category,
            "definition": definition,
            "is_starter": True,
            "is_public": True,
            "is_favorite": False,
            "uses_count": uses,
            "created_by": None,
            "created_at": created,
            "updated_at": created,
        }

    return [
        template(
            "1b7e4c9a-2d5f-4a8e-9c3b-6f0d2a7e1c45",
            "Product explainer, dubbed",
            "Narrate an explainer in English and dub it into Korean with an accuracy gate.",
            "business",
            412,
            _pipeline(
                "Meet the new dashboard.",
                "en-us",
                ["ko-kr"],
                {"en-us": RACHEL, "ko-kr": DAESEONG},
                [wer],
            ),
        ),
        template(
            "6d2a9f4c-8e1b-4c7a-a5d3-0b9e6c2f8a17",
            "Podcast intro, three languages",
            "A short podcast intro voiced in English, Spanish and French.",
            "media",
            268,
            _pipeline(
                "Welcome back to the show.",
                "en-us",
                ["es-es", "fr-fr"],
                {"en-us": RACHEL, "es-es": LUCIA, "fr-fr": LEA},
                [wer],
            ),
        ),
        template(
            "9c4e1a7d-3f6b-4d2e-8a90-5c1f7b3e9d62",
            "Lesson narration",
            "Course narration with accuracy and naturalness checks.",
            "education",
            155,
            _pipeline(
                "In this lesson you will learn three things.",
                "en-us",
                ["de-de"],
                {"en-us": RACHEL, "de-de": JONAS},
                [
                    wer,
                    (
                        "nat-1",
                        "validator_naturalness",
                        "Naturalness",
                        {"threshold": 70, "max_retries": 1},
                    ),
                ],
            ),
        ),
    ]


def _port(name: str) -> JSON:
    return {"name": name, "fields": ["line_id", "text", "locale"] if name == "lines" else None}


def _node_catalog() -> list[JSON]:
    def node(
        node_type: str,
        description: str,
        inputs: list[str],
        outputs: list[str],
        config_schema: JSON,
        *,
        version: int = 1,
        beta: bool = False,
    ) -> JSON:
        return {
            "node_type": node_type,
            "display_name": DEFAULT_NAMES[node_type],
            "description": description,
            "version": version,
            "beta": beta,
            "inputs": [_port(p) for p in inputs],
            "outputs": [_port(p) for p in outputs],
            "input_schema": None,
            "config_schema": config_schema,
        }

    threshold = {"type": "number", "minimum": 0, "maximum": 100}
    retries = {"type": "integer", "minimum": 0, "maximum": 5, "default": 1}
    validator = {"threshold": threshold, "max_retries": retries}
    return [
        node(
            "source_script",
            "The script to voice, one line per utterance.",
            [],
            ["lines"],
            {
                "script_text": {"type": "string"},
                "source_language": {"type": "string"},
                "upload_id": {"type": "string"},
            },
        ),
        node(
            "operator_translator",
            "Translates each line into the target languages.",
            ["lines"],
            ["lines"],
            {"target_languages": {"type": "array", "items": {"type": "string"}}},
        ),
        node(
            "operator_normalizer",
            "Expands numbers, dates and abbreviations for speech.",
            ["lines"],
            ["lines"],
            {},
        ),
        node(
            "operator_generator",
            "Synthesizes every line with the voice set per locale.",
            ["lines"],
            ["lines"],
            {
                "voice_map": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "object"}},
                }
            },
            version=2,
        ),
        node(
            "operator_phoneme_injector",
            "Applies the pronunciation dictionary as phonemes.",
            ["lines"],
            ["lines"],
            {"dictionary_ids": {"type": "array"}},
            beta=True,
        ),
        node(
            "sink_preview",
            "Collects the accepted takes for review and download.",
            ["lines"],
            [],
            {"format": {"type": "string", "enum": ["wav", "mp3"]}},
        ),
        node(
            "validator_error_rate",
            "Transcribes each take and scores word accuracy.",
            ["lines"],
            ["pass", "fail"],
            validator,
        ),
        node(
            "validator_naturalness",
            "Scores how natural each take sounds.",
            ["lines"],
            ["pass", "fail"],
            validator,
        ),
        node(
            "validator_noise",
            "Scores background noise and artifacts.",
            ["lines"],
            ["pass", "fail"],
            validator,
        ),
        node(
            "validator_pronunciation",
            "Checks product names and terms are pronounced right.",
            ["lines"],
            ["pass", "fail"],
            validator,
        ),
        node(
            "operator_pronunciation_corrector",
            "Re-voices words flagged as mispronounced.",
            ["lines"],
            ["lines"],
            {},
            beta=True,
        ),
    ]


def build_store(now: datetime) -> Store:
    """A fresh store, with past runs replayed through the engine so their histories are real."""
    period_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    period_end = (period_start + timedelta(days=32)).replace(day=1)
    mina = User(id=USER_ID, name="Mina Park", email="mina@northwind.example")
    jon = User(id=TEAMMATE_ID, name="Jon Reyes", email="jon@northwind.example")
    store = Store(
        workspace=Workspace(id=WORKSPACE_ID, name="Northwind Studio", slug="northwind-studio"),
        user=mina,
        account=Account(
            monthly_balance=1000,
            free_balance=200,
            free_grant=200,
            plan_grant=1000,
            used=0,
            period_start=period_start,
            period_end=period_end,
            plan_tier="paid",
            overage_rate_cents_per_credit=1.5,
        ),
        limits=PlanLimits(
            monthly_credits=1000,
            workspaces_per_owner=3,
            concurrent_runs_per_user=6,
            storage_bytes_per_workspace=10 * 1024**3,
            retention_days=90,
            byok_enabled=False,
            auto_fix_enabled=True,
            credits_renewal="monthly",
            downloads_enabled=True,
            overage_rate_cents_per_credit=1.5,
        ),
        voices=_voice_catalog(now),
        templates=_templates(now),
        node_catalog=_node_catalog(),
    )
    users = {USER_ID: mina, TEAMMATE_ID: jon}
    ages = {
        WORKFLOW_COMPLETES_ID: 21,
        WORKFLOW_FAILS_ID: 9,
        WORKFLOW_LONG_ID: 30,
        WORKFLOW_COURSE_ID: 14,
        WORKFLOW_IVR_ID: 12,
        WORKFLOW_ONBOARDING_ID: 3,
        WORKFLOW_DRAFT_ID: 1,
    }
    for workflow_id, (name, description, definition, creator) in _definitions().items():
        created = now - timedelta(days=ages[workflow_id], hours=2)
        store.workflows[workflow_id] = Workflow(
            id=workflow_id,
            workspace_id=WORKSPACE_ID,
            user_id=creator,
            name=name,
            name_source="placeholder" if workflow_id == WORKFLOW_DRAFT_ID else "user",
            description=description,
            definition=definition,
            created_at=created,
            updated_at=created + timedelta(hours=1),
        )
    chapter = str(
        store.workflows[WORKFLOW_LONG_ID].definition["graph"]["nodes"][0]["config"]["script_text"]
    )
    store.uploads[UPLOAD_CHAPTER_ID] = Upload(
        id=UPLOAD_CHAPTER_ID,
        workflow_id=WORKFLOW_LONG_ID,
        user_id=TEAMMATE_ID,
        workspace_id=WORKSPACE_ID,
        filename="keepers-log-chapter-07.txt",
        content=chapter,
        created_at=now - timedelta(days=30),
        detected_language="en-us",
    )
    for entry_id, word, language, pronunciation, description, age in (
        (DICT_NORTHWIND_ID, "Northwind", "en-us", "NORTH-wind", "Our company name.", 40),
        (DICT_ONEPIN_ID, "OnePin", "en-us", "WUN-pin", "Product name, one word.", 35),
        (DICT_KUBERNETES_KO_ID, "Kubernetes", "ko-kr", "쿠버네티스", None, 20),
    ):
        created = now - timedelta(days=age)
        store.dictionary[entry_id] = DictionaryEntry(
            id=entry_id,
            workspace_id=WORKSPACE_ID,
            word=word,
            language=language,
            method="spelled",
            pronunciation=pronunciation,
            ipa=None,
            description=description,
            created_by=USER_ID,
            created_at=created,
            updated_at=created,
        )
    _replay_history(store, users, now)
    return store


def _replay_history(store: Store, users: dict[str, User], now: datetime) -> None:
    engine = RunEngine(store, TRANSLATIONS)
    mina, jon = users[USER_ID], users[TEAMMATE_ID]
    day = timedelta(days=1)
    minute = timedelta(minutes=1)

    def run_to_end(
        workflow_id: str, run_id: str, user: User, at: datetime, **overrides: Any
    ) -> None:
        run = engine.start(store.workflows[workflow_id], user, at, run_id=run_id, **overrides)
        engine.advance(run, at + day)

    # Finished history first, oldest to newest.
    run_to_end(WORKFLOW_LONG_ID, RUN_LONG_COMPLETED_ID, jon, now - 6 * day)
    run_to_end(WORKFLOW_COURSE_ID, RUN_COURSE_COMPLETED_ID, jon, now - 5 * day)
    run_to_end(WORKFLOW_IVR_ID, RUN_IVR_COMPLETED_ID, mina, now - 4 * day)
    run_to_end(WORKFLOW_COMPLETES_ID, RUN_COMPLETED_EARLIER_ID, mina, now - 3 * day)
    run_to_end(WORKFLOW_COMPLETES_ID, RUN_COMPLETED_ID, mina, now - 2 * day)
    run_to_end(WORKFLOW_FAILS_ID, RUN_FAILED_ID, mina, now - 1 * day)

    cancelled_at = now - 3 * 60 * minute
    cancelled = engine.start(
        store.workflows[WORKFLOW_LONG_ID], jon, cancelled_at, run_id=RUN_CANCELLED_ID
    )
    engine.advance(cancelled, cancelled_at + 4 * minute)
    engine.cancel(cancelled, cancelled_at + 4 * minute)

    # Still active at `now`.
    paused_at = now - 20 * minute
    paused = engine.start(store.workflows[WORKFLOW_IVR_ID], mina, paused_at, run_id=RUN_PAUSED_ID)
    engine.advance(paused, paused_at + timedelta(seconds=4))
    engine.pause(paused, paused_at + timedelta(seconds=4))
    engine.advance(paused, now)

    running_at = now - 3 * minute
    running = engine.start(
        store.workflows[WORKFLOW_COURSE_ID], jon, running_at, run_id=RUN_RUNNING_ID
    )
    engine.advance(running, now)

    pending_at = now - timedelta(seconds=30)
    pending = engine.start(
        store.workflows[WORKFLOW_ONBOARDING_ID], mina, pending_at, run_id=RUN_PENDING_ID
    )
    # Queued behind the workspace's other jobs: it gets a worker 45 minutes from now.
    pending.ready_at = now + 45 * minute
