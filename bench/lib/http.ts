/**
 * HTTP benchmark helpers: server processes pinned to a CPU (`taskset`), readiness, the process's CPU
 * time (from /proc), Debian prerequisites, and the load generator (`wrk`, or a small Node fallback
 * with the same fixed-connections, fixed-duration shape when wrk is missing).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { percentile } from '../../src/modules/search/eval/run.js';

// ---------------------------------------------------------------------------------------------------
// Processes

export interface ServerProcess {
  name: string;
  pid: number;
  baseUrl: string;
  child: ChildProcess;
  /** The last lines the process wrote (stdout and stderr), for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (asks the kernel, then releases it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

/** Whether `taskset` (util-linux) can pin processes here. */
export const hasTaskset = (): boolean => commandExists('taskset');

export function commandExists(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `command args` pinned to `cpus` (a taskset list such as `0`), with `env` added to this
 * process's environment. taskset execs the command, so the pid is the server's own.
 */
export function spawnPinned(options: {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  cpus: string | null;
  port: number;
}): ServerProcess {
  const [command, args] = options.cpus
    ? ['taskset', ['-c', options.cpus, options.command, ...options.args]]
    : [options.command, options.args];
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else
      child.once('exit', () => {
        resolve();
      });
  });
  if (child.pid === undefined) throw new Error(`${options.name}: could not start ${command}`);
  return {
    name: options.name,
    pid: child.pid,
    baseUrl: `http://127.0.0.1:${options.port}`,
    child,
    output: () => lines.join('\n'),
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `url` until it answers 200; fails early when the process exits. */
export async function waitForReady(server: ServerProcess, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.child.exitCode !== null || server.child.signalCode !== null)
      throw new Error(
        `${server.name} exited (${server.child.exitCode ?? server.child.signalCode}):\n${server.output()}`,
      );
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`${server.name} not ready after ${timeoutMs} ms:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

let clockTicks: number | undefined;
/** Clock ticks per second (`getconf CLK_TCK`, 100 on Linux). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds a process has used so far (utime + stime of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** The CPUs a process may run on (`Cpus_allowed_list` of /proc/<pid>/status). */
export function allowedCpus(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1]?.trim() ?? '?';
}

// ---------------------------------------------------------------------------------------------------
// Prerequisites (Debian packages)

export function debianPackageInstalled(name: string): boolean {
  try {
    const status = execFileSync('dpkg-query', ['-W', '-f=${Status}', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return status.trim() === 'install ok installed';
  } catch {
    return false;
  }
}

/**
 * Makes sure the Debian packages are installed. Missing ones are installed with apt-get when `install`
 * is true and this process runs as root; otherwise returns the command the user should run.
 * Returns null when everything is there.
 */
export function ensureDebianPackages(
  packages: readonly string[],
  options: { install: boolean; log: (message: string) => void },
): string | null {
  const missing = packages.filter((p) => !debianPackageInstalled(p));
  if (missing.length === 0) return null;
  const command = `apt-get install -y ${missing.join(' ')}`;
  const root = process.getuid?.() === 0;
  if (options.install && root && commandExists('apt-get')) {
    options.log(`installing ${missing.join(', ')} (${command})`);
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch (error) {
      options.log(`apt-get failed: ${(error as Error).message.split('\n')[0] ?? ''}`);
    }
    const still = packages.filter((p) => !debianPackageInstalled(p));
    if (still.length === 0) return null;
    return `apt-get install -y ${still.join(' ')}`;
  }
  return `${root ? '' : 'sudo '}${command}`;
}

// ---------------------------------------------------------------------------------------------------
// Load generation

export interface LoadRequest {
  method: 'GET' | 'POST';
  /** Absolute URL. */
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  connections: number;
  durationSeconds: number;
  /** wrk only: CPUs the load generator is pinned to (away from the server's). */
  cpus: string | null;
  /** Where wrk's Lua script is written. */
  scratchDir: string;
}

export interface LoadResult {
  tool: 'wrk' | 'node';
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses that were not 2xx/3xx. */
  non2xx: number;
  /** Connect/read/write errors and timeouts. */
  socketErrors: number;
}

const luaString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/** wrk's latency figures (`812.00us`, `1.23ms`, `2.01s`) in milliseconds. */
export function parseWrkDuration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return NaN;
  const value = Number(match[1]);
  const unit = match[2];
  return unit === 'us' ? value / 1000 : unit === 'ms' ? value : unit === 's' ? value * 1000 : value * 60_000;
}

/** Parses the output of `wrk --latency`. */
export function parseWrk(output: string): Omit<LoadResult, 'tool'> {
  const total = /(\d+) requests in ([\d.]+)(ms|s|m),/.exec(output);
  const rps = /Requests\/sec:\s*([\d.]+)/.exec(output);
  const pct = (p: string) =>
    parseWrkDuration(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(output)?.[1] ?? '');
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (!total || !rps) throw new Error(`could not parse wrk output:\n${output}`);
  const seconds = parseWrkDuration(`${total[2]}${total[3]}`) / 1000;
  return {
    requests: Number(total[1]),
    seconds,
    requestsPerSecond: Number(rps[1]),
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: socket ? socket.slice(1).reduce((s, n) => s + Number(n), 0) : 0,
  };
}

let scriptCounter = 0;

/** One wrk run: `wrk -t1 -c<connections> -d<duration>s --latency`, the request set by a Lua script. */
export async function runWrk(request: LoadRequest, options: LoadOptions): Promise<LoadResult> {
  const script = path.join(options.scratchDir, `wrk-${process.pid}-${scriptCounter++}.lua`);
  const lines = [`wrk.method = ${luaString(request.method)}`];
  for (const [name, value] of Object.entries(request.headers))
    lines.push(`wrk.headers[${luaString(name)}] = ${luaString(value)}`);
  if (request.body !== undefined) lines.push(`wrk.body = ${luaString(request.body)}`);
  await writeFile(script, `${lines.join('\n')}\n`);
  const wrkArgs = [
    '-t1',
    `-c${options.connections}`,
    `-d${Math.max(1, Math.round(options.durationSeconds))}s`,
    '--timeout',
    '10s',
    '--latency',
    '-s',
    script,
    request.url,
  ];
  const [command, args] = options.cpus
    ? ['taskset', ['-c', options.cpus, 'wrk', ...wrkArgs]]
    : ['wrk', wrkArgs];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`wrk exited ${code}:\n${out}`));
    });
  });
  return { tool: 'wrk', ...parseWrk(output) };
}

/**
 * The fallback load generator: `connections` keep-alive connections, each sending its next request as
 * soon as the previous answer is read, for `durationSeconds`. It runs in this process (not pinned), so
 * it is slower than wrk and shares the bench's event loop: its numbers are a floor.
 */
export async function runNodeLoad(request: LoadRequest, options: LoadOptions): Promise<LoadResult> {
  const url = new URL(request.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const body = request.body === undefined ? undefined : Buffer.from(request.body, 'utf8');
  const headers = { ...request.headers, ...(body ? { 'content-length': String(body.length) } : {}) };
  const latencies: number[] = [];
  let non2xx = 0;
  let socketErrors = 0;
  const started = performance.now();
  const deadline = started + options.durationSeconds * 1000;
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          method: request.method,
          headers,
        },
        (res) => {
          res.resume();
          res.once('end', () => {
            latencies.push(performance.now() - t0);
            if ((res.statusCode ?? 0) >= 400) non2xx++;
            resolve();
          });
        },
      );
      req.once('error', () => {
        socketErrors++;
        resolve();
      });
      req.end(body);
    });
  const loop = async () => {
    while (performance.now() < deadline) await once();
  };
  await Promise.all(Array.from({ length: options.connections }, loop));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    tool: 'node',
    requests: latencies.length,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    non2xx,
    socketErrors,
  };
}

/** wrk when it is installed, the Node fallback otherwise. */
export function loadGenerator(): { tool: 'wrk' | 'node'; run: typeof runWrk } {
  return commandExists('wrk') || existsSync('/usr/bin/wrk')
    ? { tool: 'wrk', run: runWrk }
    : { tool: 'node', run: runNodeLoad };
}
