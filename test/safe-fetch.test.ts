import type { LookupAddress } from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { isPublicAddress } from '../src/platform/net/address-policy.js';
import { filenameFrom } from '../src/platform/net/filename.js';
import { safeFetch, UrlFetchError, type SafeFetchOptions } from '../src/platform/net/safe-fetch.js';

interface Seen {
  url: string;
  host: string | undefined;
}

let server: Server;
let port: number;
let seen: Seen[] = [];
let connections = 0;
let chunkedClosed: Promise<void> = Promise.resolve();

function handler(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://local');
  seen.push({ url: url.pathname + url.search, host: req.headers.host });
  const redirect = /^\/redirect\/(\d+)$/.exec(url.pathname);
  if (redirect !== null) {
    const left = Number(redirect[1]);
    res.writeHead(302, { location: left === 0 ? '/doc' : `/redirect/${left - 1}` }).end();
    return;
  }
  switch (url.pathname) {
    case '/doc':
      res
        .writeHead(200, {
          'content-type': 'text/plain; charset=utf-8',
          'content-disposition': 'attachment; filename="report.txt"',
        })
        .end('hello');
      return;
    case '/files/notes%20v2.md':
      res.writeHead(200, { 'content-type': 'text/markdown' }).end('# notes');
      return;
    case '/to':
      res.writeHead(307, { location: url.searchParams.get('target') ?? '/doc' }).end();
      return;
    case '/big-declared':
      // Announces 10 MB, sends a few bytes, then stalls: reading it would end in a timeout, not too_large.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(10_000_000) });
      res.write('x'.repeat(100));
      return;
    case '/chunked-big': {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = 'y'.repeat(16 * 1024);
      chunkedClosed = new Promise((resolve) => res.on('close', resolve));
      const timer = setInterval(() => res.write(chunk), 5);
      res.on('close', () => {
        clearInterval(timer);
      });
      return;
    }
    case '/hang':
      return;
    case '/html':
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>hi</p>');
      return;
    case '/missing':
      res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
      return;
    default:
      res.writeHead(500).end();
  }
}

async function listen(srv: Server, host: string, at = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(at, host, () => {
      resolve();
    });
  });
  return (srv.address() as AddressInfo).port;
}

async function close(srv: Server): Promise<void> {
  srv.closeAllConnections();
  await new Promise<void>((resolve) => {
    srv.close(() => {
      resolve();
    });
  });
}

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof UrlFetchError) return error.reason;
    throw error;
  }
  throw new Error('expected the fetch to be refused');
}

const base = { maxBytes: 1024 * 1024, timeoutMs: 5_000 } satisfies SafeFetchOptions;
const local = { ...base, allowPrivate: true } satisfies SafeFetchOptions;
const at = (path: string): string => `http://127.0.0.1:${port}${path}`;

beforeAll(async () => {
  server = createServer(handler);
  server.on('connection', () => {
    connections += 1;
  });
  port = await listen(server, '127.0.0.1');
});
afterAll(() => close(server));
beforeEach(() => {
  seen = [];
  connections = 0;
});

