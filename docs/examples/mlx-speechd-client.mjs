// @ts-check
/**
 * A small client for mlx-speechd's JSON-lines protocol (docs/protocol.md), for Bun and Node.
 *
 * Plain ESM JavaScript with JSDoc types, so the same file runs unchanged on Bun and on Node 18+;
 * `tsc --checkJs` checks it, and TypeScript code imports it with the types of
 * mlx-speechd-client.d.mts (generated from this file).
 *
 *   const speechd = await SpeechdClient.spawn({ args: ["--model", "./Qwen3-TTS-0.6B"] });
 *   const speech = speechd.synthesize("Hello there.", { voice: "vivian" });
 *   for await (const chunk of speech) player.write(chunk.pcm);  // 24 kHz s16le mono
 *   console.log(await speech.done);                             // stats
 *   await speechd.close();
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** The protocol version this client speaks. */
export const PROTOCOL = 1;

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
  constructor(code, message, id = null) {
    super(message);
    this.name = "SpeechdError";
    this.code = code;
    this.id = id;
  }
}

/**
 * How the client delivers what arrives for a request (kept out of the public API).
 * @type {WeakMap<Speech, {chunk: (chunk: AudioChunk) => void, finish: (done: Done) => void, fail: (error: SpeechdError) => void}>}
 */
const inboxes = new WeakMap();

/** One request's audio: `for await` its chunks; `done` resolves with its stats (or rejects). */
export class Speech {
  /** @type {AudioChunk[]} */
  #chunks = [];
  /** @type {(() => void) | null} */
  #wake = null;
  #ended = false;
  /** @type {SpeechdError | null} */
  #error = null;
  /** @type {(request: Record<string, unknown>) => void} */
  #send;

  /**
   * Made by `SpeechdClient.synthesize` and `SpeechdClient.stream`.
   * @param {string} id
   * @param {(request: Record<string, unknown>) => void} send
   */
  constructor(id, send) {
    this.id = id;
    this.#send = send;
    /** @type {(done: Done) => void} */
    let resolve = () => {};
    /** @type {(error: SpeechdError) => void} */
    let reject = () => {};
    /** @type {Promise<Done>} resolves with the stats when the request is over; rejects on an error */
    this.done = new Promise((yes, no) => {
      resolve = yes;
      reject = no;
    });
    this.done.catch(() => {}); // iteration reports failures too: never an unhandled rejection
    inboxes.set(this, {
      chunk: (chunk) => {
        this.#chunks.push(chunk);
        this.#notify();
      },
      finish: (done) => {
        this.#ended = true;
        resolve(done);
        this.#notify();
      },
      fail: (error) => {
        this.#ended = true;
        this.#error = error;
        reject(error);
        this.#notify();
      },
    });
  }

  /** Stop: queued text is dropped, audio stops within a frame; `done` says "cancelled". */
  cancel() {
    this.#send({ type: "cancel", id: this.id });
  }

  /** @returns {AsyncGenerator<AudioChunk, void, undefined>} */
  async *[Symbol.asyncIterator]() {
    while (true) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        yield chunk;
      } else if (this.#error !== null) {
        throw this.#error;
      } else if (this.#ended) {
        return;
      } else {
        await new Promise((resolve) => (this.#wake = () => resolve(undefined)));
      }
    }
  }

  #notify() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** A reply whose text arrives in pieces (an LLM's output): `append` as it comes, then `end`. */
export class TextStream extends Speech {
  /** @type {(request: Record<string, unknown>) => void} */
  #send;

  /**
   * Made by `SpeechdClient.stream`.
   * @param {string} id
   * @param {(request: Record<string, unknown>) => void} send
   */
  constructor(id, send) {
    super(id, send);
    this.#send = send;
  }

  /** @param {string} text any piece: sentences are found by the daemon */
  append(text) {
    this.#send({ type: "synthesize-append", id: this.id, text });
  }

