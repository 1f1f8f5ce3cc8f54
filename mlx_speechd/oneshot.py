"""One-shot mode: speak text from the arguments or stdin, then exit."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import BinaryIO, NoReturn

from .audio.wavfile import WavFile
from .engine import Engine, EngineConfig, Reply, SpeechdError
from .playback import PlaybackError, Player, check_output_device
from .settings import OneshotSettings, OutputSettings
from .stdout import claim_stdout, print_error

_LOGGER = logging.getLogger(__name__)


class UsageError(Exception):
    """A mistake in how the command was called."""


def run_oneshot(settings: OneshotSettings, config: EngineConfig) -> int:
    """Speak and exit: 0 on success (also when the reader of --raw closes the pipe), 1 on errors,
    2 on usage errors; Ctrl-C exits the process at once with status 130."""
    engine: Engine | None = None
    outputs: _Outputs | None = None
    try:
        _check_text(settings.text)
        outputs = _Outputs(settings.output)
        engine = Engine(config)
        engine.start()
        reply = engine.reply(settings.speech.reply_options())
        threading.Thread(target=_feed, args=(reply, settings.text), daemon=True).start()
        for chunk in reply:
            outputs.write(chunk.pcm)
        if reply.stats is not None and reply.stats.sentences == 0 and not reply.cancelled:
            raise UsageError("no text to speak")
        outputs.close(keep=not reply.cancelled)
        outputs = None
        return 0 if not reply.cancelled else 1
    except KeyboardInterrupt:
        _LOGGER.info("Interrupted")
        if outputs is not None:
            outputs.close(keep=False)
        _exit_now(130)
    except UsageError as err:
        print_error(err)
        return 2
    except BrokenPipeError:  # `--raw | head -c 100`: the reader has what it wanted
        _LOGGER.debug("stdout was closed; stopping")
        return 0
    except (SpeechdError, PlaybackError, OSError, RuntimeError) as err:
        print_error(err)
        return 1
    finally:
        if outputs is not None:
            outputs.close(keep=False)
        if engine is not None:
            engine.close()


def _exit_now(code: int) -> NoReturn:
    """Exit at once, without waiting for the engine thread and without the interpreter's teardown.

    Ctrl-C must end the command promptly whatever the engine is doing (loading a model, inside a
    frame): the engine thread needs no winding down, and the teardown's garbage collection of
    every loaded module took seconds on a busy machine (measured 2.3 s with a load average of 8).
    """
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def _check_text(words: tuple[str, ...]) -> None:
    """UsageError, before the model loads, when there is nothing to speak."""
    if not words and sys.stdin.isatty():
        raise UsageError("no text: give it as arguments or pipe it on stdin")
    if words and not " ".join(words).strip():
        raise UsageError("no text to speak")


def _feed(reply: Reply, words: tuple[str, ...]) -> None:
    """Feed the reply: the arguments as one text, or stdin line by line as lines arrive."""
    try:
        if words:
            reply.speak(" ".join(words))
        else:
            for line in sys.stdin:
                reply.speak(line)
        reply.finish()
    except SpeechdError as err:
        print_error(err)
        reply.cancel()


class _Outputs:
    """Every requested output, opened before the model loads so mistakes show at once."""

    def __init__(self, settings: OutputSettings) -> None:
        self._wav: WavFile | None = None
        self._raw: BinaryIO | None = None
        self._player: Player | None = None
        if settings.wav:
            self._wav = WavFile(settings.wav)
        if settings.raw:
            self._raw = claim_stdout()
        if settings.plays:
            check_output_device(settings.device)
            self._player = Player(settings.device)

    def write(self, pcm: bytes) -> None:
        if self._wav is not None:
            self._wav.write(pcm)
        if self._raw is not None:
            self._raw.write(pcm)
        if self._player is not None:
            self._player.write(pcm)

    def close(self, *, keep: bool) -> None:
        """Finish every output; without `keep`, playback stops at once and no WAV file is left."""
        if self._wav is not None:
            self._wav.close(keep=keep)
        if self._raw is not None:
            self._raw.flush()
        if self._player is not None:
            if not keep:
                self._player.abort()
            else:
                self._player.close()
