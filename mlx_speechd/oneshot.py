"""One-shot mode: speak text from the arguments or stdin, then exit."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import BinaryIO

import numpy as np
import soundfile

from .audio.pcm import CHANNELS, SAMPLE_RATE
from .engine import Engine, EngineConfig, Reply, ReplyOptions, SpeechdError
from .playback import PlaybackError, Player, check_output_device
from .stdout import claim_stdout

_LOGGER = logging.getLogger(__name__)


class UsageError(Exception):
    """A mistake in how the command was called."""


def run_oneshot(args: argparse.Namespace, config: EngineConfig) -> int:
    """Speak and exit: 0 on success, 1 on errors, 2 on usage errors, 130 on Ctrl-C."""
    engine: Engine | None = None
    outputs: _Outputs | None = None
    try:
        if not args.text and sys.stdin.isatty():
            raise UsageError("no text: give it as arguments or pipe it on stdin")
        outputs = _Outputs(args)
        engine = Engine(config)
        engine.start()
        reply = engine.reply(
            ReplyOptions(seed=args.seed, sentence_pause=args.sentence_silence, lead_in=args.lead_in)
        )
        threading.Thread(target=_feed, args=(reply, args.text), daemon=True).start()
        for chunk in reply:
            outputs.write(chunk.pcm)
        if reply.stats is not None and reply.stats.sentences == 0 and not reply.cancelled:
            raise UsageError("no text to speak")
        outputs.close()
        outputs = None
        return 0 if not reply.cancelled else 1
    except KeyboardInterrupt:
        _LOGGER.info("Interrupted")
        return 130
    except UsageError as err:
        _fail(str(err))
        return 2
    except (SpeechdError, PlaybackError, OSError, RuntimeError) as err:
        _fail(str(err))
        return 1
    finally:
        if outputs is not None:
            outputs.close(abort=True)
        if engine is not None:
            engine.close()


def _feed(reply: Reply, words: list[str]) -> None:
    """Feed the reply: the arguments as one text, or stdin line by line as lines arrive."""
    try:
        if words:
            reply.speak(" ".join(words))
        else:
            for line in sys.stdin:
                reply.speak(line)
        reply.finish()
    except SpeechdError as err:
        _fail(str(err))
        reply.cancel()


class _Outputs:
    """Every requested output, opened before the model loads so mistakes show at once."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._wav: soundfile.SoundFile | None = None
        self._raw: BinaryIO | None = None
        self._player: Player | None = None
        if args.output:
            self._wav = soundfile.SoundFile(
                args.output, "w", samplerate=SAMPLE_RATE, channels=CHANNELS, subtype="PCM_16"
            )
        if args.raw:
            self._raw = claim_stdout()
        if args.play or not (self._wav or self._raw):
            device = int(args.device) if args.device and args.device.isdigit() else args.device
            check_output_device(device)
            self._player = Player(device)

    def write(self, pcm: bytes) -> None:
        if self._wav is not None:
            self._wav.write(np.frombuffer(pcm, dtype="<i2"))
        if self._raw is not None:
            self._raw.write(pcm)
        if self._player is not None:
            self._player.write(pcm)

    def close(self, *, abort: bool = False) -> None:
        """Finish every output; `abort` stops playback at once instead of letting it drain."""
        if self._wav is not None:
            self._wav.close()
        if self._raw is not None:
            self._raw.flush()
        if self._player is not None:
            if abort:
                self._player.abort()
            else:
                self._player.close()


def _fail(message: str) -> None:
    print(f"mlx-speechd: error: {message}", file=sys.stderr, flush=True)