  /** No more text: the rest is spoken, then the stream ends. */
  end() {
    this.#send({ type: "synthesize-end", id: this.id });
  }
}

/** The daemon as a child process, speaking JSON lines on its stdin/stdout. */
export class SpeechdClient {
  /** @type {import("node:child_process").ChildProcess} */
  #child;
  /** @type {import("node:stream").Writable} */
  #stdin;
  /** @type {Map<string, Speech>} requests in flight */
  #speeches = new Map();
  /** @type {Map<string, {resolve: (message: any) => void, reject: (error: SpeechdError) => void}>} */
  #calls = new Map();
  #nextId = 1;
  /** @type {SpeechdError | null} why the daemon is gone */
  #gone = null;
  /** @type {Promise<void>} */
  #ready;

  /**
   * Start `mlx-speechd --stdio` and wait until its model is loaded and warmed up.
   * Rejects with a SpeechdError if the daemon fails to start, exits, or does not speak the protocol.
   * @param {SpawnOptions} [options]
   * @returns {Promise<ReadyClient>}
   */
  static async spawn({ command = "mlx-speechd", args = [], env = process.env, stderr = "inherit" } = {}) {
    const child = spawn(command, [...args, "--stdio"], { stdio: ["pipe", "pipe", stderr], env });
    const client = new SpeechdClient(child);
    await client.#ready;
    return /** @type {ReadyClient} */ (client);
  }

  /**
   * Use `SpeechdClient.spawn` unless you start the process yourself (with --stdio and piped stdin/stdout).
   * @param {import("node:child_process").ChildProcess} child
   */
  constructor(child) {
    if (child.stdin === null || child.stdout === null) {
      throw new TypeError("the daemon's stdin and stdout must be pipes");
    }
    this.#child = child;
    this.#stdin = child.stdin;
    /** @type {DaemonInfo | null} the `ready` message, once the daemon is ready */
    this.info = null;
    /** Called with errors that belong to no request (e.g. a line the daemon could not read). */
    this.onerror = (/** @type {SpeechdError} */ error) => {
      console.error(`mlx-speechd: ${error.code}: ${error.message}`);
    };
    /** @type {Promise<number | null>} the daemon's exit code, once it has exited */
    this.exited = new Promise((resolve) => {
      child.on("error", (error) => this.#fail(new SpeechdError("spawn-failed", String(error))));
      // "close" comes after the process ended and its stdout was read to the end.
      child.on("close", (code, signal) => {
        this.#fail(new SpeechdError("daemon-exited", `mlx-speechd exited (${signal ?? `code ${code}`})`));
        resolve(code);
      });
    });
    this.#ready = new Promise((resolve, reject) => {
      this.#calls.set("ready", { resolve: (info) => ((this.info = info), resolve()), reject });
    });
    this.#ready.catch(() => {});
    this.#stdin.on("error", () => {}); // a daemon that went away is reported by "close"
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", (line) => this.#receive(line));
  }

