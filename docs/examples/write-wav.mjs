#!/usr/bin/env node
// Speak a text with mlx-speechd and write it to a WAV file, chunk by chunk as the audio arrives.
//
//   node write-wav.mjs OUT.wav "Text to speak." [mlx-speechd options...]
//   bun write-wav.mjs OUT.wav "Text to speak." --model ./Qwen3-TTS-12Hz-0.6B-CustomVoice-8bit --voice vivian
//
// The daemon is $MLX_SPEECHD, or mlx-speechd on the PATH.
import { open } from "node:fs/promises";
import { SpeechdClient } from "./mlx-speechd-client.mjs";

const [out, text, ...daemonArgs] = process.argv.slice(2);
if (out === undefined || text === undefined) {
  console.error("usage: write-wav.mjs OUT.wav TEXT [mlx-speechd options...]");
  process.exit(2);
}

const speechd = await SpeechdClient.spawn({ command: process.env.MLX_SPEECHD ?? "mlx-speechd", args: daemonArgs });
const info = /** @type {import("./mlx-speechd-client.mjs").DaemonInfo} */ (speechd.info);
const file = await open(out, "w");
try {
  await file.write(wavHeader(0, info)); // rewritten with the real size at the end
  let bytes = 0;
  const speech = speechd.synthesize(text);
  for await (const chunk of speech) {
    await file.write(chunk.pcm);
    bytes += chunk.pcm.length;
  }
  await file.write(wavHeader(bytes, info), 0, 44, 0);
  const done = await speech.done;
  console.error(
    `${out}: ${done.audio_seconds} s of audio; first audio after ${done.time_to_first_audio} s, ` +
      `real-time factor ${done.real_time_factor}`,
  );
} finally {
  await file.close();
}
process.exitCode = (await speechd.close()) ?? 1;

/**
 * A 44-byte RIFF/WAVE header for `dataBytes` of PCM.
 * @param {number} dataBytes
 * @param {import("./mlx-speechd-client.mjs").DaemonInfo} info
 */
function wavHeader(dataBytes, { sample_rate: rate, channels, sample_width: width }) {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels * width, 28); // bytes per second
  header.writeUInt16LE(channels * width, 32); // block align
  header.writeUInt16LE(8 * width, 34); // bits per sample
  header.write("data", 36, "ascii");
  header.writeUInt32LE(dataBytes, 40);
  return header;
}
