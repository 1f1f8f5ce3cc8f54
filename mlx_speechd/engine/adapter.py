"""The one module that knows mlx-audio's Qwen3-TTS internals.

Everything else in the engine talks to `Qwen3Model` and `CodecDecoder`: loading, prompt
building, one talker step, sampling, the code predictor, codec embeddings and the codec
decoder's layers. Moving to a newer mlx-audio should mean changing this file only
(checked against mlx-audio 0.6.2). Runs on the engine thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_audio.lm.models.cache import BatchKVCache
from mlx_audio.lm.sample_utils import apply_top_p

from ..errors import InvalidRequestError, ModelLoadError
from .cpu_kernels import DecoderKernels, for_device, replace_slow_convs
from .types import ModelInfo, Variant

_REF_ROLE_TOKENS = 3
"""`<|im_start|>assistant\\n` in front of a transcript (mlx-audio slices the prompt by position)."""
_REF_END_TOKENS = 2
"""`<|im_end|>\\n` after a transcript."""
_STREAMING_BUFFERS = ("_buffer", "_overflow")
"""The attributes in which mlx-audio's codec decoder modules keep their streaming state."""


@dataclass(frozen=True)
class Prompt:
    """What the talker starts from: prefill embeddings, the text still to feed, the pad embedding."""

    embeds: mx.array
    trailing: mx.array
    """Text embeddings added to the codec input of the first frames, one per frame."""
    pad: mx.array
    """Text-side embedding once the trailing text is used up."""
    ref_codes: mx.array | None
    """Reference codes [1, groups, n] when cloning (the decoder is primed with their end)."""


@dataclass(frozen=True)
class ClonePrompt:
    """The per-voice, per-model part of a cloning prompt, computed once (`Qwen3Model.clone_prompt`)."""

    speaker_embedding: mx.array | None
    """[1, enc_dim] from the speaker encoder; None if the model has none."""
    ref_codes: mx.array | None
    """[1, code_groups, frames] codec codes of the reference; None for speaker-embedding-only cloning."""
    ref_text_ids: mx.array | None
    """[1, n] token ids of the transcript; None for speaker-embedding-only cloning."""

    @property
    def in_context(self) -> bool:
        """In-context cloning (reference codes and transcript), not the speaker embedding alone."""
        return self.ref_codes is not None and self.ref_text_ids is not None


@dataclass(frozen=True)
class Sampling:  # frozen, so hashable: compiled functions are kept per setting
    """Sampling options for one utterance."""

    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float


@dataclass(frozen=True)
class Caches:
    """KV caches of one utterance: the talker's, and the code predictor's (reset every frame)."""

    talker: list[Any]
    code_predictor: list[Any]