  /**
   * Speak a complete text.
   * @param {string} text
   * @param {SpeechOptions} [options]
   * @returns {Speech}
   */
  synthesize(text, options = {}) {
    const speech = new Speech(this.#newId(), (request) => this.#send(request));
    this.#start(speech, { type: "synthesize", id: speech.id, text, ...options });
    return speech;
  }

  /**
   * Open a text stream: `append` pieces as they arrive, then `end`.
   * @param {SpeechOptions} [options]
   * @returns {TextStream}
   */
  stream(options = {}) {
    const stream = new TextStream(this.#newId(), (request) => this.#send(request));
    this.#start(stream, { type: "synthesize-start", id: stream.id, ...options });
    return stream;
  }

  /** @returns {Promise<DaemonInfo>} */
  describe() {
    return this.#call("describe");
  }

  /** @returns {Promise<void>} resolves when the daemon answers */
  async ping() {
    await this.#call("ping");
  }

  /**
   * End stdin: the daemon finishes the requests in flight (unless started with --stdio-eof cancel) and exits.
   * @returns {Promise<number | null>} its exit code
   */
  close() {
    this.#stdin.end();
    return this.exited;
  }

  /** Stop the daemon now (SIGTERM). */
  kill() {
    this.#child.kill("SIGTERM");
  }

  #newId() {
    return `r${this.#nextId++}`;
  }

  /** @param {Speech} speech @param {Record<string, unknown>} request */
  #start(speech, request) {
    if (this.#gone !== null) {
      inboxes.get(speech)?.fail(this.#gone);
      return;
    }
    this.#speeches.set(speech.id, speech);
    this.#send(request);
  }

  /** @param {string} type @returns {Promise<any>} */
  #call(type) {
    if (this.#gone !== null) return Promise.reject(this.#gone);
    const id = this.#newId();
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
      this.#send({ type, id });
    });
  }

  /** @param {Record<string, unknown>} request */
  #send(request) {
    if (this.#gone === null) this.#stdin.write(`${JSON.stringify(request)}\n`);
  }

  /**
   * One line of the daemon's stdout. Never throws (it runs in an event handler): a line that is not
   * a protocol message ends the client, failing everything pending, and stops the daemon.
   * @param {string} line
   */
  #receive(line) {
    try {
      const message = JSON.parse(line);
      if (typeof message !== "object" || message === null || typeof message.type !== "string") {
        throw new TypeError("not a JSON object with a type");
      }
      this.#handle(message);
    } catch (error) {
      const shown = line.length > 200 ? `${line.slice(0, 200)}...` : line;
      const failure = new SpeechdError("protocol-error", `the daemon sent ${JSON.stringify(shown)}: ${error}`);
      const pending = this.#speeches.size + this.#calls.size;
      this.#fail(failure);
      if (pending === 0 && this.#gone === failure) this.#report(failure); // nobody else hears of it
      this.#child.kill("SIGTERM");
    }
  }

  /** @param {any} message */
  #handle(message) {
    const id = message.id;
    switch (message.type) {
      case "ready":
        this.#settle("ready", message);
        break;
      case "info":
      case "pong":
        this.#settle(id, message);
        break;
      case "audio-chunk":
        this.#inbox(id)?.chunk({
          seq: message.seq,
          sentence: message.sentence,
          pcm: Buffer.from(message.audio, "base64"),
        });
        break;
      case "done":
        this.#inbox(id)?.finish(message);
        this.#speeches.delete(id);
        break;
      case "error": {
        const error = new SpeechdError(message.code, message.message, id);
        const call = id ?? (this.info === null ? "ready" : null); // a failed start-up has no id
        if (this.#speeches.has(id)) {
          this.#inbox(id)?.fail(error);
          this.#speeches.delete(id);
        } else if (call !== null && this.#calls.has(call)) {
          this.#calls.get(call)?.reject(error);
          this.#calls.delete(call);
        } else {
          this.#report(error);
        }
        break;
      }
      // "audio-start" repeats what `info` says (24 kHz, 16-bit, mono): nothing to do.
    }
  }

  /** @param {string} id */
  #inbox(id) {
    const speech = this.#speeches.get(id);
    return speech === undefined ? undefined : inboxes.get(speech);
  }

  /** @param {string} id @param {any} message */
  #settle(id, message) {
    this.#calls.get(id)?.resolve(message);
    this.#calls.delete(id);
  }

  /**
   * Hand an error to `onerror` outside the stdout handler: what `onerror` throws is its own.
   * @param {SpeechdError} error
   */
  #report(error) {
    queueMicrotask(() => this.onerror(error));
  }

  /** @param {SpeechdError} error */
  #fail(error) {
    if (this.#gone !== null) return;
    this.#gone = error;
    for (const speech of this.#speeches.values()) inboxes.get(speech)?.fail(error);
    for (const call of this.#calls.values()) call.reject(error);
    this.#speeches.clear();
    this.#calls.clear();
  }
}
