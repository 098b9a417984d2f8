/**
 * Streams a generated Markdown upload through `chunkTextStream` and reports peak RSS and throughput.
 * Run: `npx tsx bench/ingest-memory-chunking.ts [megabytes=200] [windowChars=1000000]`.
 */
import { chunkTextStream } from '../src/ai/chunking/stream.js';
import { countTokens } from '../src/ai/chunking/tokens.js';
import { generatedParts, generateMarkdown } from '../test/fixtures/chunking/generated-markdown.js';

const megabytes = Number(process.argv[2] ?? 200);
const windowChars = Number(process.argv[3] ?? 1_000_000);
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

let peakRss = 0;
const sample = (): void => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
// Chunking a window is synchronous, so the timer alone would miss peaks; parts and windows sample too.
const timer = setInterval(sample, 50);

countTokens('load the tokenizer before measuring the baseline');
const baselineRss = process.memoryUsage().rss;
let bytes = 0;
async function* parts(): AsyncGenerator<Uint8Array> {
  for await (const part of generatedParts(generateMarkdown(megabytes * 1_000_000))) {
    bytes += part.length;
    sample();
    yield part;
  }
}

const started = performance.now();
let chunks = 0;
let windows = 0;
let lastEnd = 0;
for await (const window of chunkTextStream(parts(), {
  format: 'markdown',
  maxTokens: 400,
  overlapTokens: 50,
  windowChars,
})) {
  sample();
  windows++;
  chunks += window.length;
  lastEnd = window.at(-1)?.charEnd ?? lastEnd;
  if (windows % 20 === 0) {
    const seconds = (performance.now() - started) / 1000;
    console.info(`… ${mib(bytes)} read, ${chunks} chunks, ${seconds.toFixed(0)} s, peak RSS ${mib(peakRss)}`);
  }
}
clearInterval(timer);
sample();

const seconds = (performance.now() - started) / 1000;
console.info(
  [
    `input: ${mib(bytes)} of generated Markdown (${lastEnd} chars chunked), windowChars ${windowChars}`,
    `chunks: ${chunks} in ${windows} windows, ${seconds.toFixed(1)} s`,
    `throughput: ${(chunks / seconds).toFixed(0)} chunks/s, ${(bytes / 2 ** 20 / seconds).toFixed(2)} MiB/s`,
    `RSS: baseline ${mib(baselineRss)} (runtime + tokenizer), peak ${mib(peakRss)}, peak above baseline ${mib(peakRss - baselineRss)}`,
  ].join('\n'),
);