class CodecDecoder:
    """The codec decoder's layers, for decoding in steps (`StreamingDecoder`) or at once."""

    def __init__(self, decoder: Any, kernels: DecoderKernels | None = None) -> None:
        # mlx-audio wraps the decoder in `mx.compile` after loading; the bound method's owner is the module.
        self._upstream = getattr(decoder.streaming_step, "__self__", decoder)
        self._kernels = kernels or for_device(mx.default_device())
        self._decoder = self._upstream
        if self._kernels.replace_convs:  # in a copy sharing the weights: mlx-audio's module stays as it is
            self._decoder = _fresh_copy(self._upstream)
            replace_slow_convs(self._decoder)

    @property
    def total_upsample(self) -> int:
        """Audio samples per codec frame."""
        return int(self._decoder.total_upsample)

    @property
    def transformer_layers(self) -> int:
        return len(self._decoder.pre_transformer.layers)

    def copy(self) -> CodecDecoder:
        """A second decoder with the same weights and its own streaming state."""
        return CodecDecoder(_fresh_copy(self._upstream), self._kernels)

    def reset(self) -> None:
        """Forget the convolution state of the previous utterance."""
        self._decoder.reset_streaming_state()

    def streaming_state(self) -> dict[str, mx.array]:
        """The convolutions' streaming tails by module path (MLX arrays are immutable: no copy needed).

        Found the way mlx-audio's `reset_streaming_state` finds them: modules with `reset_state`,
        their `_buffer` (causal convolutions) and `_overflow` (transposed convolutions).
        """
        state = {}
        for path, module in self._streaming_modules():
            for attr in _STREAMING_BUFFERS:
                value = getattr(module, attr, None)
                if value is not None:
                    state[f"{path}.{attr}"] = value
        return state

    def restore_streaming_state(self, state: dict[str, mx.array]) -> None:
        """Reset, then put back tails saved by `streaming_state`."""
        self.reset()
        for path, module in self._streaming_modules():
            for attr in _STREAMING_BUFFERS:
                if f"{path}.{attr}" in state:
                    setattr(module, attr, state[f"{path}.{attr}"])

    def _streaming_modules(self) -> list[tuple[str, Any]]:
        return [(path, m) for path, m in self._decoder.named_modules() if hasattr(m, "reset_state")]

    def embed(self, codes: mx.array, *, streaming: bool) -> mx.array:
        """Codes [1, groups, n] to the transformer's input [1, n, width] (`streaming` keeps conv state)."""
        hidden = self._decoder.quantizer.decode(codes).transpose(0, 2, 1)
        return self._decoder.pre_conv.step(hidden) if streaming else self._decoder.pre_conv(hidden)

    def transform(self, hidden: mx.array, mask: mx.array, cache: list[Any] | None = None) -> mx.array:
        """The decoder transformer with an additive `mask` and, when streaming, per-layer caches."""
        return self._decoder.pre_transformer(hidden, mask=mask, cache=cache)

    def synthesize(self, hidden: mx.array, *, streaming: bool) -> mx.array:
        """Upsampling and the waveform decoder: [1, n, width] to n * total_upsample samples in [-1, 1].

        mlx-audio's layers, with this decoder's kernels' GELU and Snake (the same formulas).
        """
        dec = self._decoder
        for transpose_conv, convnext in dec.upsample:
            hidden = self._convnext(convnext, transpose_conv(hidden), streaming)
        wav = _conv(dec.decoder[0], hidden, streaming)
        for block in dec.decoder[1:-2]:
            wav = self._snake(block.block[0], wav)
            wav = _conv(block.block[1], wav, streaming)
            for unit in block.block[2:]:
                wav = self._residual(unit, wav, streaming)
        wav = _conv(dec.decoder[-1], self._snake(dec.decoder[-2], wav), streaming)
        return mx.clip(wav[0, :, 0], -1.0, 1.0)

    def _snake(self, snake: Any, x: mx.array) -> mx.array:
        return self._kernels.snake(x, snake.alpha, snake.beta, snake.eps)

    def _residual(self, unit: Any, x: mx.array, streaming: bool) -> mx.array:
        y = _conv(unit.conv1, self._snake(unit.act1, x), streaming)
        return x + _conv(unit.conv2, self._snake(unit.act2, y), streaming)

    def _convnext(self, block: Any, x: mx.array, streaming: bool) -> mx.array:
        y = block.norm(_conv(block.dwconv, x, streaming))
        y = block.pwconv2(self._kernels.gelu(block.pwconv1(y)))
        return x + block.gamma * y

    def decode_upstream(self, codes: mx.array) -> mx.array:
        """mlx-audio's own one-shot decode of codes [1, groups, n] (unwindowed), for comparisons."""
        return self._upstream(codes)[0, 0]


def _fresh_copy(decoder: Any) -> Any:
    """Another mlx-audio codec decoder module with the same weight arrays (built lazily: no cost)."""
    other = type(decoder)(decoder.config)
    other.update(decoder.parameters())
    return other


def _conv(module: Any, x: mx.array, streaming: bool) -> mx.array:
    """A causal (transposed) convolution of the codec decoder, carrying its state when `streaming`."""
    return module.step(x) if streaming else module(x)


CodePredictor = Callable[[mx.array, mx.array], tuple[mx.array, mx.array]]
"""(first codes [B, 1], talker hidden [B, 1, D]) -> (all codes [B, groups], codec embedding sum [B, 1, D])."""

KeyedFrame = Callable[..., tuple[mx.array, mx.array, mx.array, mx.array, mx.array]]
"""See `Qwen3Model.keyed_frame`."""


