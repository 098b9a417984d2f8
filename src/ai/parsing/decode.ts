/** The result of turning bytes into text. */
export interface DecodedText {
  /** The text with any BOM removed and line endings normalised to `\n`. */
  text: string;
  encoding: 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252';
}

/** `\r\n` and lone `\r` become `\n`, so offsets are the same whatever platform wrote the file. */
export const normaliseNewlines = (text: string): string => text.replace(/\r\n?/g, '\n');

/**
 * Decodes bytes as text: a BOM decides the encoding when present; otherwise UTF-8 if the bytes are
 * valid UTF-8, BOM-less UTF-16LE when the bytes look like it (ASCII with every other byte zero), and
 * windows-1252 as the last resort (it decodes any byte, which is why it comes last).
 */
export function decodeText(bytes: Uint8Array): DecodedText {
  const encoding = detectEncoding(bytes);
  const bomLength = encoding.bom ? (encoding.name === 'utf-8' ? 3 : 2) : 0;
  const body = bytes.subarray(bomLength);
  const raw =
    encoding.name === 'windows-1252'
      ? decodeWindows1252(body)
      : encoding.name === 'utf-16be'
        ? new TextDecoder('utf-16le').decode(swapBytes(body))
        : new TextDecoder(encoding.name).decode(body);
  return { text: normaliseNewlines(raw), encoding: encoding.name };
}

/** The encoding `decodeText` would pick, and whether the bytes start with its BOM. */
export interface DetectedEncoding {
  name: DecodedText['encoding'];
  bom: boolean;
}

/**
 * Picks the encoding of `bytes`. With `complete: false` the bytes are a prefix of a longer input: a
 * multi-byte UTF-8 sequence cut at the end of the prefix does not count against UTF-8.
 */
export function detectEncoding(bytes: Uint8Array, { complete = true } = {}): DetectedEncoding {
  const [b0, b1, b2] = bytes;
  if (b0 === 0xef && b1 === 0xbb && b2 === 0xbf) return { name: 'utf-8', bom: true };
  if (b0 === 0xff && b1 === 0xfe) return { name: 'utf-16le', bom: true };
  if (b0 === 0xfe && b1 === 0xff) return { name: 'utf-16be', bom: true };
  // ASCII in UTF-16 is also valid UTF-8 (with NULs), so the UTF-16 shape is checked first.
  if (looksLikeUtf16(bytes, 1)) return { name: 'utf-16le', bom: false };
  if (looksLikeUtf16(bytes, 0)) return { name: 'utf-16be', bom: false };
  if (isUtf8(bytes, complete)) return { name: 'utf-8', bom: false };
  return { name: 'windows-1252', bom: false };
}

/** Whether the text was decoded from a UTF-16 encoding (NUL bytes are expected there). */
export const isUtf16 = (encoding: DecodedText['encoding']): boolean =>
  encoding === 'utf-16le' || encoding === 'utf-16be';

function isUtf8(bytes: Uint8Array, complete: boolean): boolean {
  try {
    // In stream mode an incomplete trailing sequence is held back rather than rejected.
    new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: !complete });
    return true;
  } catch {
    return false;
  }
}

/** Mostly-ASCII UTF-16: the high byte of each code unit (at `zeroParity`) is almost always zero. */
function looksLikeUtf16(bytes: Uint8Array, zeroParity: 0 | 1): boolean {
  const sample = bytes.subarray(0, Math.min(bytes.length, 4096) & ~1);
  if (sample.length < 4) return false;
  let zeros = 0;
  let otherZeros = 0;
  for (let i = 0; i < sample.length; i += 1) {
    if (sample[i] !== 0) continue;
    if (i % 2 === zeroParity) zeros += 1;
    else otherZeros += 1;
  }
  const units = sample.length / 2;
  return zeros >= units * 0.9 && otherZeros === 0;
}

function swapBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length & ~1);
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    out[i] = bytes[i + 1] ?? 0;
    out[i + 1] = bytes[i] ?? 0;
  }
  return out;
}

