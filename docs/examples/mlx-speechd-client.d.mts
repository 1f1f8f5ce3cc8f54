/** The protocol version this client speaks. */
export const PROTOCOL: 1;
/**
 * @typedef {object} Voice
 * @property {string} name
 * @property {string[]} languages
 */
/**
 * What the daemon serves: its `ready` message (and the answer to `describe`).
 * @typedef {object} DaemonInfo
 * @property {number} protocol
 * @property {string} version
 * @property {string} model
 * @property {string} variant
 * @property {number} sample_rate
 * @property {number} sample_width
 * @property {number} channels
 * @property {string} sample_format
 * @property {Voice[]} voices
 * @property {string} default_voice
 * @property {string[]} outputs
 * @property {number} max_text_chars
 * @property {number} max_line_bytes
 */
/**
 * Voice and output settings of a request; anything left out takes the daemon's default.
 * @typedef {object} SpeechOptions
 * @property {string} [voice] a speaker of a CustomVoice model (see `DaemonInfo.voices`)
 * @property {string} [language] "auto", "english", "en", ...
 * @property {string} [instruct] speaking style (CustomVoice 1.7B) or voice description (VoiceDesign)
 * @property {string} [ref_audio] reference recording to clone (Base models; a path on the daemon's machine)
 * @property {string} [ref_text] transcript of `ref_audio`
 * @property {number} [seed]
 * @property {number} [sentence_pause] seconds of silence between sentences
 * @property {number} [lead_in] seconds of silence before the first audio
 * @property {"pcm" | "play" | "none"} [output] chunks to this client (default), the daemon's speaker, or nowhere
 * @property {string} [wav] also write a WAV file at this path (on the daemon's machine)
 */
/**
 * @typedef {object} AudioChunk
 * @property {number} seq
 * @property {number} sentence
 * @property {Buffer} pcm 16-bit little-endian mono PCM at `DaemonInfo.sample_rate`
 */
/**
 * How a request went: its `done` message.
 * @typedef {object} Done
 * @property {string | number} id
 * @property {string} finish_reason "eos", "frame-cap", "cancelled", ...
 * @property {number | null} time_to_first_audio seconds
 * @property {number} real_time_factor compute seconds per second of audio
 * @property {number} audio_seconds
 * @property {number} compute_seconds
 * @property {number} frames
 * @property {number} sentences
 * @property {number} cached_sentences sentences replayed from the audio cache
 * @property {number} chunks
 * @property {number} peak_memory_bytes
 * @property {string} [wav]
 */
/**
 * @typedef {object} SpawnOptions
 * @property {string} [command] the daemon executable (default: mlx-speechd on the PATH)
 * @property {string[]} [args] daemon options, e.g. ["--model", path]; --stdio is added
 * @property {NodeJS.ProcessEnv} [env]
 * @property {"inherit" | "ignore"} [stderr] the daemon's log (default: inherit)
 */
/**
 * A client whose daemon is ready (what `SpeechdClient.spawn` resolves with): `info` is set.
 * @typedef {SpeechdClient & {info: DaemonInfo}} ReadyClient
 */
/**
 * Why a request (or the client) failed: a code of the daemon's (docs/protocol.md), or one of the client's
 * own: "daemon-exited", "spawn-failed", "protocol-error" (the daemon's stdout carried a line that is
 * not a protocol message, e.g. it was started with --version or --help).
 * @typedef {"invalid-json" | "invalid-request" | "unknown-type" | "line-too-long" | "duplicate-id"
 *   | "unknown-request" | "output-failed" | "internal-error" | "unknown-voice" | "text-too-long"
 *   | "model-unavailable" | "engine-failure" | "engine-closed" | "error"
 *   | "daemon-exited" | "spawn-failed" | "protocol-error"} ErrorCode
 */
