"""A tiny byte-level BPE text tokenizer shaped like Qwen3-TTS's (Qwen2) tokenizer.

The tokenizer is trained offline, deterministically, on a small built-in corpus. It uses the Qwen2
normalizer, pre-tokenizer regex and decoder, so any Unicode text encodes, and it carries the same
added (chat and TTS) tokens in the same order as the real one, right after the BPE vocabulary.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

_LOGGER = logging.getLogger(__name__)

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# The added tokens of the Qwen2/Qwen3-TTS tokenizer, in id order (the real ones start at 151643).
ADDED_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
    "<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
    "<tts_text_bos_single>", "<|audio_pad|>",
)  # fmt: skip
# Tool and think tags are plain added tokens in the real tokenizer, the rest are special.
_NON_SPECIAL = frozenset(ADDED_TOKENS[14:26])

BPE_VOCAB_SIZE = 1024 - len(ADDED_TOKENS)
"""At most this many byte-alphabet and merged tokens (the small corpus yields fewer), so the whole
vocabulary fits the tiny model's 1024-row text embedding."""

_CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! This is a test of the speech synthesis system.",
    "It is twenty past nine in the morning, and the weather is fine.",
    "Please turn on the lights in the living room and the kitchen.",
    "Numbers like 1, 2, 3, 42 and 2026 are read one digit at a time.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le vif renard brun saute par-dessus le chien paresseux.",
    "El veloz zorro marrón salta sobre el perro perezoso.",
    "La volpe veloce salta sopra il cane pigro.",
    "A rápida raposa marrom pula sobre o cão preguiçoso.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "敏捷的棕色狐狸跳过了懒狗。今天天气很好。",
    "素早い茶色の狐がのろまな犬を飛び越える。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘습니다.",
)
# The chat roles must be single tokens: the prompt is sliced by token position.
_ROLE_WORDS = ("assistant", "user", "system")


@dataclass(frozen=True)
class TokenizerInfo:
    """Ids the model config needs from the written tokenizer."""

    vocab_size: int
    im_start_id: int
    im_end_id: int
    tts_pad_id: int
    tts_bos_id: int
    tts_eos_id: int


def build_tokenizer() -> Tokenizer:
    """Train the tiny BPE tokenizer (deterministic) and add the chat and TTS tokens."""
    tokenizer = Tokenizer(
        BPE(
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [*_CORPUS, *(f"{word}\n" for word in _ROLE_WORDS for _ in range(20))]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.add_tokens(
        [AddedToken(t, special=t not in _NON_SPECIAL, normalized=False) for t in ADDED_TOKENS]
    )
    _check_prompt_slicing(tokenizer)
    return tokenizer


def _check_prompt_slicing(tokenizer: Tokenizer) -> None:
    """Raise unless the chat template pieces have the token counts mlx-audio slices by."""
    for text, expected in (
        ("<|im_start|>assistant\n", 3),
        ("<|im_end|>\n<|im_start|>assistant\n", 5),
    ):
        count = len(tokenizer.encode(text, add_special_tokens=False).ids)
        if count != expected:
            raise RuntimeError(f"{text!r} encodes to {count} tokens, expected {expected}")


def write_tokenizer(out_dir: Path) -> TokenizerInfo:
    """Write tokenizer.json, vocab.json, merges.txt and the transformers configs to out_dir."""
    tokenizer = build_tokenizer()
    tokenizer.save(str(out_dir / "tokenizer.json"))
    model_files = json.loads(tokenizer.to_str())["model"]
    _write_json(out_dir / "vocab.json", model_files["vocab"])
    merges = ["#version: 0.2", *(" ".join(pair) for pair in model_files["merges"])]
    (out_dir / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(tokenizer))
    _write_json(
        out_dir / "special_tokens_map.json",
        {
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
        },
    )
    ids = tokenizer.token_to_id
    info = TokenizerInfo(
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        im_start_id=_require(ids("<|im_start|>")),
        im_end_id=_require(ids("<|im_end|>")),
        tts_pad_id=_require(ids("<tts_pad>")),
        tts_bos_id=_require(ids("<tts_text_bos>")),
        tts_eos_id=_require(ids("<tts_text_eod>")),
    )
    _LOGGER.debug("Wrote tokenizer with %d tokens to %s", info.vocab_size, out_dir)
    return info


def _tokenizer_config(tokenizer: Tokenizer) -> dict[str, object]:
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": token not in _NON_SPECIAL,
        }
        for token in ADDED_TOKENS
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _require(token_id: int | None) -> int:
    if token_id is None:
        raise RuntimeError("added token missing from the tokenizer")
    return token_id


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