def penalize(logits: mx.array, history: mx.array, penalty: mx.array | float) -> mx.array:
    """mlx-audio's repetition penalty on `logits` [B, V] for the codes in each row's `history` [B, n]."""
    vocab = logits.shape[-1]
    columns = mx.where(history < 0, vocab, history)  # empty slots (-1) mark a spare column
    seen = mx.put_along_axis(
        mx.zeros((logits.shape[0], vocab + 1), mx.bool_), columns, mx.array(True), axis=-1
    )
    seen = seen[:, :vocab]
    if isinstance(penalty, mx.array):
        penalty = penalty.astype(logits.dtype)
    return mx.where(seen, mx.where(logits < 0, logits * penalty, logits / penalty), logits)


def sample_rows(logits: mx.array, noise: mx.array, sampling: Sampling) -> mx.array:
    """One code per row of `logits` [B, V], from the distribution mlx-audio's sampler draws from: [B, 1].

    Gumbel-max over the top-k candidates only, so `noise` is [B, `noise_size(sampling, V)`]: the same
    probabilities as masking the rest of the vocabulary, with far fewer random numbers to draw.
    """
    if sampling.temperature <= 0:
        return mx.argmax(logits, axis=-1, keepdims=True)
    if sampling.temperature != 1.0:
        logits = logits / sampling.temperature
    candidates = None
    if (k := noise_size(sampling, logits.shape[-1])) < logits.shape[-1]:
        candidates = mx.argpartition(-logits, kth=k - 1, axis=-1)[:, :k]
        logits = mx.take_along_axis(logits, candidates, axis=-1)
    if 0.0 < sampling.top_p < 1.0:
        logprobs = apply_top_p(nn.log_softmax(logits, axis=-1), sampling.top_p)
        logits = mx.where(logprobs == -mx.inf, -mx.inf, logits)
    choice = mx.argmax(logits + noise, axis=-1, keepdims=True)
    return choice if candidates is None else mx.take_along_axis(candidates, choice, axis=-1)


def noise_size(sampling: Sampling, vocab: int) -> int:
    """How many random numbers `sample_rows` takes per row from a vocabulary of `vocab`."""
    return sampling.top_k if 0 < sampling.top_k < vocab else vocab


def row_noise(keys: mx.array, size: int) -> mx.array:
    """Gumbel noise [..., size] drawn with each of `keys` [..., 2] (one vectorized draw, the same numbers
    as drawing with each key alone)."""
    draw: Callable[[mx.array], mx.array] = lambda key: mx.random.gumbel((size,), key=key)  # noqa: E731
    for _ in range(keys.ndim - 1):
        draw = mx.vmap(draw)
    return draw(keys)