/** An `error` line from the daemon, or the daemon going away (or breaking the protocol). */
export class SpeechdError extends Error {
    /**
     * @param {ErrorCode} code e.g. "unknown-voice", "text-too-long", "daemon-exited"
     * @param {string} message
     * @param {string | number | null} [id]
     */
    constructor(code: ErrorCode, message: string, id?: string | number | null);
    code: ErrorCode;
    id: string | number | null;
}
/** One request's audio: `for await` its chunks; `done` resolves with its stats (or rejects). */
export class Speech {
    /**
     * Made by `SpeechdClient.synthesize` and `SpeechdClient.stream`.
     * @param {string} id
     * @param {(request: Record<string, unknown>) => void} send
     */
    constructor(id: string, send: (request: Record<string, unknown>) => void);
    id: string;
    /** @type {Promise<Done>} resolves with the stats when the request is over; rejects on an error */
    done: Promise<Done>;
    /** Stop: queued text is dropped, audio stops within a frame; `done` says "cancelled". */
    cancel(): void;
    /** @returns {AsyncGenerator<AudioChunk, void, undefined>} */
    [Symbol.asyncIterator](): AsyncGenerator<AudioChunk, void, undefined>;
    #private;
}
/** A reply whose text arrives in pieces (an LLM's output): `append` as it comes, then `end`. */
export class TextStream extends Speech {
    /** @param {string} text any piece: sentences are found by the daemon */
    append(text: string): void;
    /** No more text: the rest is spoken, then the stream ends. */
    end(): void;
    #private;
}
/** The daemon as a child process, speaking JSON lines on its stdin/stdout. */
export class SpeechdClient {
    /**
     * Start `mlx-speechd --stdio` and wait until its model is loaded and warmed up.
     * Rejects with a SpeechdError if the daemon fails to start, exits, or does not speak the protocol.
     * @param {SpawnOptions} [options]
     * @returns {Promise<ReadyClient>}
     */
    static spawn({ command, args, env, stderr }?: SpawnOptions): Promise<ReadyClient>;
    /**
     * Use `SpeechdClient.spawn` unless you start the process yourself (with --stdio and piped stdin/stdout).
     * @param {import("node:child_process").ChildProcess} child
     */
    constructor(child: import("node:child_process").ChildProcess);
    /** @type {DaemonInfo | null} the `ready` message, once the daemon is ready */
    info: DaemonInfo | null;
    /** Called with errors that belong to no request (e.g. a line the daemon could not read). */
    onerror: (error: SpeechdError) => void;
    /** @type {Promise<number | null>} the daemon's exit code, once it has exited */
    exited: Promise<number | null>;
    /**
     * Speak a complete text.
     * @param {string} text
     * @param {SpeechOptions} [options]
     * @returns {Speech}
     */
    synthesize(text: string, options?: SpeechOptions): Speech;
    /**
     * Open a text stream: `append` pieces as they arrive, then `end`.
     * @param {SpeechOptions} [options]
     * @returns {TextStream}
     */
    stream(options?: SpeechOptions): TextStream;
    /** @returns {Promise<DaemonInfo>} */
    describe(): Promise<DaemonInfo>;
    /** @returns {Promise<void>} resolves when the daemon answers */
    ping(): Promise<void>;
    /**
     * End stdin: the daemon finishes the requests in flight (unless started with --stdio-eof cancel) and exits.
     * @returns {Promise<number | null>} its exit code
     */
    close(): Promise<number | null>;
    /** Stop the daemon now (SIGTERM). */
    kill(): void;
    #private;
}
export type Voice = {
    name: string;
    languages: string[];
};
/**
 * What the daemon serves: its `ready` message (and the answer to `describe`).
 */
export type DaemonInfo = {
    protocol: number;
    version: string;
    model: string;
    variant: string;
    sample_rate: number;
    sample_width: number;
    channels: number;
    sample_format: string;
    voices: Voice[];
    default_voice: string;
    outputs: string[];
    max_text_chars: number;
    max_line_bytes: number;
};
/**
 * Voice and output settings of a request; anything left out takes the daemon's default.
 */
export type SpeechOptions = {
    /**
     * a speaker of a CustomVoice model (see `DaemonInfo.voices`)
     */
    voice?: string | undefined;
    /**
     * "auto", "english", "en", ...
     */
    language?: string | undefined;
    /**
     * speaking style (CustomVoice 1.7B) or voice description (VoiceDesign)
     */
    instruct?: string | undefined;
    /**
     * reference recording to clone (Base models; a path on the daemon's machine)
     */
    ref_audio?: string | undefined;
    /**
     * transcript of `ref_audio`
     */
    ref_text?: string | undefined;
    seed?: number | undefined;
    /**
     * seconds of silence between sentences
     */
    sentence_pause?: number | undefined;
    /**
     * seconds of silence before the first audio
     */
    lead_in?: number | undefined;
    /**
     * chunks to this client (default), the daemon's speaker, or nowhere
     */
    output?: "none" | "play" | "pcm" | undefined;
    /**
     * also write a WAV file at this path (on the daemon's machine)
     */
    wav?: string | undefined;
};
export type AudioChunk = {
    seq: number;
    sentence: number;
    /**
     * 16-bit little-endian mono PCM at `DaemonInfo.sample_rate`
     */
    pcm: Buffer;
};
/**
 * How a request went: its `done` message.
 */
export type Done = {
    id: string | number;
    /**
     * "eos", "frame-cap", "cancelled", ...
     */
    finish_reason: string;
    /**
     * seconds
     */
    time_to_first_audio: number | null;
    /**
     * compute seconds per second of audio
     */
    real_time_factor: number;
    audio_seconds: number;
    compute_seconds: number;
    frames: number;
    sentences: number;
    /**
     * sentences replayed from the audio cache
     */
    cached_sentences: number;
    chunks: number;
    peak_memory_bytes: number;
    wav?: string | undefined;
};
export type SpawnOptions = {
    /**
     * the daemon executable (default: mlx-speechd on the PATH)
     */
    command?: string | undefined;
    /**
     * daemon options, e.g. ["--model", path]; --stdio is added
     */
    args?: string[] | undefined;
    env?: NodeJS.ProcessEnv | undefined;
    /**
     * the daemon's log (default: inherit)
     */
    stderr?: "inherit" | "ignore" | undefined;
};
/**
 * A client whose daemon is ready (what `SpeechdClient.spawn` resolves with): `info` is set.
 */
export type ReadyClient = SpeechdClient & {
    info: DaemonInfo;
};
/**
 * Why a request (or the client) failed: a code of the daemon's (docs/protocol.md), or one of the client's
 * own: "daemon-exited", "spawn-failed", "protocol-error" (the daemon's stdout carried a line that is
 * not a protocol message, e.g. it was started with --version or --help).
 */
export type ErrorCode = "invalid-json" | "invalid-request" | "unknown-type" | "line-too-long" | "duplicate-id" | "unknown-request" | "output-failed" | "internal-error" | "unknown-voice" | "text-too-long" | "model-unavailable" | "engine-failure" | "engine-closed" | "error" | "daemon-exited" | "spawn-failed" | "protocol-error";
