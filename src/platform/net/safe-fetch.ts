import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import type { ReadableStream } from 'node:stream/web';
import { Agent, fetch } from 'undici';
import { isMetadataAddress, isPublicAddress, normaliseIp } from './address-policy.js';
import { filenameFrom } from './filename.js';

export type UrlFetchErrorReason =
  | 'scheme'
  | 'blocked_address'
  | 'dns'
  | 'network'
  | 'too_large'
  | 'timeout'
  | 'content_type'
  | 'too_many_redirects'
  | 'http_status';

/** Why a URL could not be fetched. `url` is the hop that failed (after redirects), if known. */
export class UrlFetchError extends Error {
  override name = 'UrlFetchError';
  readonly reason: UrlFetchErrorReason;
  readonly url: string | undefined;
  /** The upstream status, for `http_status`. */
  readonly status: number | undefined;

  constructor(
    reason: UrlFetchErrorReason,
    message: string,
    options: { url?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.reason = reason;
    this.url = options.url;
    this.status = options.status;
  }
}

/** Resolves a host name to every address it has (the shape of `dns.lookup(host, { all: true })`). */
export type ResolveHost = (hostname: string) => Promise<readonly LookupAddress[]>;

export interface SafeFetchOptions {
  /** Largest body accepted, in bytes (after content decoding). */
  maxBytes: number;
  /** Budget for the whole fetch: DNS, every redirect hop and the body. */
  timeoutMs: number;
  /** Redirects followed before giving up (default 5). */
  maxRedirects?: number;
  /** Media types accepted (`text/html`, `text/*`); parameters such as `charset` are ignored. */
  allowedContentTypes?: string[];
  /** Allow private, loopback and other non-public addresses (cloud metadata stays refused). Tests and explicit configuration only. */
  allowPrivate?: boolean;
  userAgent?: string;
  signal?: AbortSignal;
  /** DNS resolution, injectable for tests (default `dns.lookup` with `all: true`). */
  lookup?: ResolveHost;
  /** Replaces the address policy entirely (tests): return true to allow connecting to `ip`. */
  isAllowedAddress?: (ip: string) => boolean;
}

export interface SafeFetchResult {
  /** The final URL, after redirects. */
  url: string;
  status: number;
  contentType: string | null;
  body: Uint8Array;
  /** From `Content-Disposition`, else the URL's last path segment; a bare, untrusted name. */
  filename: string | null;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const DEFAULT_USER_AGENT = 'Larder (+url-ingestion)';

const defaultResolveHost: ResolveHost = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' });

/**
 * Fetches a user-supplied URL without letting it reach internal services (SSRF).
 *
 * Every hop is checked: http(s) only, no credentials, and every address the host resolves to must
 * be public. The socket is then pinned to the addresses that were checked, so a DNS answer that
 * changes between check and connect (rebinding) cannot redirect it. Redirects are followed by hand
 * and re-checked; size, time and content type are bounded.
 *
 * @example
 *   const page = await safeFetch('https://example.com/doc.pdf', {
 *     maxBytes: 20 * 1024 * 1024,
 *     timeoutMs: 15_000,
 *     allowedContentTypes: ['application/pdf', 'text/html'],
 *   });
 */
export async function safeFetch(url: string, options: SafeFetchOptions): Promise<SafeFetchResult> {
  const maxRedirects = options.maxRedirects ?? 5;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  let current = parseTarget(url);
  try {
    for (let redirects = 0; ;) {
      const addresses = await resolveAndCheck(current, options, signal);
      const agent = pinnedAgent(current.hostname, addresses);
      try {
        const response = await fetch(current, {
          dispatcher: agent,
          redirect: 'manual',
          signal,
          headers: {
            'user-agent': options.userAgent ?? DEFAULT_USER_AGENT,
            accept: options.allowedContentTypes?.join(', ') ?? '*/*',
          },
        });
        const location = response.headers.get('location');
        if (REDIRECT_STATUSES.has(response.status) && location !== null) {
          await response.body?.cancel();
          if (redirects >= maxRedirects) {
            throw new UrlFetchError('too_many_redirects', `more than ${maxRedirects} redirects`, {
              url: current.href,
            });
          }
          redirects += 1;
          current = parseTarget(location, current);
          continue;
        }
        if (response.status < 200 || response.status > 299) {
          throw new UrlFetchError('http_status', `the server answered ${response.status}`, {
            url: current.href,
            status: response.status,
          });
        }
        const contentType = response.headers.get('content-type');
        checkContentType(contentType, options.allowedContentTypes, current);
        const declaredLength = Number(response.headers.get('content-length') ?? Number.NaN);
        if (Number.isFinite(declaredLength) && declaredLength > options.maxBytes) {
          throw tooLarge(options.maxBytes, current);
        }
        const body = await readCapped(
          response.body as ReadableStream<Uint8Array> | null,
          options.maxBytes,
          current,
        );
        return {
          url: current.href,
          status: response.status,
          contentType,
          body,
          filename: filenameFrom(response.headers.get('content-disposition'), current),
        };
      } finally {
        await agent.destroy();
      }
    }
  } catch (error) {
    if (error instanceof UrlFetchError) throw error;
    if (timeout.aborted) {
      throw new UrlFetchError('timeout', `no complete answer within ${options.timeoutMs} ms`, {
        url: current.href,
        cause: error,
      });
    }
    if (options.signal?.aborted === true) throw options.signal.reason;
    throw new UrlFetchError('network', 'the server could not be reached', {
      url: current.href,
      cause: error,
    });
  }
}

/** Parses and checks a URL's form (scheme, credentials) before anything touches the network. */
function parseTarget(text: string, base?: URL): URL {
  let target: URL;
  try {
    target = new URL(text, base);
  } catch (error) {
    throw new UrlFetchError('scheme', 'not a valid URL', { cause: error });
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new UrlFetchError('scheme', `the ${target.protocol} scheme is not allowed`, { url: target.href });
  }
  if (target.username !== '' || target.password !== '') {
    throw new UrlFetchError('scheme', 'credentials in URLs are not allowed', { url: redact(target) });
  }
  return target;
}

/**
 * The addresses the host may be reached at, every one of them checked. A host with any blocked
 * address is refused outright: picking the good ones would let a hostile DNS server choose.
 */
async function resolveAndCheck(
  target: URL,
  options: SafeFetchOptions,
  signal: AbortSignal,
): Promise<LookupAddress[]> {
  const allowed = (ip: string): boolean => {
    if (options.isAllowedAddress !== undefined) return options.isAllowedAddress(ip);
    if (options.allowPrivate === true) return !isMetadataAddress(ip);
    return isPublicAddress(ip);
  };
  // WHATWG URL parsing has already turned `2130706433`, `0x7f.1` and friends into dotted quads.
  const literal = normaliseIp(target.hostname);
  let addresses: LookupAddress[];
  if (literal !== null) {
    addresses = [{ address: literal, family: literal.includes(':') ? 6 : 4 }];
  } else {
    const resolve = options.lookup ?? defaultResolveHost;
    try {
      addresses = [...(await abortable(resolve(target.hostname), signal))];
    } catch (error) {
      if (signal.aborted) throw error;
      throw new UrlFetchError('dns', `${target.hostname} could not be resolved`, {
        url: target.href,
        cause: error,
      });
    }
    if (addresses.length === 0) {
      throw new UrlFetchError('dns', `${target.hostname} has no addresses`, { url: target.href });
    }
  }
  const blocked = addresses.find(({ address }) => !allowed(address));
  if (blocked !== undefined) {
    throw new UrlFetchError('blocked_address', `${target.hostname} resolves to a non-public address`, {
      url: target.href,
    });
  }
  return addresses;
}

/**
 * An agent whose sockets can only go to `addresses`: its lookup never asks DNS again. The URL (and
 * so the Host header and TLS SNI/certificate check) keeps the original host name. Literal-IP hosts
 * never call lookup, and they were checked as they are.
 */
function pinnedAgent(hostname: string, addresses: readonly LookupAddress[]): Agent {
  const lookup: LookupFunction = (host, lookupOptions, callback) => {
    const family =
      lookupOptions.family === 'IPv4' ? 4 : lookupOptions.family === 'IPv6' ? 6 : lookupOptions.family;
    const candidates = addresses.filter((a) => family === undefined || family === 0 || a.family === family);
    const first = candidates[0];
    if (host !== hostname || first === undefined) {
      const error: NodeJS.ErrnoException = new Error(`refusing to resolve ${host}: not the checked host`);
      error.code = 'ENOTFOUND';
      callback(error, '', 0);
      return;
    }
    if (lookupOptions.all === true) callback(null, candidates);
    else callback(null, first.address, first.family);
  };
  return new Agent({ connect: { lookup }, connections: 1, pipelining: 0 });
}

function checkContentType(contentType: string | null, allowed: string[] | undefined, target: URL): void {
  if (allowed === undefined) return;
  const essence = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  const ok = allowed.some((entry) => {
    const wanted = entry.trim().toLowerCase();
    return wanted.endsWith('/*') ? essence.startsWith(wanted.slice(0, -1)) : essence === wanted;
  });
  if (!ok) {
    throw new UrlFetchError('content_type', `content type ${contentType ?? '(none)'} is not accepted`, {
      url: target.href,
    });
  }
}

/** Reads the body, giving up as soon as it passes `maxBytes`; at most `maxBytes` are kept. */
async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  target: URL,
): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(maxBytes, target);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function tooLarge(maxBytes: number, target: URL): UrlFetchError {
  return new UrlFetchError('too_large', `the body is larger than ${maxBytes} bytes`, { url: target.href });
}

function redact(target: URL): string {
  const copy = new URL(target.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/** `dns.lookup` cannot be cancelled; stop waiting for it when the signal fires. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}