/**
 * 0x80–0x9F of windows-1252 (`undefined` = unassigned, kept as the C1 control). Decoded by hand because
 * Node's TextDecoder treats the `windows-1252` label as ISO-8859-1 and loses €, smart quotes and dashes.
 */
const WINDOWS_1252_HIGH = [
  0x20ac,
  undefined,
  0x201a,
  0x0192,
  0x201e,
  0x2026,
  0x2020,
  0x2021,
  0x02c6,
  0x2030,
  0x0160,
  0x2039,
  0x0152,
  undefined,
  0x017d,
  undefined,
  undefined,
  0x2018,
  0x2019,
  0x201c,
  0x201d,
  0x2022,
  0x2013,
  0x2014,
  0x02dc,
  0x2122,
  0x0161,
  0x203a,
  0x0153,
  undefined,
  0x017e,
  0x0178,
];

function decodeWindows1252(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) {
    const mapped = byte >= 0x80 && byte <= 0x9f ? WINDOWS_1252_HIGH[byte - 0x80] : undefined;
    text += String.fromCharCode(mapped ?? byte);
  }
  return text;
}

/**
 * Decodes a byte stream part by part into exactly the text `decodeText` gives for the concatenated
 * bytes (BOM dropped, `\r\n` / `\r` → `\n`): a character, a surrogate pair or a `\r\n` split across
 * parts is held back until the next part completes it. The encoding must be known up front (see
 * `detectEncoding`).
 *
 * @example
 *   const decoder = new StreamingTextDecoder(detectEncoding(firstBytes, { complete: false }));
 *   let text = decoder.write(firstBytes);
 *   text += decoder.end();
 */
export class StreamingTextDecoder {
  private readonly decoder: InstanceType<typeof TextDecoder> | undefined;
  /** BOM bytes still to skip (they may arrive over several parts). */
  private bomLeft: number;
  /** UTF-16BE: an odd byte waiting for its partner. */
  private oddByte: number | undefined;
  /** A trailing `\r` that a leading `\n` of the next part would join. */
  private pendingCr = false;

  constructor(readonly encoding: DetectedEncoding) {
    this.bomLeft = encoding.bom ? (encoding.name === 'utf-8' ? 3 : 2) : 0;
    this.decoder =
      encoding.name === 'windows-1252'
        ? undefined
        : new TextDecoder(encoding.name === 'utf-16be' ? 'utf-16le' : encoding.name);
  }

  /** Decodes the next part; returns the text it completes (possibly empty). */
  write(part: Uint8Array): string {
    let bytes = part;
    if (this.bomLeft > 0) {
      const skip = Math.min(this.bomLeft, bytes.length);
      this.bomLeft -= skip;
      bytes = bytes.subarray(skip);
    }
    return this.normalise(this.decode(bytes, true), false);
  }

  /** Flushes what is held back; the decoder cannot be used afterwards. */
  end(): string {
    // decodeText drops an odd trailing byte of UTF-16BE (swapBytes), so it is dropped here too.
    this.oddByte = undefined;
    return this.normalise(this.decode(new Uint8Array(0), false), true);
  }

  private decode(bytes: Uint8Array, stream: boolean): string {
    if (this.decoder === undefined) return decodeWindows1252(bytes);
    if (this.encoding.name !== 'utf-16be') return this.decoder.decode(bytes, { stream });
    let input = bytes;
    if (this.oddByte !== undefined && bytes.length > 0) {
      input = new Uint8Array(bytes.length + 1);
      input[0] = this.oddByte;
      input.set(bytes, 1);
      this.oddByte = undefined;
    }
    if (input.length % 2 === 1) this.oddByte = input[input.length - 1];
    return this.decoder.decode(swapBytes(input), { stream });
  }

  private normalise(decoded: string, last: boolean): string {
    let text = this.pendingCr ? `\r${decoded}` : decoded;
    this.pendingCr = !last && text.endsWith('\r');
    if (this.pendingCr) text = text.slice(0, -1);
    return normaliseNewlines(text);
  }
}
