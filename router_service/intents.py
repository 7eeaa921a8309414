"""The intent taxonomy: 14 classes, each with a one-line definition.

The order of ``INTENTS`` is the column order of every intent-probability vector
(model outputs, ``intent_scores``, training labels)."""

from __future__ import annotations

INTENT_DEFINITIONS: dict[str, str] = {
    "chitchat": "Greetings, small talk, thanks, and questions about the assistant itself.",
    "knowledge_qa": "Facts, definitions and explanations of concepts in any field.",
    "summarization": "Condense a given text, conversation or document into a shorter form.",
    "translation": "Render given text in another natural language.",
    "rewriting": "Fix grammar, paraphrase, or change the tone or format of given text.",
    "extraction": "Pull entities, fields or structured data out of given text.",
    "classification": "Assign a label, tag, category or sentiment to given text.",
    "creative_writing": "Write stories, poems, emails, essays, lyrics or marketing copy.",
    "brainstorming": "Generate lists of ideas, suggestions, names or plans.",
    "roleplay": "Act as a persona, character or simulated system and stay in that role.",
    "coding": "Write new code, SQL, shell commands, regexes or configuration.",
    "debugging": "Fix, review or explain given code, a stack trace or an error message.",
    "math": "Arithmetic, algebra, calculus, statistics, word problems and proofs.",
    "reasoning": "Logic puzzles, multi-step analysis, decisions and trade-offs.",
}

INTENTS: tuple[str, ...] = tuple(INTENT_DEFINITIONS)
INTENT_INDEX: dict[str, int] = {name: i for i, name in enumerate(INTENTS)}