class Qwen3Model:
    """A loaded mlx-audio Qwen3-TTS model behind the few operations the engine needs."""

    def __init__(self, model: Any) -> None:
        self.module = model
        """The mlx-audio model itself (tests compare against its own `generate`)."""
        talker_config = model.config.talker_config
        self.eos_token = int(talker_config.codec_eos_token_id)
        self.suppress_tokens: list[int] = model._suppress_codec_tokens(self.eos_token)  # noqa: SLF001
        kernels = for_device(mx.default_device())
        self.decoder = CodecDecoder(model.speech_tokenizer.decoder, kernels)
        if model.speaker_encoder is not None and kernels.replace_convs:
            replace_slow_convs(model.speaker_encoder)  # its dilated TDNN convolutions
        self._suppress = mx.zeros((talker_config.vocab_size,), mx.bool_)
        self._suppress[mx.array(self.suppress_tokens)] = True
        self._predictors: dict[tuple[float, int, float], CodePredictor] = {}
        self._keyed: dict[Sampling, KeyedFrame] = {}

    @classmethod
    def load(cls, path: Path) -> Qwen3Model:
        """Load with mlx-audio; raises ModelLoadError (the caller keeps stdout safe)."""
        from mlx_audio.tts.utils import load_model as mlx_audio_load

        try:
            loaded = mlx_audio_load(path)
        except Exception as err:
            raise ModelLoadError(f"Could not load the model in '{path}': {err}") from err
        if loaded.tokenizer is None or loaded.speech_tokenizer is None:
            raise ModelLoadError(
                f"The model in '{path}' is incomplete: its text tokenizer or speech_tokenizer/ "
                "folder did not load (see the warnings above)."
            )
        return cls(loaded)

    def describe(self, name: str, path: Path) -> ModelInfo:
        model = self.module
        talker = model.config.talker_config
        languages = tuple(lang for lang in (talker.codec_language_id or {}) if "dialect" not in lang)
        generate_config = model.generate_config or {}
        return ModelInfo(
            name=name,
            path=path,
            variant=Variant(model.config.tts_model_type),
            size=str(getattr(model.config, "tts_model_size", "")),
            speakers=tuple(model.get_supported_speakers()),
            languages=("auto", *languages),
            sample_rate=model.sample_rate,
            max_frames=int(generate_config.get("max_new_tokens") or 2048),
            decoder_window=getattr(model.speech_tokenizer.config.decoder_config, "sliding_window", None),
            has_codec_encoder=bool(model.speech_tokenizer.has_encoder),
        )

    # ---- one utterance ----
    def prepare(
        self,
        text: str,
        *,
        language: str,
        speaker: str | None = None,
        instruct: str | None = None,
        ref_audio: mx.array | None = None,
        ref_text: str | None = None,
    ) -> Prompt:
        """Build the prompt: in-context cloning when given reference audio and its transcript."""
        if ref_audio is not None and ref_text:
            embeds, trailing, pad, ref_codes = self.module._prepare_icl_generation_inputs(  # noqa: SLF001
                text=text, ref_audio=ref_audio, ref_text=ref_text, language=language
            )
            return Prompt(embeds, trailing, pad, ref_codes)
        embeds, trailing, pad = self.module._prepare_generation_inputs(  # noqa: SLF001
            text=text, language=language, speaker=speaker, ref_audio=ref_audio, instruct=instruct
        )
        return Prompt(embeds, trailing, pad, None)

    def sampling(self, *, cloning: bool) -> Sampling:
        """The checkpoint's sampling options (cloning raises the repetition penalty to 1.5, as upstream)."""
        options = self.module._resolve_generation_options(None, None, None, None, None)  # noqa: SLF001
        penalty = options["repetition_penalty"]
        return Sampling(
            temperature=options["temperature"],
            top_k=options["top_k"],
            top_p=options["top_p"],
            repetition_penalty=max(penalty, 1.5) if cloning else penalty,
        )

    def new_caches(self) -> Caches:
        talker = self.module.talker
        return Caches(talker.make_cache(), talker.code_predictor.make_cache())

    def talker_step(self, embeds: mx.array, caches: Caches) -> tuple[mx.array, mx.array]:
        """One talker forward pass: (logits, hidden states), lazy."""
        logits, hidden = self.module.talker(embeds, cache=caches.talker)
        return logits, hidden

    def sample(self, logits: mx.array, sampling: Sampling, history: list[int]) -> mx.array:
        """The next first-group code [1, 1], with special ids suppressed and the repetition penalty."""
        token: mx.array = self.module._sample_token(  # noqa: SLF001
            logits,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            repetition_penalty=sampling.repetition_penalty,
            generated_tokens=history or None,
            suppress_tokens=self.suppress_tokens,
        )
        return token

    def predict_codes(
        self, token: mx.array, hidden: mx.array, sampling: Sampling, caches: Caches
    ) -> tuple[list[mx.array], mx.array]:
        """The other code groups of this frame: (per-group tokens, all codes [1, groups])."""
        tokens, codes = self.module._predict_code_tokens(  # noqa: SLF001
            token,
            hidden,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            code_cache=caches.code_predictor,
        )
        return tokens, codes

    def codec_embeds(self, code_tokens: list[mx.array]) -> mx.array:
        """The talker's input embedding of one frame's codes (summed over the groups)."""
        embeds: mx.array = self.module._codec_embeds_for_tokens(code_tokens)  # noqa: SLF001
        return embeds

    # ---- the faster loop and lockstep batches ----
    def code_predictor(self, sampling: Sampling) -> CodePredictor:
        """The code predictor's 15 passes, sampling and codec embedding sum as one compiled function.

        Draws from (and advances) MLX's global random state exactly as `predict_codes` does,
        so the codes are the same for the same seed. Compiled once per sampling setting.
        """
        key = (sampling.temperature, sampling.top_k, sampling.top_p)
        if key not in self._predictors:

            def predict(first: mx.array, hidden: mx.array) -> tuple[mx.array, mx.array]:
                def sample(_: int, logits: mx.array) -> mx.array:
                    token: mx.array = self.module._sample_token_batch(  # noqa: SLF001
                        logits, temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p
                    )
                    return token

                return self._predict(first, hidden, sample)

            self._predictors[key] = mx.compile(predict, inputs=mx.random.state, outputs=mx.random.state)
        return self._predictors[key]

    def keyed_frame(self, sampling: Sampling) -> KeyedFrame:
        """Everything after the talker pass for B rows, compiled (one trace per B); row b uses only its key.

        `(logits [B, V], hidden [B, 1, D], keys [B, 2], history [B, n], slots [B], penalty [B, 1])` ->
        `(first codes [B, 1], codes [B, groups], codec embedding sums [B, 1, D], next keys, next history)`:
        special codes suppressed, the repetition penalty over `history`, the code predictor,
        and the first code written into `history` at column `slots[b]`.
        """
        if sampling not in self._keyed:

            def frame(
                logits: mx.array,
                hidden: mx.array,
                keys: mx.array,
                history: mx.array,
                slots: mx.array,
                penalty: mx.array,
            ) -> tuple[mx.array, mx.array, mx.array, mx.array, mx.array]:
                predictor = self.module.talker.code_predictor
                steps = predictor.num_code_groups - 1
                split = mx.vmap(lambda key: mx.random.split(key, steps + 2))(keys)  # [B, steps + 2, 2]
                logits = mx.where(self._suppress, mx.array(-mx.inf, logits.dtype), logits)
                first_noise = row_noise(split[:, 1], noise_size(sampling, logits.shape[-1]))
                first = sample_rows(penalize(logits, history, penalty), first_noise, sampling)
                noise = row_noise(split[:, 2:], noise_size(sampling, predictor.config.vocab_size))

                def sample(group: int, step_logits: mx.array) -> mx.array:
                    return sample_rows(step_logits[:, -1, :], noise[:, group - 1], sampling)

                codes, embeds = self._predict(first, hidden, sample)
                written = mx.arange(history.shape[1])[None, :] == slots[:, None]
                return (
                    first,
                    codes,
                    embeds,
                    split[:, 0],
                    mx.where(written, first, history),
                )

            self._keyed[sampling] = mx.compile(frame)
        return self._keyed[sampling]

    def _predict(
        self, first: mx.array, hidden: mx.array, sample: Callable[[int, mx.array], mx.array]
    ) -> tuple[mx.array, mx.array]:
        """The code predictor for one frame; `sample(group, logits)` draws groups 1..15.

        A fresh cache every call: its Python-int offsets are then the same in every trace.
        """
        talker = self.module.talker
        predictor = talker.code_predictor
        cache = predictor.make_cache()
        embeds = talker.get_input_embeddings()(first)
        code_input = mx.concatenate([hidden, embeds], axis=1)
        codes = [first]
        for index in range(predictor.num_code_groups - 1):
            if index:
                code_input = predictor.codec_embedding[index - 1](codes[-1])
            logits, _, _ = predictor(code_input, cache=cache, generation_step=index)
            codes.append(sample(index + 1, logits))
        for index, code in enumerate(codes[1:]):
            embeds = embeds + predictor.codec_embedding[index](code)
        return mx.concatenate(codes, axis=1), embeds

    def batch_cache(self, caches: Caches) -> list[Any]:
        """One row's talker cache (after its prefill) as a batch cache that others can join."""
        return [BatchKVCache.merge([layer]) for layer in caches.talker]

    @staticmethod
    def join_cache(batch: list[Any], other: list[Any]) -> None:
        """Append `other`'s rows to `batch` (in place; shorter rows are left-padded)."""
        for mine, theirs in zip(batch, other, strict=True):
            mine.extend(theirs)

    @staticmethod
    def keep_rows(batch: list[Any], rows: mx.array) -> None:
        """Keep only `rows` of the batch cache (in place); the others' memory is released."""
        for layer in batch:
            layer.filter(rows)

    def batch_talker_step(self, embeds: mx.array, batch: list[Any]) -> tuple[mx.array, mx.array]:
        """One talker pass for rows [B, 1, D] of different lengths, each at its own position."""
        layer = batch[0]
        positions = mx.broadcast_to(layer.offset[None, :, None], (3, embeds.shape[0], 1))
        logits, hidden = self.module.talker(
            embeds, position_ids=positions, mask=layer.make_mask(1), cache=batch
        )
        return logits, hidden

    # ---- reference audio ----
    def load_audio(self, path: str) -> mx.array:
        """Read an audio file as mono samples at the model's sample rate."""
        from mlx_audio.utils import load_audio

        audio: mx.array = load_audio(path, sample_rate=self.module.sample_rate)
        return audio

    @property
    def can_clone(self) -> bool:
        """Whether the model clones voices: a Base model with a speaker encoder."""
        return self.module.speaker_encoder is not None

    def reference_codes(self, audio: mx.array) -> mx.array:
        """Encode mono reference samples to codec codes [1, groups, n] (needs the codec encoder)."""
        codes: mx.array = self.module.speech_tokenizer.encode(audio[None, None, :])
        return codes

    def speaker_embedding(self, audio: mx.array) -> mx.array:
        """The speaker encoder's embedding [1, width] of mono reference samples (Base models)."""
        embedding: mx.array = self.module.extract_speaker_embedding(audio)
        return embedding

    def transcript_ids(self, text: str) -> mx.array:
        """Text token ids [1, n] of a reference transcript, as in-context cloning feeds them."""
        ids = self.module.tokenizer.encode(f"<|im_start|>assistant\n{text}<|im_end|>\n")
        return mx.array(ids)[None, _REF_ROLE_TOKENS:-_REF_END_TOKENS]

    def clone_prompt(self, audio: np.ndarray | mx.array, ref_text: str | None) -> ClonePrompt:
        """Encode 24 kHz mono reference `audio` once: in-context with `ref_text`, else speaker embedding only.

        Raises InvalidRequestError when the model lacks what that needs (a codec encoder, a speaker encoder).
        """
        ref_audio = mx.array(audio, dtype=mx.float32) if isinstance(audio, np.ndarray) else audio
        embedding = self.speaker_embedding(ref_audio) if self.can_clone else None
        if ref_text is None:
            if embedding is None:
                raise InvalidRequestError(
                    "this model has no speaker encoder: it cannot clone from a speaker embedding"
                )
            mx.eval(embedding)
            return ClonePrompt(embedding, None, None)
        if not self.module.speech_tokenizer.has_encoder:
            raise InvalidRequestError("this model's codec has no encoder: it cannot clone from a reference")
        codes, ids = self.reference_codes(ref_audio), self.transcript_ids(ref_text)
        mx.eval(codes, ids, *([] if embedding is None else [embedding]))
        return ClonePrompt(embedding, codes, ids)

    def prepare_clone(self, text: str, clone: ClonePrompt, *, language: str) -> Prompt:
        """The prompt for speaking `text` with a precomputed `clone` prompt.

        Bit-identical to `prepare(text, ref_audio=..., ref_text=...)` for the reference `clone` was
        computed from (mlx-audio 0.6.2's `_prepare_icl_generation_inputs`, or `_prepare_generation_inputs`
        with reference audio alone), without encoding the reference again.
        """
        if clone.ref_codes is not None and clone.ref_text_ids is not None:
            embeds = _in_context_embeds(self.module, clone, text, language)
            pad = _tts_special_embeds(self.module)[2]
            return Prompt(embeds, pad, pad, clone.ref_codes)
        embeds, trailing, pad = _speaker_only_inputs(self.module, clone.speaker_embedding, text, language)
        return Prompt(embeds, trailing, pad, None)


