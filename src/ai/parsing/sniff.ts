import JSZip from 'jszip';

import { decodeText, isUtf16, type DecodedText } from './decode.js';
import { ParseError } from './types.js';

export interface ParseHint {
  filename?: string;
  mime?: string;
}

export type TextFormat = 'html' | 'json' | 'csv' | 'markdown' | 'text';

/** What the bytes are; text formats carry the decoded text so it is decoded once. */
export type Sniffed = { format: 'pdf' } | { format: 'docx' } | ({ format: TextFormat } & DecodedText);

const PDF_MAGIC = '%PDF-';
const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04] as const;
/** Share of control characters above which decoded "text" is treated as binary. */
const MAX_CONTROL_RATIO = 0.05;

/**
 * Detects the format from the content first (magic bytes, markup, JSON syntax) and falls back to the
 * filename extension and declared mime only for formats content cannot reveal (CSV, Markdown).
 *
 * @example
 *   const sniffed = await sniff(bytes, { filename: 'notes.md' }); // { format: 'markdown', text, … }
 */
export async function sniff(bytes: Uint8Array, hint: ParseHint = {}): Promise<Sniffed> {
  if (isPdf(bytes)) return { format: 'pdf' };
  if (startsWith(bytes, ZIP_MAGIC)) {
    if (await isDocx(bytes)) return { format: 'docx' };
    throw new ParseError('unsupported', 'ZIP archives other than DOCX are not supported');
  }

  const decoded = decodeText(bytes);
  if (looksBinary(bytes, decoded))
    throw new ParseError('unsupported', 'the file is binary, not a supported format');

  const head = decoded.text.trimStart().slice(0, 64).toLowerCase();
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return { format: 'html', ...decoded };

  const extension = extensionOf(hint.filename);
  const mime = baseMime(hint.mime);
  if (extension === 'csv' || mime === 'text/csv') return { format: 'csv', ...decoded };
  if (extension === 'md' || extension === 'markdown' || mime === 'text/markdown') {
    return { format: 'markdown', ...decoded };
  }
  if ((head.startsWith('{') || head.startsWith('[')) && isJson(decoded.text))
    return { format: 'json', ...decoded };
  if (extension === 'html' || extension === 'htm' || mime === 'text/html')
    return { format: 'html', ...decoded };
  return { format: 'text', ...decoded };
}

/**
 * Readers tolerate junk before the header, but matching `%PDF-` anywhere would misfile text *about*
 * PDFs; only leading whitespace is skipped.
 */
function isPdf(bytes: Uint8Array): boolean {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 64));
  return head.trimStart().startsWith(PDF_MAGIC);
}

/** Reads only the ZIP central directory (no entry is inflated), so this is cheap even for a zip bomb. */
async function isDocx(bytes: Uint8Array): Promise<boolean> {
  try {
    const zip = await JSZip.loadAsync(bytes);
    return zip.file('word/document.xml') !== null;
  } catch (error) {
    throw new ParseError('corrupt', `the ZIP archive cannot be read: ${describe(error)}`);
  }
}

/**
 * NUL bytes never occur in UTF-8/latin1 text, and random bytes decode to many control characters; a
 * UTF-16 decode is judged by its characters only.
 */
function looksBinary(bytes: Uint8Array, decoded: DecodedText): boolean {
  if (!isUtf16(decoded.encoding) && bytes.includes(0)) return true;
  const sample = decoded.text.slice(0, 8192);
  if (sample.length === 0) return false;
  let control = 0;
  for (const char of sample) {
    const code = char.codePointAt(0) ?? 0;
    const isControl =
      (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0c && code !== 0x0d) ||
      (code >= 0x7f && code <= 0x9f) ||
      code === 0xfffd;
    if (isControl) control += 1;
  }
  return control / sample.length > MAX_CONTROL_RATIO;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return magic.every((byte, index) => bytes[index] === byte);
}

const extensionOf = (filename: string | undefined): string | undefined => {
  const match = filename === undefined ? null : /\.([a-z0-9]+)$/i.exec(filename);
  return match?.[1]?.toLowerCase();
};

const baseMime = (mime: string | undefined): string | undefined => mime?.split(';')[0]?.trim().toLowerCase();

export const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));