describe('safeFetch: fetching', () => {
  it('returns the body, status, content type and the Content-Disposition file name', async () => {
    const result = await safeFetch(at('/doc'), local);
    expect(result).toMatchObject({
      url: at('/doc'),
      status: 200,
      contentType: 'text/plain; charset=utf-8',
      filename: 'report.txt',
    });
    expect(new TextDecoder().decode(result.body)).toBe('hello');
    expect(seen[0]?.host).toBe(`127.0.0.1:${port}`);
  });

  it('takes the file name from the URL path when there is no Content-Disposition', async () => {
    const result = await safeFetch(at('/files/notes%20v2.md'), local);
    expect(result.filename).toBe('notes v2.md');
  });

  it('follows redirects, re-checking every hop, and reports the final URL', async () => {
    // Five redirects: /redirect/4 → … → /redirect/0 → /doc, the default cap.
    const result = await safeFetch(at('/redirect/4'), local);
    expect(result.url).toBe(at('/doc'));
    expect(seen.map((s) => s.url)).toEqual([
      '/redirect/4',
      '/redirect/3',
      '/redirect/2',
      '/redirect/1',
      '/redirect/0',
      '/doc',
    ]);
  });

  it('caps redirects (default 5, configurable)', async () => {
    expect(await reasonOf(safeFetch(at('/redirect/5'), local))).toBe('too_many_redirects');
    expect(seen).toHaveLength(6);
    seen = [];
    expect(await reasonOf(safeFetch(at('/redirect/2'), { ...local, maxRedirects: 2 }))).toBe(
      'too_many_redirects',
    );
    expect(seen).toHaveLength(3);
  });

  it('accepts allowed content types, ignoring parameters, and supports type/* wildcards', async () => {
    await expect(
      safeFetch(at('/doc'), { ...local, allowedContentTypes: ['text/plain'] }),
    ).resolves.toBeTruthy();
    await expect(safeFetch(at('/html'), { ...local, allowedContentTypes: ['text/*'] })).resolves.toBeTruthy();
    expect(
      await reasonOf(safeFetch(at('/html'), { ...local, allowedContentTypes: ['application/pdf'] })),
    ).toBe('content_type');
  });

  it('refuses a non-2xx final status', async () => {
    const error = await safeFetch(at('/missing'), local).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UrlFetchError);
    expect(error).toMatchObject({ reason: 'http_status', status: 404 });
  });

  it('refuses a declared Content-Length over the limit before reading the body', async () => {
    const started = Date.now();
    expect(
      await reasonOf(safeFetch(at('/big-declared'), { ...local, maxBytes: 1000, timeoutMs: 3_000 })),
    ).toBe('too_large');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('aborts a streamed body as soon as it passes the limit', async () => {
    expect(await reasonOf(safeFetch(at('/chunked-big'), { ...local, maxBytes: 50_000 }))).toBe('too_large');
    // The connection is torn down rather than drained.
    await chunkedClosed;
  });

  it('times out on a server that never answers', async () => {
    const started = Date.now();
    expect(await reasonOf(safeFetch(at('/hang'), { ...local, timeoutMs: 300 }))).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("passes the caller's abort reason through", async () => {
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    setTimeout(() => {
      controller.abort(reason);
    }, 50);
    await expect(safeFetch(at('/hang'), { ...local, signal: controller.signal })).rejects.toBe(reason);
  });

  it('reports DNS failures and unreachable servers', async () => {
    const lookup = vi.fn(() => Promise.reject(new Error('ENOTFOUND')));
    expect(await reasonOf(safeFetch('http://nowhere.test/', { ...local, lookup }))).toBe('dns');
    const spare = createServer();
    const closedPort = await listen(spare, '127.0.0.1');
    await close(spare);
    expect(await reasonOf(safeFetch(`http://127.0.0.1:${closedPort}/`, local))).toBe('network');
  });
});

describe('safeFetch: SSRF refusals (nothing is connected to)', () => {
  const lookup = vi.fn((hostname: string): Promise<LookupAddress[]> => {
    throw new Error(`unexpected lookup of ${hostname}`);
  });
  beforeEach(() => {
    lookup.mockClear();
  });

  const literal: [string, (port: number) => string][] = [
    ['loopback', (p) => `http://127.0.0.1:${p}/doc`],
    ['IPv6 loopback', (p) => `http://[::1]:${p}/doc`],
    ['RFC 1918 10/8', () => 'http://10.0.0.1/'],
    ['RFC 1918 172.16/12', () => 'http://172.16.5.4/'],
    ['RFC 1918 192.168/16', () => 'http://192.168.1.1/'],
    ['AWS metadata', () => 'http://169.254.169.254/latest/meta-data/'],
    ['AWS IPv6 metadata', () => 'http://[fd00:ec2::254]/'],
    ['Alibaba metadata', () => 'http://100.100.100.200/'],
    ['unspecified', (p) => `http://0.0.0.0:${p}/doc`],
    ['IPv4-mapped loopback', (p) => `http://[::ffff:127.0.0.1]:${p}/doc`],
    ['decimal loopback', (p) => `http://2130706433:${p}/doc`],
    ['hex loopback', (p) => `http://0x7f.0.0.1:${p}/doc`],
    ['short hex loopback', (p) => `http://0x7f.1:${p}/doc`],
    ['octal loopback', (p) => `http://0177.0.0.1:${p}/doc`],
    ['NAT64 of loopback', (p) => `http://[64:ff9b::7f00:1]:${p}/doc`],
    ['6to4 of loopback', (p) => `http://[2002:7f00:1::]:${p}/doc`],
    ['broadcast', () => 'http://255.255.255.255/'],
    ['carrier-grade NAT', () => 'http://100.64.0.1/'],
    ['documentation', () => 'http://192.0.2.1/'],
  ];

  it.each(literal)('refuses %s as blocked_address', async (_name, url) => {
    expect(await reasonOf(safeFetch(url(port), { ...base, lookup }))).toBe('blocked_address');
    expect(lookup).not.toHaveBeenCalled();
    expect(connections).toBe(0);
    expect(seen).toEqual([]);
  });

  it('refuses localhost because it resolves to loopback (real DNS)', async () => {
    expect(await reasonOf(safeFetch(`http://localhost:${port}/doc`, base))).toBe('blocked_address');
    expect(connections).toBe(0);
  });

  it('refuses a host if any one of its addresses is private', async () => {
    const mixed = vi.fn(() =>
      Promise.resolve([
        { address: '93.184.215.14', family: 4 },
        { address: '10.1.2.3', family: 4 },
      ]),
    );
    expect(await reasonOf(safeFetch('http://mixed.test/', { ...base, lookup: mixed }))).toBe(
      'blocked_address',
    );
  });

  it('refuses cloud metadata even when private addresses are allowed', async () => {
    expect(await reasonOf(safeFetch('http://169.254.169.254/latest/meta-data/', local))).toBe(
      'blocked_address',
    );
    expect(await reasonOf(safeFetch('http://[fd00:ec2::254]/', local))).toBe('blocked_address');
  });

  it.each([
    'file:///etc/passwd',
    'ftp://x/',
    'data:text/plain,hi',
    'gopher://x/',
    'javascript:alert(1)',
    'not a url',
  ])('refuses %s as scheme', async (url) => {
    expect(await reasonOf(safeFetch(url, { ...base, lookup }))).toBe('scheme');
    expect(lookup).not.toHaveBeenCalled();
  });

  it('refuses credentials in the URL before resolving anything', async () => {
    expect(await reasonOf(safeFetch('http://user:pass@example.com/', { ...base, lookup }))).toBe('scheme');
    expect(await reasonOf(safeFetch(`http://user@127.0.0.1:${port}/doc`, local))).toBe('scheme');
    expect(lookup).not.toHaveBeenCalled();
    expect(connections).toBe(0);
  });
});

describe('safeFetch: redirects and DNS rebinding', () => {
  const onlyFirstServer = (ip: string): boolean => ip === '127.0.0.1';

  it.each([
    ['another loopback address', (p: number) => `http://127.0.0.2:${p}/doc`],
    ['IPv6 loopback', (p: number) => `http://[::1]:${p}/doc`],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/'],
  ])('refuses a redirect to %s', async (_name, target) => {
    const url = at(`/to?target=${encodeURIComponent(target(port))}`);
    expect(await reasonOf(safeFetch(url, { ...base, isAllowedAddress: onlyFirstServer }))).toBe(
      'blocked_address',
    );
    expect(seen.map((s) => s.url)).toEqual([`/to?target=${encodeURIComponent(target(port))}`]);
  });

  it('refuses a redirect to another scheme', async () => {
    const url = at(`/to?target=${encodeURIComponent('file:///etc/passwd')}`);
    expect(await reasonOf(safeFetch(url, { ...base, isAllowedAddress: onlyFirstServer }))).toBe('scheme');
  });

  it('re-resolves every hop and refuses a hop whose host now resolves privately', async () => {
    const answers = ['127.0.0.1', '10.0.0.1'];
    const lookup = vi.fn(() => Promise.resolve([{ address: answers.shift() ?? '10.0.0.1', family: 4 }]));
    const url = `http://hop.test:${port}/redirect/0`;
    expect(await reasonOf(safeFetch(url, { ...base, lookup, isAllowedAddress: onlyFirstServer }))).toBe(
      'blocked_address',
    );
    expect(lookup).toHaveBeenCalledTimes(2);
    expect(seen.map((s) => s.url)).toEqual(['/redirect/0']);
  });

  it('connects only to the address it checked, even if DNS answers differently later', async () => {
    // A second server on 127.0.0.2 (same port) plays the internal service a rebinding attack wants.
    const evil = createServer((_req, res) => res.end('evil'));
    const evilListening = await listen(evil, '127.0.0.2', port).then(
      () => true,
      () => false,
    );
    let evilConnections = 0;
    evil.on('connection', () => {
      evilConnections += 1;
    });
    try {
      // First answer passes the check; every later answer points at the "internal" server.
      let calls = 0;
      const lookup = vi.fn((hostname: string) => {
        expect(hostname).toBe('rebind.test');
        calls += 1;
        return Promise.resolve([{ address: calls === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }]);
      });
      const result = await safeFetch(`http://rebind.test:${port}/doc`, {
        ...base,
        lookup,
        isAllowedAddress: onlyFirstServer,
      });
      expect(new TextDecoder().decode(result.body)).toBe('hello');
      expect(lookup).toHaveBeenCalledTimes(1);
      // The Host header keeps the original name; only the socket's destination is pinned.
      expect(seen).toEqual([{ url: '/doc', host: `rebind.test:${port}` }]);
      expect(evilConnections).toBe(0);
      expect(evilListening || process.platform !== 'linux').toBe(true);
    } finally {
      if (evilListening) await close(evil);
    }
  });

  it('pins each redirect hop separately: one lookup per hop', async () => {
    const lookup = vi.fn(() => Promise.resolve([{ address: '127.0.0.1', family: 4 }]));
    const result = await safeFetch(`http://pinned.test:${port}/redirect/2`, { ...local, lookup });
    expect(result.url).toBe(`http://pinned.test:${port}/doc`);
    expect(lookup).toHaveBeenCalledTimes(4);
  });
});

describe('address policy', () => {
  it.each(['8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'])(
    'allows public %s',
    (ip) => {
      expect(isPublicAddress(ip)).toBe(true);
    },
  );

  it.each([
    '127.0.0.1',
    '127.1',
    '::1',
    '::',
    '::7f00:1',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    '224.0.0.1',
    'ff02::1',
    '198.18.0.1',
    '198.51.100.7',
    '203.0.113.9',
    '2001:db8::1',
    '240.0.0.1',
    '::ffff:10.0.0.1',
    '::ffff:0:a00:1',
    '64:ff9b:1::808:808',
    '2001::1',
    'not-an-ip',
  ])('refuses %s', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });
});

describe('filenameFrom', () => {
  const url = new URL('https://example.com/a/b/file%20name.pdf?x=1');
  it.each([
    [null, 'file name.pdf'],
    ['attachment; filename="quoted \\"name\\".txt"', 'quoted "name".txt'],
    ['attachment; filename="fallback.txt"; filename*=UTF-8\'\'na%C3%AFve.txt', 'naïve.txt'],
    ['attachment; filename="../../etc/passwd"', 'passwd'],
    ['attachment; filename="..\\\\evil.exe"', 'evil.exe'],
    ['inline', 'file name.pdf'],
  ])('%s → %s', (header, expected) => {
    expect(filenameFrom(header, url)).toBe(expected);
  });

  it('returns null for a bare directory URL', () => {
    expect(filenameFrom(null, new URL('https://example.com/'))).toBeNull();
  });
});