# ---- the cloning prompt layout, line for line as mlx-audio 0.6.2 builds it after its encoding steps ----


def _in_context_embeds(model: Any, clone: ClonePrompt, text: str, language: str) -> mx.array:
    """`_prepare_icl_generation_inputs`: role | codec prefix | ref+target text+eos | codec bos+ref codes."""
    assert clone.ref_codes is not None and clone.ref_text_ids is not None
    config = model.config.talker_config
    talker = model.talker
    target_ids = mx.array(
        model.tokenizer.encode(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
    )[None, :]
    text_ids = target_ids[:, 3:-5]
    bos_embed, eos_embed, pad_embed = _tts_special_embeds(model)

    text_embed = talker.text_projection(
        talker.get_text_embeddings()(mx.concatenate([clone.ref_text_ids, text_ids], axis=1))
    )
    text_embed = mx.concatenate([text_embed, eos_embed], axis=1)
    ref_codes = clone.ref_codes
    ref_codec_embed = talker.get_input_embeddings()(ref_codes[:, 0, :])
    for i in range(config.num_code_groups - 1):
        ref_codec_embed = ref_codec_embed + talker.code_predictor.codec_embedding[i](ref_codes[:, i + 1, :])
    codec_bos_embed = talker.get_input_embeddings()(mx.array([[config.codec_bos_id]]))
    codec_embed = mx.concatenate([codec_bos_embed, ref_codec_embed], axis=1)
    codec_pad_embed = talker.get_input_embeddings()(mx.array([[config.codec_pad_id]]))
    hidden = codec_pad_embed.shape[-1]
    icl_embed = mx.concatenate(
        [
            text_embed + mx.broadcast_to(codec_pad_embed, (1, text_embed.shape[1], hidden)),
            codec_embed + mx.broadcast_to(pad_embed, (1, codec_embed.shape[1], hidden)),
        ],
        axis=1,
    )
    codec_prefix, _ = _codec_prefix(model, language, clone.speaker_embedding)
    role_embed = talker.text_projection(talker.get_text_embeddings()(target_ids[:, :3]))
    return mx.concatenate(
        [role_embed, _prefix_overlay(codec_prefix, bos_embed, pad_embed), icl_embed], axis=1
    )


def _speaker_only_inputs(
    model: Any, speaker_embedding: mx.array | None, text: str, language: str
) -> tuple[mx.array, mx.array, mx.array]:
    """`_prepare_generation_inputs` for a reference alone (no speaker, no instruct)."""
    talker = model.talker
    input_ids = mx.array(
        model.tokenizer.encode(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
    )[None, :]
    text_embed = talker.text_projection(talker.get_text_embeddings()(input_ids))
    bos_embed, eos_embed, pad_embed = _tts_special_embeds(model)
    codec_prefix, codec_suffix = _codec_prefix(model, language, speaker_embedding)
    input_embeds = mx.concatenate(
        [text_embed[:, :3, :], _prefix_overlay(codec_prefix, bos_embed, pad_embed)], axis=1
    )
    full_text_embed = mx.concatenate([text_embed[:, 3:-5, :], eos_embed], axis=1)
    input_embeds = mx.concatenate(
        [input_embeds, full_text_embed + codec_suffix[:, :1, :], pad_embed + codec_suffix[:, 1:, :]], axis=1
    )
    return input_embeds, pad_embed, pad_embed


def _tts_special_embeds(model: Any) -> tuple[mx.array, mx.array, mx.array]:
    """The text-side bos, eos and pad embeddings."""
    tokens = mx.array(
        [[model.config.tts_bos_token_id, model.config.tts_eos_token_id, model.config.tts_pad_token_id]]
    )
    embeds = model.talker.text_projection(model.talker.get_text_embeddings()(tokens))
    return embeds[:, 0:1, :], embeds[:, 1:2, :], embeds[:, 2:3, :]


def _codec_prefix(model: Any, language: str, speaker_embedding: mx.array | None) -> tuple[mx.array, mx.array]:
    """Codec-side prefix (think/nothink, language, speaker, pad, bos) and its pad+bos suffix alone."""
    config = model.config.talker_config
    embed = model.talker.get_input_embeddings()
    language_id = None
    if (
        language.lower() != "auto"
        and config.codec_language_id
        and language.lower() in config.codec_language_id
    ):
        language_id = config.codec_language_id[language.lower()]
    if language_id is None:
        ids = [config.codec_nothink_id, config.codec_think_bos_id, config.codec_think_eos_id]
    else:
        ids = [config.codec_think_id, config.codec_think_bos_id, language_id, config.codec_think_eos_id]
    prefix = embed(mx.array([ids]))
    suffix = embed(mx.array([[config.codec_pad_id, config.codec_bos_id]]))
    if speaker_embedding is None:
        return mx.concatenate([prefix, suffix], axis=1), suffix
    speaker = speaker_embedding.astype(prefix.dtype).reshape(1, 1, -1)
    return mx.concatenate([prefix, speaker, suffix], axis=1), suffix


def _prefix_overlay(codec_prefix: mx.array, bos_embed: mx.array, pad_embed: mx.array) -> mx.array:
    """Text pads then text bos, over the codec prefix without its last (bos) position."""
    pads = mx.broadcast_to(pad_embed, (1, codec_prefix.shape[1] - 2, pad_embed.shape[-1]))
    return mx.concatenate([pads, bos_embed], axis=1) + codec_prefix[:, :-1, :]
