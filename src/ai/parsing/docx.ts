import JSZip from 'jszip';
import mammoth from 'mammoth';

import { parseHtml } from './html.js';
import { describe } from './sniff.js';
import { ParseError, type ParsedDocument } from './types.js';

export const DOCX_MIME = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

/** The most a DOCX may inflate to; far above real documents, far below a zip bomb. */
export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024;

export interface DocxOptions {
  maxUncompressedBytes?: number;
}

/**
 * Parses a DOCX by converting it to HTML with mammoth (headings, lists and tables survive) and walking
 * that HTML. The archive is size-checked first, so a zip bomb is refused before anything inflates it.
 *
 * @example
 *   const doc = await parseDocx(bytes); // doc.blocks[0] → { kind: 'heading', level: 1, … }
 */
export async function parseDocx(bytes: Uint8Array, options: DocxOptions = {}): Promise<ParsedDocument> {
  const limit = options.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED_BYTES;
  let zip: JSZip;
  try {
    zip = await JSZip.loadAsync(bytes);
  } catch (error) {
    throw new ParseError('corrupt', `the DOCX archive cannot be read: ${describe(error)}`);
  }
  await assertInflatedSizeWithin(zip, limit);

  let html: string;
  let warnings: string[];
  try {
    const result = await mammoth.convertToHtml({ buffer: Buffer.from(bytes) }, { externalFileAccess: false });
    html = result.value;
    warnings = result.messages.map((message) => message.message);
  } catch (error) {
    throw new ParseError('corrupt', `the DOCX cannot be read: ${describe(error)}`);
  }

  const title = await coreTitle(zip);
  const parsed = parseHtml(html, {
    readability: false,
    mime: DOCX_MIME,
    ...(title === undefined ? {} : { title }),
  });
  return { ...parsed, metadata: { ...parsed.metadata, warnings } };
}

/**
 * The central directory's sizes are checked first (cheap, catches ordinary bombs), then every entry is
 * inflated as a stream and counted, because those sizes are attacker-written and may lie.
 */
async function assertInflatedSizeWithin(zip: JSZip, limit: number): Promise<void> {
  const entries = Object.values(zip.files).filter((entry) => !entry.dir);
  const declared = entries.reduce((sum, entry) => sum + declaredSize(entry), 0);
  if (declared > limit) throw tooLarge(limit);

  let total = 0;
  for (const entry of entries) {
    total += await inflatedSize(entry, limit - total, /\.(xml|rels)$/i.test(entry.name));
  }
}

/**
 * Office Open XML never declares a DTD; a part that does is an XML bomb ("billion laughs": entities
 * that expand exponentially) or an external-entity probe, refused before any XML parser sees it.
 */
const DTD = /<!(DOCTYPE|ENTITY)/i;

function declaredSize(entry: JSZip.JSZipObject): number {
  const size = (entry as unknown as { _data?: { uncompressedSize?: unknown } })._data?.uncompressedSize;
  return typeof size === 'number' ? size : 0;
}

/**
 * Inflates an entry without keeping it, stopping as soon as it exceeds `budget` bytes; XML parts are
 * scanned for DTDs on the way (the tail of the previous piece is kept so a match across pieces counts).
 */
function inflatedSize(entry: JSZip.JSZipObject, budget: number, xml: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = entry.nodeStream('nodebuffer') as NodeJS.ReadableStream & { destroy?: () => void };
    let size = 0;
    let tail = '';
    const stop = (error: ParseError) => {
      stream.removeAllListeners('data');
      stream.pause();
      stream.destroy?.();
      reject(error);
    };
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > budget) {
        stop(tooLarge(budget));
        return;
      }
      if (xml) {
        const text = tail + chunk.toString('latin1');
        if (DTD.test(text)) {
          stop(
            new ParseError('unsupported', `the DOCX part ${entry.name} declares a DTD (an XML entity bomb?)`),
          );
          return;
        }
        tail = text.slice(-16);
      }
    });
    stream.on('end', () => {
      resolve(size);
    });
    stream.on('error', (error: unknown) => {
      reject(new ParseError('corrupt', `the DOCX archive cannot be read: ${describe(error)}`));
    });
  });
}

const tooLarge = (limit: number): ParseError =>
  new ParseError('too_large', `the DOCX inflates to more than ${Math.round(limit / (1024 * 1024))} MB`);

/** `dc:title` from docProps/core.xml, when the author set one. */
async function coreTitle(zip: JSZip): Promise<string | undefined> {
  const core = await zip.file('docProps/core.xml')?.async('string');
  const match = core === undefined ? null : /<dc:title>([^<]*)<\/dc:title>/.exec(core);
  const title = match?.[1] === undefined ? '' : decodeXmlEntities(match[1]).trim();
  return title === '' ? undefined : title;
}

const decodeXmlEntities = (text: string): string =>
  text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
