/** Runs the real `larder` binary (bin/larder.js) as a child process. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/larder.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Only what the test passes reaches the child: no DATABASE_URL/REDIS_URL leaks in from the runner. */
export function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NODE_OPTIONS: '', ...env };
}

export function runCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`larder ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningProcess {
  child: ChildProcess;
  /** The first capture group of the ready pattern (e.g. the server's address). */
  ready: string;
  output: () => string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Starts `larder <args>` and resolves once its output matches `readyPattern`. */
export function startProcess(
  args: string[],
  env: Record<string, string>,
  readyPattern: RegExp,
  timeoutMs = 60_000,
): Promise<RunningProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv({ LOG_LEVEL: 'info', ...env }) });
    let out = '';
    let started = false;
    const exited = new Promise<number | null>((r) => child.on('close', r));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`larder ${args.join(' ')} did not become ready:\n${out}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const match = readyPattern.exec(out);
      if (match && !started) {
        started = true;
        clearTimeout(timer);
        resolve({ child, ready: match[1] ?? match[0], output: () => out, exited });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      if (!started)
        reject(new Error(`larder ${args.join(' ')} exited with ${code} before it was ready:\n${out}`));
    });
  });
}

/** Starts `larder serve` on a free port; `ready` is its base URL. */
export const startServer = (env: Record<string, string>) =>
  startProcess(
    ['serve'],
    { PORT: '0', ...env },
    /"address":"(http:\/\/[^"]+)"[^\n]*"msg":"Larder is listening"/,
  );
