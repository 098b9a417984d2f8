/**
 * A download's file name, from `Content-Disposition` (RFC 6266: `filename*` wins over `filename`)
 * or else the last segment of the URL path. Only a base name comes back: no directories, no control
 * characters, never `.` or `..`; callers must still treat it as untrusted display text.
 */
export function filenameFrom(contentDisposition: string | null, url: URL): string | null {
  if (contentDisposition !== null) {
    const extended = /filename\*\s*=\s*([^;]+)/i.exec(contentDisposition)?.[1];
    const fromExtended = extended === undefined ? null : decodeExtValue(extended.trim());
    if (fromExtended !== null) return sanitise(fromExtended);
    const plain = /filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]+)/i.exec(contentDisposition)?.[1];
    if (plain !== undefined) {
      const value = plain.trim();
      const unquoted = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
      const name = sanitise(unquoted);
      if (name !== null) return name;
    }
  }
  const segment = url.pathname.split('/').pop() ?? '';
  return sanitise(safeDecode(segment) ?? segment);
}

/** `UTF-8''na%C3%AFve.txt` → `naïve.txt`; other charsets than UTF-8 / ISO-8859-1 are ignored. */
function decodeExtValue(value: string): string | null {
  const match = /^([\w!#$%&+^`{}~-]+)'[^']*'(.*)$/.exec(value);
  if (match === null) return null;
  const charset = (match[1] ?? '').toLowerCase();
  const encoded = match[2] ?? '';
  if (charset === 'utf-8') return safeDecode(encoded);
  if (charset === 'iso-8859-1') {
    return encoded.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
  return null;
}

function safeDecode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

function sanitise(name: string): string | null {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const base = (name.split(/[/\\]/).pop() ?? '').replace(/[\u0000-\u001f\u007f]/g, '').trim();
  if (base === '' || base === '.' || base === '..') return null;
  return base.slice(0, 255);
}
